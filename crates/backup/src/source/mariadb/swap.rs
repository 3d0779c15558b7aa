//! Moving everything a database holds into another database of the same server: MariaDB has
//! no `RENAME DATABASE`, so a staged restore is committed by moving the staging database's
//! contents into the target (and, when overwriting, the old target's contents aside first).
//!
//! What moves how:
//! - base tables (and sequences, system-versioned tables) with one `RENAME TABLE` statement,
//!   which is atomic: all of them move or none does — the data is never split or copied;
//! - triggers cannot cross schemas with their table ("Trigger in wrong schema"), so they are
//!   read (`SHOW CREATE TRIGGER`), dropped, and created again after the move, in their order;
//! - views cannot be renamed into another schema; they are created in the destination from
//!   `SHOW CREATE VIEW` read with the source as the current database (references inside the
//!   same database are then unqualified, so they follow the tables), dependencies first;
//! - stored functions, procedures and events are created in the destination from their
//!   `SHOW CREATE` text with the `sql_mode`, character set and time zone they were created
//!   with, then dropped from the source.
//!
//! A failure while moving tables leaves them where they were (the statement is atomic) and
//! puts dropped triggers back; the caller undoes completed moves by moving back.

use super::{MariadbSource, decode_hex_field, hex_literal, quote_ident};
use crate::source::SourceError;

/// One object definition to create again elsewhere.
#[derive(Clone, Debug)]
struct Definition {
    /// `TRIGGER`, `VIEW`, `FUNCTION`, `PROCEDURE` or `EVENT`.
    kind: &'static str,
    name: String,
    create: String,
    sql_mode: Option<String>,
    charset_client: String,
    collation_connection: String,
    time_zone: Option<String>,
}

/// What a database holds besides its tables' data.
#[derive(Debug, Default)]
struct Contents {
    tables: Vec<String>,
    triggers: Vec<Definition>,
    views: Vec<Definition>,
    routines: Vec<Definition>,
    events: Vec<Definition>,
}

impl Contents {
    fn is_empty(&self) -> bool {
        self.tables.is_empty()
            && self.triggers.is_empty()
            && self.views.is_empty()
            && self.routines.is_empty()
            && self.events.is_empty()
    }
}

impl MariadbSource {
    /// Moves every table, view, trigger, routine and event of `from` into `to` (which must
    /// exist and hold none of those names).
    pub(super) async fn move_contents(&self, from: &str, to: &str) -> Result<(), SourceError> {
        let contents = self.read_contents(from).await?;
        if contents.is_empty() {
            return Ok(());
        }
        let delimiter = delimiter_for(&contents);
        if !contents.tables.is_empty() {
            let mut script = format!("DELIMITER {delimiter}\n");
            for trigger in &contents.triggers {
                script.push_str(&format!(
                    "DROP TRIGGER {}.{}{delimiter}\n",
                    quote_ident(from),
                    quote_ident(&trigger.name)
                ));
            }
            let pairs: Vec<String> = contents
                .tables
                .iter()
                .map(|table| {
                    format!(
                        "{}.{} TO {}.{}",
                        quote_ident(from),
                        quote_ident(table),
                        quote_ident(to),
                        quote_ident(table)
                    )
                })
                .collect();
            script.push_str(&format!("RENAME TABLE {}{delimiter}\n", pairs.join(", ")));
            if let Err(error) = self.run_script(&script).await {
                // The rename is atomic: the tables are still in `from`; so must the triggers be.
                let restore = create_script(from, &contents.triggers, &delimiter);
                let _ = self.run_script(&restore).await;
                return Err(error);
            }
        }
        let mut definitions = contents.triggers.clone();
        definitions.extend(contents.routines.iter().cloned());
        definitions.extend(contents.events.iter().cloned());
        if !definitions.is_empty() {
            self.run_script(&create_script(to, &definitions, &delimiter))
                .await?;
        }
        self.create_views(to, &contents.views, &delimiter).await?;
        let mut drops = format!("DELIMITER {delimiter}\n");
        for definition in contents
            .views
            .iter()
            .chain(&contents.routines)
            .chain(&contents.events)
        {
            drops.push_str(&format!(
                "DROP {} IF EXISTS {}.{}{delimiter}\n",
                definition.kind,
                quote_ident(from),
                quote_ident(&definition.name)
            ));
        }
        self.run_script(&drops).await
    }

    /// Creates views so that each one's dependencies exist first: a view that fails is tried
    /// again after the others, until a round makes no progress.
    async fn create_views(
        &self,
        database: &str,
        views: &[Definition],
        delimiter: &str,
    ) -> Result<(), SourceError> {
        let mut pending: Vec<&Definition> = views.iter().collect();
        while !pending.is_empty() {
            let mut failed = Vec::new();
            let mut last_error = None;
            for view in &pending {
                let script = create_script(database, std::slice::from_ref(*view), delimiter);
                if let Err(error) = self.run_script(&script).await {
                    failed.push(*view);
                    last_error = Some(error);
                }
            }
            if failed.len() == pending.len() {
                return Err(last_error.unwrap_or_else(|| {
                    SourceError::Other("views could not be created".to_owned())
                }));
            }
            pending = failed;
        }
        Ok(())
    }

    async fn read_contents(&self, database: &str) -> Result<Contents, SourceError> {
        let schema = hex_literal(database);
        let mut contents = Contents::default();
        for row in self
            .query_rows(&format!(
                "SELECT HEX(TABLE_NAME), TABLE_TYPE = 'VIEW' FROM information_schema.TABLES \
                 WHERE HEX(TABLE_SCHEMA) = {schema} ORDER BY TABLE_NAME;"
            ))
            .await?
        {
            let name = decode_hex_field(field(&row, 0)?)?;
            if field(&row, 1)? == "1" {
                contents
                    .views
                    .push(self.show_create(database, "VIEW", &name).await?);
            } else {
                contents.tables.push(name);
            }
        }
        for row in self
            .query_rows(&format!(
                "SELECT HEX(TRIGGER_NAME) FROM information_schema.TRIGGERS \
                 WHERE HEX(TRIGGER_SCHEMA) = {schema} \
                 ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER;"
            ))
            .await?
        {
            let name = decode_hex_field(field(&row, 0)?)?;
            contents
                .triggers
                .push(self.show_create(database, "TRIGGER", &name).await?);
        }
        for row in self
            .query_rows(&format!(
                "SELECT ROUTINE_TYPE, HEX(ROUTINE_NAME) FROM information_schema.ROUTINES \
                 WHERE HEX(ROUTINE_SCHEMA) = {schema} ORDER BY ROUTINE_TYPE, ROUTINE_NAME;"
            ))
            .await?
        {
            let kind = match field(&row, 0)? {
                "FUNCTION" => "FUNCTION",
                "PROCEDURE" => "PROCEDURE",
                other => {
                    return Err(SourceError::Other(format!(
                        "database {database:?} holds a stored {other}, which cannot be moved \
                         between databases; restore into a new database instead of overwriting"
                    )));
                }
            };
            let name = decode_hex_field(field(&row, 1)?)?;
            contents
                .routines
                .push(self.show_create(database, kind, &name).await?);
        }
        for row in self
            .query_rows(&format!(
                "SELECT HEX(EVENT_NAME) FROM information_schema.EVENTS \
                 WHERE HEX(EVENT_SCHEMA) = {schema} ORDER BY EVENT_NAME;"
            ))
            .await?
        {
            let name = decode_hex_field(field(&row, 0)?)?;
            contents
                .events
                .push(self.show_create(database, "EVENT", &name).await?);
        }
        Ok(contents)
    }

    /// `SHOW CREATE <kind>` with `database` as the current database, parsed by kind:
    /// VIEW → name, text, charset, collation; TRIGGER → name, sql_mode, text, charset,
    /// collation, …; FUNCTION/PROCEDURE → name, sql_mode, text, charset, collation, …;
    /// EVENT → name, sql_mode, time_zone, text, charset, collation, ….
    async fn show_create(
        &self,
        database: &str,
        kind: &'static str,
        name: &str,
    ) -> Result<Definition, SourceError> {
        let rows = self
            .script_rows(&format!(
                "USE {};\nSHOW CREATE {kind} {};",
                quote_ident(database),
                quote_ident(name)
            ))
            .await?;
        let row = rows.first().ok_or_else(|| {
            SourceError::Other(format!("SHOW CREATE {kind} returned nothing for {name:?}"))
        })?;
        let (sql_mode, time_zone, create, charset) = match kind {
            "VIEW" => (None, None, 1, 2),
            "EVENT" => (Some(1), Some(2), 3, 4),
            _ => (Some(1), None, 2, 3),
        };
        let text = |index: usize| field(row, index).map(unescape_batch);
        Ok(Definition {
            kind,
            name: name.to_owned(),
            create: text(create)?,
            sql_mode: sql_mode.map(text).transpose()?,
            charset_client: text(charset)?,
            collation_connection: text(charset + 1)?,
            time_zone: time_zone.map(text).transpose()?,
        })
    }

    /// Rows of a query's output, read as utf8mb4 (definitions may hold any text).
    async fn script_rows(&self, sql: &str) -> Result<Vec<Vec<String>>, SourceError> {
        let (mut tool, _password) = self.tool(&self.client_tool(), "mariadb")?;
        tool.args([
            "--batch",
            "--skip-column-names",
            "--default-character-set=utf8mb4",
        ]);
        let output = tool.output(Some(sql.as_bytes())).await?;
        Ok(String::from_utf8_lossy(&output)
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect())
    }

    /// Runs a script through the `mariadb` client in binary mode (no client commands but
    /// `DELIMITER`, bytes passed as they are), stopping at the first error.
    async fn run_script(&self, script: &str) -> Result<(), SourceError> {
        let (mut tool, _password) = self.tool(&self.client_tool(), "mariadb")?;
        tool.args([
            "--binary-mode",
            "--batch",
            "--default-character-set=utf8mb4",
        ]);
        tool.output(Some(script.as_bytes())).await.map(|_| ())
    }
}

/// A script creating `definitions` in `database`, each with its own session settings.
fn create_script(database: &str, definitions: &[Definition], delimiter: &str) -> String {
    let mut script = format!(
        "DELIMITER {delimiter}\nUSE {}{delimiter}\n",
        quote_ident(database)
    );
    for definition in definitions {
        let mut settings = vec![
            format!(
                "character_set_client = {}",
                word(&definition.charset_client)
            ),
            format!(
                "collation_connection = {}",
                word(&definition.collation_connection)
            ),
        ];
        if let Some(sql_mode) = &definition.sql_mode {
            settings.push(format!("sql_mode = X{}", hex_literal(sql_mode)));
        }
        if let Some(time_zone) = &definition.time_zone {
            settings.push(format!("time_zone = X{}", hex_literal(time_zone)));
        }
        script.push_str(&format!(
            "SET SESSION {}{delimiter}\n{}{delimiter}\n",
            settings.join(", "),
            definition.create
        ));
    }
    script
}

/// A character set or collation name as the server printed it; anything but letters, digits
/// and `_` (never seen in one) falls back to the server's own name `utf8mb4`.
fn word(value: &str) -> String {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        value.to_owned()
    } else {
        "utf8mb4".to_owned()
    }
}

/// A statement delimiter that appears in no definition's text.
fn delimiter_for(contents: &Contents) -> String {
    let texts: Vec<&str> = contents
        .triggers
        .iter()
        .chain(&contents.views)
        .chain(&contents.routines)
        .chain(&contents.events)
        .map(|definition| definition.create.as_str())
        .collect();
    let mut delimiter = String::from("$$vertice$$");
    while texts.iter().any(|text| text.contains(&delimiter)) {
        delimiter.push('$');
    }
    delimiter
}

fn field(row: &[String], index: usize) -> Result<&str, SourceError> {
    row.get(index)
        .map(String::as_str)
        .ok_or_else(|| SourceError::Other("unexpected output from mariadb".to_owned()))
}

/// Undoes the escaping of `mariadb --batch` output: `\n`, `\t`, `\0` and `\\`.
fn unescape_batch(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_escapes_are_undone() {
        assert_eq!(unescape_batch(r"a\nb\tc\\n\0"), "a\nb\tc\\n\0");
    }

    #[test]
    fn settings_words_are_checked() {
        assert_eq!(word("utf8mb4_general_ci"), "utf8mb4_general_ci");
        assert_eq!(word("x; DROP"), "utf8mb4");
    }
}
