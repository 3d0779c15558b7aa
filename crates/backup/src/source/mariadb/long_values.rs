//! Rows too large for one statement: an `INSERT` line of a dump whose row holds a value larger
//! than a budget (a quarter of the target server's `max_allowed_packet`, at most 4 MiB) is
//! restored by building each such value in a user variable, piece by piece, and inserting the
//! row with the variable in its place:
//!
//! ```sql
//! INSERT INTO `t` VALUES (1,'small');            -- the rows before, as they were
//! SET @vertice_value_0 = '…first piece…';
//! SET @vertice_value_0 = CONCAT(@vertice_value_0, '…next piece…');
//! SET @vertice_check = (SELECT 1 FROM DUAL WHERE @vertice_value_0 IS NULL UNION ALL
//!                       SELECT 1 FROM DUAL WHERE @vertice_value_0 IS NULL);
//! INSERT INTO `t` VALUES (2,@vertice_value_0),(3,'small');
//! ```
//!
//! Why: a value's literal in a dump is longer than the value (escapes; `--hex-blob` dumps of
//! older backups double it), so a row that the server holds can make a statement larger than
//! the same server's `max_allowed_packet`, and the server drops the connection. Each piece is
//! far below the limit, and `CONCAT` may build any value up to the limit — which every value
//! the server held is. When the target's limit is smaller than the value, `CONCAT` yields NULL:
//! the check statement then fails ("Subquery returns more than 1 row") instead of inserting a
//! NULL, and the restore reports the limit.
//!
//! Pieces keep the dump's charset: a string literal is cut only between escape sequences and
//! before a byte that starts a UTF-8 character, a hex literal (`0x…`) at an even digit. Lines
//! with no value over the budget come out byte for byte as they went in.

/// The user variable that holds the `index`-th large value of a row.
fn variable(index: usize) -> String {
    format!("@vertice_value_{index}")
}

/// The statement that fails when a built value is NULL (its `CONCAT` outgrew the limit).
pub const CHECK_MARKER: &str = "@vertice_check";

/// What kind of field is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FieldKind {
    /// Not yet known (no byte read).
    Unknown,
    /// A `'…'` string literal.
    Text,
    /// A `0x…` hex literal.
    Hex,
    /// Anything else (numbers, NULL, `b'…'`): kept as it is.
    Other,
}

/// Where the splitter is within an `INSERT` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// In `INSERT INTO `t` VALUES `, before the first tuple.
    Header { in_backticks: bool },
    /// Between tuples: separators, or the statement's end.
    Between,
    /// Inside a tuple, in a field.
    Field,
    /// After the statement's `;`: the rest of the line passes through.
    Tail,
}

/// Splits one `INSERT` statement (see the module doc): mariadb-dump writes its header and each
/// row on lines of their own. Feed it the statement's bytes in any pieces.
#[derive(Debug)]
pub struct InsertSplitter {
    budget: usize,
    place: Place,
    header: Vec<u8>,
    /// Separator bytes read since the last tuple (`,`), emitted before the next one.
    separator: Vec<u8>,
    /// Whether the current statement has rows in the output (and so is open).
    rows_out: bool,
    /// The finished fields of the current tuple, each with its bytes or its variable.
    fields: Vec<Vec<u8>>,
    tuple_bytes: usize,
    variables: usize,
    /// The field being read.
    field: Vec<u8>,
    kind: FieldKind,
    depth: usize,
    in_quote: bool,
    escaped: bool,
    quote_seen: bool,
    /// The field is being streamed into `variable(variables)`; pieces written so far.
    hoisting: Option<usize>,
}

impl InsertSplitter {
    /// A splitter whose pieces and rows stay below `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Self {
            budget: budget.max(1024),
            place: Place::Header {
                in_backticks: false,
            },
            header: Vec::new(),
            separator: Vec::new(),
            rows_out: false,
            fields: Vec::new(),
            tuple_bytes: 0,
            variables: 0,
            field: Vec::new(),
            kind: FieldKind::Unknown,
            depth: 0,
            in_quote: false,
            escaped: false,
            quote_seen: false,
            hoisting: None,
        }
    }

    /// Takes the next bytes of the line (up to and including its `\n`); appends what is
    /// ready to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            match self.place {
                Place::Header { in_backticks } => {
                    if byte == b'(' && !in_backticks {
                        self.place = Place::Field;
                        self.start_field();
                    } else {
                        self.header.push(byte);
                        if byte == b'`' {
                            self.place = Place::Header {
                                in_backticks: !in_backticks,
                            };
                        }
                    }
                }
                Place::Between => match byte {
                    b'(' => {
                        self.place = Place::Field;
                        self.start_field();
                    }
                    b';' => {
                        self.end_statement(out);
                        out.push(b';');
                        self.place = Place::Tail;
                    }
                    b',' => self.separator.push(byte),
                    _ if byte.is_ascii_whitespace() => self.separator.push(byte),
                    _ => {
                        // Not a dump's row list: never drop what is not understood. What is
                        // held goes out as it came, and the rest of the line passes through
                        // for the client to accept or reject.
                        self.finish(out);
                        out.push(byte);
                    }
                },
                Place::Field => self.field_byte(byte, out),
                Place::Tail => out.push(byte),
            }
        }
    }

    /// Whether the statement ended (its `;` was read): the rest of its line passes through.
    pub fn is_done(&self) -> bool {
        self.place == Place::Tail
    }

    /// Ends the stream: whatever is held goes out as it came (a line cut short is the client's
    /// to reject).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        match self.place {
            Place::Header { .. } => out.extend_from_slice(&self.header),
            Place::Field => {
                self.open_row(out);
                // Every finished field of an unfinished row was followed by a comma.
                for field in &self.fields {
                    out.extend_from_slice(field);
                    out.push(b',');
                }
                if self.hoisting.is_none() {
                    out.extend_from_slice(&self.field);
                }
            }
            Place::Between => {
                out.extend_from_slice(&self.separator);
            }
            Place::Tail => {}
        }
        self.place = Place::Tail;
    }

    fn start_field(&mut self) {
        self.fields.clear();
        self.tuple_bytes = 0;
        self.variables = 0;
        self.reset_field();
    }

    fn reset_field(&mut self) {
        self.field.clear();
        self.kind = FieldKind::Unknown;
        self.depth = 0;
        self.in_quote = false;
        self.escaped = false;
        self.quote_seen = false;
        self.hoisting = None;
    }

    fn field_byte(&mut self, byte: u8, out: &mut Vec<u8>) {
        if self.kind == FieldKind::Unknown {
            self.kind = match byte {
                b'\'' => FieldKind::Text,
                b'0' => FieldKind::Hex,
                _ => FieldKind::Other,
            };
        } else if self.kind == FieldKind::Hex
            && self.hoisting.is_none()
            && self.field.len() == 1
            && byte != b'x'
        {
            // `0` followed by anything but `x` is a number.
            self.kind = FieldKind::Other;
        }
        // A quote seen before this byte: doubled (still inside) or the literal's end.
        if self.quote_seen {
            self.quote_seen = false;
            if byte == b'\'' {
                self.push_field_byte(byte, out);
                return;
            }
            self.in_quote = false;
        }
        if self.in_quote {
            if self.escaped {
                self.escaped = false;
            } else if byte == b'\\' {
                self.escaped = true;
            } else if byte == b'\'' {
                self.quote_seen = true;
            }
            self.push_field_byte(byte, out);
            return;
        }
        match byte {
            b'\'' => {
                self.in_quote = true;
                self.push_field_byte(byte, out);
            }
            b'(' => {
                self.depth += 1;
                self.push_field_byte(byte, out);
            }
            b')' if self.depth > 0 => {
                self.depth -= 1;
                self.push_field_byte(byte, out);
            }
            b',' | b')' if self.depth == 0 => {
                self.end_field(out);
                if byte == b')' {
                    self.end_tuple(out);
                    self.place = Place::Between;
                } else {
                    self.reset_field();
                }
            }
            _ => self.push_field_byte(byte, out),
        }
    }

    fn push_field_byte(&mut self, byte: u8, out: &mut Vec<u8>) {
        self.field.push(byte);
        let hoistable = matches!(self.kind, FieldKind::Text | FieldKind::Hex);
        if hoistable && self.field.len() >= self.budget {
            self.hoist_piece(out, false);
        }
    }

    /// Moves the field's bytes so far (all but an unsafe cut) into its variable.
    fn hoist_piece(&mut self, out: &mut Vec<u8>, last: bool) {
        let first = self.hoisting.is_none();
        if first {
            self.close_statement(out);
        }
        let body_start = match (first, self.kind) {
            (true, FieldKind::Text) => 1,
            (true, _) => 2,
            (false, _) => 0,
        };
        let cut = if last {
            self.field.len()
        } else {
            safe_cut(&self.field, body_start, self.kind)
        };
        if cut <= body_start && !last {
            return;
        }
        let body_end = if last && self.kind == FieldKind::Text {
            cut.saturating_sub(1).max(body_start)
        } else {
            cut
        };
        let body = &self.field[body_start..body_end];
        let name = variable(self.variables);
        let literal = match self.kind {
            FieldKind::Text => [b"'".as_slice(), body, b"'"].concat(),
            _ if body.is_empty() => b"''".to_vec(),
            _ => [b"0x".as_slice(), body].concat(),
        };
        out.extend_from_slice(b"SET ");
        out.extend_from_slice(name.as_bytes());
        if first {
            out.extend_from_slice(b" = ");
            out.extend_from_slice(&literal);
        } else {
            out.extend_from_slice(format!(" = CONCAT({name}, ").as_bytes());
            out.extend_from_slice(&literal);
            out.push(b')');
        }
        out.extend_from_slice(b";\n");
        self.field.drain(..cut);
        self.hoisting = Some(self.hoisting.map_or(1, |pieces| pieces + 1));
    }

    fn end_field(&mut self, out: &mut Vec<u8>) {
        if self.hoisting.is_some() {
            self.hoist_piece(out, true);
            self.finish_variable(out);
            return;
        }
        let field = std::mem::take(&mut self.field);
        self.tuple_bytes += field.len() + 1;
        self.fields.push(field);
        if self.tuple_bytes > self.budget {
            self.hoist_largest(out);
        }
    }

    /// The row grew past the budget with fields that are each below it: their largest
    /// literals go into variables until it fits.
    fn hoist_largest(&mut self, out: &mut Vec<u8>) {
        while self.tuple_bytes > self.budget {
            let Some((index, _)) = self
                .fields
                .iter()
                .enumerate()
                .filter(|(_, field)| {
                    (field.first() == Some(&b'\'') || field.starts_with(b"0x")) && field.len() > 32
                })
                .max_by_key(|(_, field)| field.len())
            else {
                return;
            };
            let field = std::mem::take(&mut self.fields[index]);
            self.tuple_bytes -= field.len();
            self.close_statement(out);
            let name = variable(self.variables);
            out.extend_from_slice(format!("SET {name} = ").as_bytes());
            out.extend_from_slice(&field);
            out.extend_from_slice(b";\n");
            self.push_check(&name, out);
            self.tuple_bytes += name.len();
            self.fields[index] = name.into_bytes();
            self.variables += 1;
        }
    }

    fn finish_variable(&mut self, out: &mut Vec<u8>) {
        let name = variable(self.variables);
        self.push_check(&name, out);
        self.tuple_bytes += name.len() + 1;
        self.fields.push(name.into_bytes());
        self.variables += 1;
        self.field.clear();
        self.hoisting = None;
    }

    fn push_check(&self, name: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(
            format!(
                "SET {CHECK_MARKER} = (SELECT 1 FROM DUAL WHERE {name} IS NULL UNION ALL \
                 SELECT 1 FROM DUAL WHERE {name} IS NULL);\n"
            )
            .as_bytes(),
        );
    }

    /// Ends the statement in the output if it has rows, so variables can be set before the
    /// next one.
    fn close_statement(&mut self, out: &mut Vec<u8>) {
        if self.rows_out {
            out.extend_from_slice(b";\n");
            self.rows_out = false;
        }
        self.separator.clear();
    }

    fn open_row(&mut self, out: &mut Vec<u8>) {
        if self.rows_out {
            out.append(&mut self.separator);
        } else {
            out.extend_from_slice(&self.header);
            self.separator.clear();
            self.rows_out = true;
        }
        out.push(b'(');
    }

    fn emit_fields(&mut self, out: &mut Vec<u8>) {
        for (index, field) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(field);
        }
    }

    fn end_tuple(&mut self, out: &mut Vec<u8>) {
        self.open_row(out);
        self.emit_fields(out);
        out.push(b')');
        self.fields.clear();
        self.tuple_bytes = 0;
        self.variables = 0;
    }

    /// Whatever stood between the last row and the `;` goes out as it came: nothing in a
    /// dump, but a dump cut short and followed by something else (`(1,'a'),\nGARBAGE;`) must
    /// reach the client as it is, to be rejected, not be turned into a valid statement.
    fn end_statement(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.separator);
    }
}

/// Where a piece of a literal may end: not inside an escape sequence, and (for text) before a
/// byte that starts a UTF-8 character; for hex, after an even number of digits.
fn safe_cut(field: &[u8], body_start: usize, kind: FieldKind) -> usize {
    let len = field.len();
    if kind == FieldKind::Hex {
        let digits = len - body_start;
        return len - digits % 2;
    }
    // Keep the last bytes back: a backslash or a quote at the end may begin a sequence.
    let mut cut = len.saturating_sub(1);
    for _ in 0..4 {
        if cut <= body_start {
            break;
        }
        let starts_char = field[cut] & 0xC0 != 0x80;
        if starts_char && !ends_in_escape(&field[body_start..cut]) {
            return cut;
        }
        cut -= 1;
    }
    // Binary data (no UTF-8 structure): any cut outside an escape will do.
    let mut cut = len.saturating_sub(1);
    while cut > body_start && ends_in_escape(&field[body_start..cut]) {
        cut -= 1;
    }
    cut
}

/// Whether `text` ends inside an escape: an odd run of trailing backslashes, or a quote
/// (which may be half of a doubled quote).
fn ends_in_escape(text: &[u8]) -> bool {
    if text.last() == Some(&b'\'') {
        return true;
    }
    let backslashes = text.iter().rev().take_while(|&&byte| byte == b'\\').count();
    backslashes % 2 == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str, budget: usize, piece: usize) -> String {
        let mut splitter = InsertSplitter::new(budget);
        let mut out = Vec::new();
        for part in line.as_bytes().chunks(piece) {
            splitter.feed(part, &mut out);
        }
        splitter.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_that_is_not_a_row_list_passes_through() {
        // A dump cut short and followed by something else: the client must see all of it.
        for line in [
            "INSERT INTO `t` VALUES (1,'a'),\nTHIS IS NOT SQL;\n",
            "INSERT INTO `t` VALUES (1,'a') garbage;\n",
        ] {
            assert_eq!(split(line, 1024, 1024), line, "{line:?}");
        }
    }

    #[test]
    fn lines_without_large_values_are_unchanged() {
        for line in [
            "INSERT INTO `t` VALUES (1,'a'),(2,'b\\'c'),(3,NULL,0x00FF,b'101',-1.5e3);\n",
            "INSERT INTO `we(ird`` ta)ble` VALUES (1,'(,)'),(2,'it''s');\n",
            "INSERT INTO `t` VALUES (1,'cut short",
            "INSERT INTO `t` VALUES\n(1,'a\\nb'),\n(2,NULL);\n",
            // A dump cut between rows and followed by other text: kept, for the client to
            // reject.
            "INSERT INTO `t` VALUES\n(1,'a'),\nTHIS IS NOT SQL;\n",
            "INSERT INTO `t` VALUES (1,'a'),;\n",
            "INSERT INTO `t` VALUES (1,'a') garbage;\n",
        ] {
            for piece in [1, 5, 1000] {
                assert_eq!(split(line, 1024, piece), line, "piece {piece}");
            }
        }
    }

    #[test]
    fn large_values_go_through_variables_in_small_pieces() {
        let big = format!("ü\\'x\\\\{}", "é".repeat(3000));
        let line = format!(
            "INSERT INTO `t` VALUES\n(1,'a'),\n(2,'{big}',0x{}),\n(3,'c');\n",
            "AB".repeat(1500)
        );
        for piece in [1, 7, 4096] {
            let out = split(&line, 1024, piece);
            for statement in out.lines() {
                assert!(
                    statement.len() < 1200,
                    "piece {piece}: {} bytes: {}",
                    statement.len(),
                    &statement[..60]
                );
            }
            assert!(
                out.starts_with(
                    "INSERT INTO `t` VALUES\n(1,'a');\nSET @vertice_value_0 = 'ü\\'x\\\\"
                ),
                "{out}"
            );
            assert!(
                out.ends_with(
                    "INSERT INTO `t` VALUES\n(2,@vertice_value_0,@vertice_value_1),\n(3,'c');\n"
                ),
                "{out}"
            );
            // Reassembled pieces give back the literal.
            let mut text = String::new();
            let mut hex = String::new();
            for statement in out.lines().filter(|s| s.starts_with("SET @vertice_value")) {
                let literal = statement
                    .split_once(" = ")
                    .unwrap()
                    .1
                    .trim_end_matches(';')
                    .trim_start_matches("CONCAT(")
                    .trim_end_matches(')');
                let literal = literal.rsplit_once(", ").map_or(literal, |(_, l)| l);
                if statement.starts_with("SET @vertice_value_0") {
                    text.push_str(literal.trim_start_matches('\'').trim_end_matches('\''));
                } else {
                    hex.push_str(literal.trim_start_matches("0x"));
                }
            }
            assert_eq!(text, big, "piece {piece}");
            assert_eq!(hex, "AB".repeat(1500), "piece {piece}");
            assert_eq!(out.matches(CHECK_MARKER).count(), 2);
        }
    }

    #[test]
    fn a_row_of_several_medium_values_is_split_too() {
        let medium = "m".repeat(600);
        let line = format!("INSERT INTO `t` VALUES (1,'{medium}','{medium}','{medium}');\n");
        let out = split(&line, 1024, 100);
        for statement in out.lines() {
            assert!(statement.len() < 1200, "{statement}");
        }
        assert!(
            out.contains(&format!("SET @vertice_value_0 = '{medium}';")),
            "{out}"
        );
        assert!(
            out.ends_with(&format!(
                "INSERT INTO `t` VALUES (1,'{medium}',@vertice_value_0,@vertice_value_1);\n"
            )),
            "{out}"
        );
    }
}
