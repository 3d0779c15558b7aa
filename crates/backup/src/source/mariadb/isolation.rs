//! What a restored MariaDB copy holds that reaches outside it (see [`crate::isolation`]):
//! routines, views, triggers and events whose SQL names another database — above all the
//! database the backup was taken from — and the copy's events with their status.
//!
//! A name is a database reference when it qualifies another name (`db.table`, `` `db`.`t` ``,
//! `db.table.column`) and is the name of a database on the server or of a dumped database
//! (the source may live on another server). Text inside string literals and comments is not
//! code and is skipped. A table alias spelled like a database is reported too: a false alarm
//! costs a look, a missed reference costs production data. The server's own schemas
//! (`mysql`, `information_schema`, `performance_schema`, `sys`) are not reported.

use std::collections::BTreeSet;

use super::{
    MariadbRestoreOptions, MariadbSource, SYSTEM_DATABASES, decode_hex_field, hex_literal,
};
use super::{SourceError, restore_targets};
use crate::isolation::{ExternalReference, IsolationReport, ObjectKind, ScheduledObject};

impl MariadbSource {
    /// Checks the databases a restore with `options` wrote (see the module doc).
    pub async fn isolation_report(
        &self,
        options: &MariadbRestoreOptions,
    ) -> Result<IsolationReport, SourceError> {
        let targets = restore_targets(options)?;
        let names: Vec<String> = targets.iter().map(|name| hex_literal(name)).collect();
        let names = names.join(", ");
        let rows = self
            .query_rows(&format!(
                "SELECT 'routine', HEX(ROUTINE_SCHEMA), HEX(ROUTINE_NAME), \
                        HEX(IFNULL(ROUTINE_DEFINITION, '')), '' \
                   FROM information_schema.ROUTINES WHERE HEX(ROUTINE_SCHEMA) IN ({names}) \
                 UNION ALL \
                 SELECT 'view', HEX(TABLE_SCHEMA), HEX(TABLE_NAME), HEX(VIEW_DEFINITION), '' \
                   FROM information_schema.VIEWS WHERE HEX(TABLE_SCHEMA) IN ({names}) \
                 UNION ALL \
                 SELECT 'trigger', HEX(TRIGGER_SCHEMA), HEX(TRIGGER_NAME), \
                        HEX(ACTION_STATEMENT), '' \
                   FROM information_schema.TRIGGERS WHERE HEX(TRIGGER_SCHEMA) IN ({names}) \
                 UNION ALL \
                 SELECT 'event', HEX(EVENT_SCHEMA), HEX(EVENT_NAME), HEX(EVENT_DEFINITION), \
                        STATUS \
                   FROM information_schema.EVENTS WHERE HEX(EVENT_SCHEMA) IN ({names});"
            ))
            .await?;
        let databases = self.all_database_names().await?;
        let mut report = IsolationReport::default();
        for row in rows {
            let [kind, schema, name, definition, status] = row.as_slice() else {
                return Err(SourceError::Other(
                    "unexpected object list from mariadb".to_owned(),
                ));
            };
            let kind = match kind.as_str() {
                "routine" => ObjectKind::Routine,
                "view" => ObjectKind::View,
                "trigger" => ObjectKind::Trigger,
                _ => ObjectKind::Event,
            };
            let schema = decode_hex_field(schema)?;
            let name = decode_hex_field(name)?;
            let definition = decode_hex_field(definition)?;
            if kind == ObjectKind::Event {
                report.scheduled.push(ScheduledObject {
                    kind,
                    container: schema.clone(),
                    name: name.clone(),
                    // SLAVESIDE_DISABLED events do not run here either.
                    enabled: status == "ENABLED",
                });
            }
            for database in qualifiers(&definition) {
                let is_source = options.dumped_databases.contains(&database);
                let known = databases.contains(&database) || is_source;
                // The copy is every database the restore wrote (a dump of several databases
                // restores them all): names among them are the copy's own.
                let inside = database == schema || targets.contains(&database);
                if inside || !known || SYSTEM_DATABASES.contains(&database.as_str()) {
                    continue;
                }
                report.external_references.push(ExternalReference {
                    kind,
                    container: schema.clone(),
                    name: name.clone(),
                    reaches: format!("database {database}"),
                    names_source: is_source,
                });
            }
        }
        Ok(report)
    }

    async fn all_database_names(&self) -> Result<BTreeSet<String>, SourceError> {
        let rows = self
            .query_rows("SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA;")
            .await?;
        rows.iter()
            .map(|row| decode_hex_field(row.first().map(String::as_str).unwrap_or_default()))
            .collect()
    }
}

/// Every name that qualifies another name in `sql` (`a` in `a.b` and `a.b.c`), outside string
/// literals and comments, in order of appearance, each once.
pub fn qualifiers(sql: &str) -> Vec<String> {
    let mut tokens = Tokens {
        text: sql.as_bytes(),
        at: 0,
    };
    let mut found: Vec<String> = Vec::new();
    let mut previous: Option<Token> = None;
    let mut before_previous: Option<Token> = None;
    while let Some(token) = tokens.next_token() {
        if let (Some(Token::Name(qualifier)), Some(Token::Dot), Token::Name(_)) =
            (&before_previous, &previous, &token)
            && !found.contains(qualifier)
        {
            found.push(qualifier.clone());
        }
        before_previous = previous.take();
        previous = Some(token);
    }
    found
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Name(String),
    Dot,
    Other,
}

struct Tokens<'a> {
    text: &'a [u8],
    at: usize,
}

impl Tokens<'_> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.text.get(self.at + offset).copied()
    }

    fn next_token(&mut self) -> Option<Token> {
        loop {
            let byte = self.peek(0)?;
            match byte {
                b' ' | b'\t' | b'\r' | b'\n' => self.at += 1,
                b'#' => self.skip_line(),
                b'-' if self.peek(1) == Some(b'-')
                    && self.peek(2).is_none_or(|c| c.is_ascii_whitespace()) =>
                {
                    self.skip_line()
                }
                b'/' if self.peek(1) == Some(b'*') && self.peek(2) == Some(b'!') => {
                    // An executable comment is code: drop only its version marker.
                    self.at += 3;
                    while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                        self.at += 1;
                    }
                }
                b'/' if self.peek(1) == Some(b'*') => self.skip_block_comment(),
                b'*' if self.peek(1) == Some(b'/') => self.at += 2,
                b'\'' | b'"' => {
                    self.skip_string(byte);
                    return Some(Token::Other);
                }
                b'`' => return Some(Token::Name(self.quoted_name())),
                b'.' => {
                    self.at += 1;
                    return Some(Token::Dot);
                }
                c if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 => {
                    let start = self.at;
                    while self.peek(0).is_some_and(|c| {
                        c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
                    }) {
                        self.at += 1;
                    }
                    let word = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
                    // A number (`1.5`) is not a name.
                    if word.bytes().all(|c| c.is_ascii_digit()) {
                        return Some(Token::Other);
                    }
                    return Some(Token::Name(word));
                }
                _ => {
                    self.at += 1;
                    return Some(Token::Other);
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(byte) = self.peek(0) {
            self.at += 1;
            if byte == b'\n' {
                break;
            }
        }
    }

    fn skip_block_comment(&mut self) {
        self.at += 2;
        while self.peek(0).is_some() {
            if self.peek(0) == Some(b'*') && self.peek(1) == Some(b'/') {
                self.at += 2;
                return;
            }
            self.at += 1;
        }
    }

    /// Skips a string literal: backslash escapes and doubled quotes stay inside.
    fn skip_string(&mut self, quote: u8) {
        self.at += 1;
        while let Some(byte) = self.peek(0) {
            self.at += 1;
            if byte == b'\\' {
                self.at += 1;
            } else if byte == quote {
                if self.peek(0) == Some(quote) {
                    self.at += 1;
                } else {
                    return;
                }
            }
        }
    }

    /// A backtick-quoted name; doubled backticks stand for one.
    fn quoted_name(&mut self) -> String {
        self.at += 1;
        let mut name = Vec::new();
        while let Some(byte) = self.peek(0) {
            self.at += 1;
            if byte == b'`' {
                if self.peek(0) == Some(b'`') {
                    self.at += 1;
                } else {
                    break;
                }
            }
            name.push(byte);
        }
        String::from_utf8_lossy(&name).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::qualifiers;

    #[test]
    fn qualified_names_are_found_outside_strings_and_comments() {
        assert_eq!(
            qualifiers("RETURN (SELECT COUNT(*) FROM shop.orders)"),
            ["shop"]
        );
        assert_eq!(
            qualifiers(
                "select `sh``op`.`orders`.`id` AS `id` from `sh``op` . `orders` join o.x \
                 where 'a.b' = \"c.d\" -- e.f\n /* g.h */ and 1.5 > 2 # i.j\n"
            ),
            ["sh`op", "orders", "o"]
        );
        assert_eq!(
            qualifiers("INSERT INTO /*!50000 other.t */ t VALUES ('it''s \\' x.y')"),
            ["other"]
        );
        assert!(qualifiers("SELECT 1").is_empty());
    }
}
