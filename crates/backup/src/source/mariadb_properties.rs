//! A MariaDB/MySQL database's own properties: its default character set and collation (what
//! every table, column and routine created later in it inherits) and its comment (MariaDB
//! 10.5+). A dump of one database (made without `--databases`) holds none of them, so they are
//! read at dump time from `information_schema.SCHEMATA`, recorded in the manifest, and given to
//! the `CREATE DATABASE` of the restore's staging database; the commit gives the target the
//! staging database's (see `mariadb::staged`). A server that lacks the character set or
//! collation fails the restore with [`SourceError::UnsupportedProperty`] naming it, before any
//! data streams.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::SourceError;
use super::mariadb::{MariadbSource, decode_hex_field, hex_literal, quote_ident};

/// The properties of one MariaDB database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MariadbDatabaseProperties {
    /// Default character set, e.g. `latin1`, `utf8mb4`.
    pub character_set: String,
    /// Default collation, e.g. `latin1_german1_ci`.
    pub collation: String,
    /// The database's comment (MariaDB 10.5+), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The properties of each dumped database, by its dumped name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MariadbDatabasesProperties(pub BTreeMap<String, MariadbDatabaseProperties>);

/// Reads the properties of `databases` on `source`'s server.
pub async fn read_properties(
    source: &MariadbSource,
    databases: &[String],
) -> Result<MariadbDatabasesProperties, SourceError> {
    if databases.is_empty() {
        return Ok(MariadbDatabasesProperties::default());
    }
    // SCHEMA_COMMENT exists from MariaDB 10.5 on (not in MySQL).
    let has_comment = source
        .query_rows(
            "SELECT COUNT(*) FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'SCHEMATA' \
               AND COLUMN_NAME = 'SCHEMA_COMMENT';",
        )
        .await?
        .first()
        .and_then(|row| row.first())
        .is_some_and(|count| count != "0");
    let names: Vec<String> = databases.iter().map(|name| hex_literal(name)).collect();
    let comment = if has_comment {
        "HEX(SCHEMA_COMMENT)"
    } else {
        "''"
    };
    let rows = source
        .query_rows(&format!(
            "SELECT HEX(SCHEMA_NAME), HEX(DEFAULT_CHARACTER_SET_NAME), \
                    HEX(DEFAULT_COLLATION_NAME), {comment} \
             FROM information_schema.SCHEMATA WHERE HEX(SCHEMA_NAME) IN ({});",
            names.join(", ")
        ))
        .await?;
    let mut properties = BTreeMap::new();
    for row in rows {
        let [name, character_set, collation, rest @ ..] = row.as_slice() else {
            return Err(SourceError::Other(
                "unexpected SCHEMATA row from mariadb".to_owned(),
            ));
        };
        let comment = match rest.first() {
            Some(hex) if !hex.is_empty() => Some(decode_hex_field(hex)?),
            _ => None,
        };
        properties.insert(
            decode_hex_field(name)?,
            MariadbDatabaseProperties {
                character_set: decode_hex_field(character_set)?,
                collation: decode_hex_field(collation)?,
                comment,
            },
        );
    }
    Ok(MariadbDatabasesProperties(properties))
}

impl MariadbDatabaseProperties {
    /// The options of `CREATE DATABASE`: ` CHARACTER SET … COLLATE … COMMENT '…'`. The comment
    /// is a literal with only `'` doubled: the session running it sets `NO_BACKSLASH_ESCAPES`
    /// (see [`SESSION_SETUP`]), so a backslash is an ordinary character.
    pub fn create_options(&self) -> String {
        let mut options = format!(
            " CHARACTER SET {} COLLATE {}",
            quote_ident(&self.character_set),
            quote_ident(&self.collation)
        );
        if let Some(comment) = &self.comment {
            options.push_str(&format!(" COMMENT '{}'", comment.replace('\'', "''")));
        }
        options
    }

    /// `ALTER DATABASE` giving `database` (whose properties are now `current`) these
    /// properties: character set and collation always, the comment when it differs (an
    /// absent comment clears one `current` has; servers without comments never get a
    /// `COMMENT` clause, as neither side has one there). Quoted like [`Self::create_options`].
    pub fn alter_statement(&self, database: &str, current: &Self) -> String {
        let mut sql = format!(
            "ALTER DATABASE {} CHARACTER SET {} COLLATE {}",
            quote_ident(database),
            quote_ident(&self.character_set),
            quote_ident(&self.collation)
        );
        if self.comment != current.comment {
            let comment = self.comment.as_deref().unwrap_or_default();
            sql.push_str(&format!(" COMMENT '{}'", comment.replace('\'', "''")));
        }
        sql.push_str(";\n");
        sql
    }

    /// The error for a failed `CREATE DATABASE` with these options: which property the server
    /// lacks, when its message says so.
    pub fn create_failure(&self, error: SourceError) -> SourceError {
        let message = error.to_string();
        let property = if message.contains("Unknown collation") {
            format!("collation {:?}", self.collation)
        } else if message.contains("Unknown character set") {
            format!("character set {:?}", self.character_set)
        } else if message.contains("COLLATION") && message.contains("is not valid for") {
            format!(
                "collation {:?} with character set {:?}",
                self.collation, self.character_set
            )
        } else {
            return error;
        };
        SourceError::UnsupportedProperty { property, message }
    }
}

/// What a session that creates databases with [`MariadbDatabaseProperties::create_options`]
/// runs first: UTF-8 for the comment's bytes, and backslashes as ordinary characters.
pub const SESSION_SETUP: &str =
    "SET NAMES utf8mb4;\nSET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES';\n";

impl MariadbDatabasesProperties {
    /// The `CREATE DATABASE` statement for `target`, restored from the dumped database
    /// `dumped`, with that database's properties (the server's defaults when none were
    /// recorded, as in manifests written before properties were).
    pub fn create_statement(&self, target: &str, dumped: &str) -> String {
        let options = self
            .0
            .get(dumped)
            .map(MariadbDatabaseProperties::create_options)
            .unwrap_or_default();
        format!("CREATE DATABASE {}{options};\n", quote_ident(target))
    }

    /// Classifies a failed creation of the databases from `dumped` (see
    /// [`MariadbDatabaseProperties::create_failure`]).
    pub fn create_failure(&self, dumped: &[String], error: SourceError) -> SourceError {
        let message = error.to_string();
        let failing = dumped
            .iter()
            .filter_map(|name| self.0.get(name))
            .find(|properties| {
                message.contains(&properties.collation)
                    || message.contains(&properties.character_set)
            });
        match failing {
            Some(properties) => properties.create_failure(error),
            None => error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_statements_quote_everything() {
        let properties = MariadbDatabasesProperties(BTreeMap::from([(
            "shop".to_owned(),
            MariadbDatabaseProperties {
                character_set: "latin1".into(),
                collation: "latin1_german1_ci".into(),
                comment: Some(r"it's a \ `shop`".into()),
            },
        )]));
        assert_eq!(
            properties.create_statement("new`db", "shop"),
            "CREATE DATABASE `new``db` CHARACTER SET `latin1` COLLATE `latin1_german1_ci` \
             COMMENT 'it''s a \\ `shop`';\n"
        );
        assert_eq!(
            properties.create_statement("x", "other"),
            "CREATE DATABASE `x`;\n"
        );
    }

    #[test]
    fn alter_statements_set_or_clear_a_differing_comment() {
        let with = |comment: Option<&str>| MariadbDatabaseProperties {
            character_set: "latin1".into(),
            collation: "latin1_swedish_ci".into(),
            comment: comment.map(str::to_owned),
        };
        assert_eq!(
            with(Some("it's")).alter_statement("t`x", &with(None)),
            "ALTER DATABASE `t``x` CHARACTER SET `latin1` COLLATE `latin1_swedish_ci` \
             COMMENT 'it''s';\n"
        );
        assert_eq!(
            with(None).alter_statement("t", &with(Some("old"))),
            "ALTER DATABASE `t` CHARACTER SET `latin1` COLLATE `latin1_swedish_ci` \
             COMMENT '';\n"
        );
        assert_eq!(
            with(Some("same")).alter_statement("t", &with(Some("same"))),
            "ALTER DATABASE `t` CHARACTER SET `latin1` COLLATE `latin1_swedish_ci`;\n"
        );
    }

    #[test]
    fn unknown_collations_are_named() {
        let properties = MariadbDatabaseProperties {
            character_set: "utf8mb4".into(),
            collation: "utf8mb4_0900_ai_ci".into(),
            comment: None,
        };
        let error = properties.create_failure(SourceError::Tool {
            tool: "mariadb".into(),
            message: "ERROR 1273 (HY000) at line 3: Unknown collation: 'utf8mb4_0900_ai_ci'".into(),
        });
        assert!(
            matches!(&error, SourceError::UnsupportedProperty { property, .. }
                if property.contains("utf8mb4_0900_ai_ci")),
            "{error:?}"
        );
    }
}
