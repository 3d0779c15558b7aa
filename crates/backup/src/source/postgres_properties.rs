//! A PostgreSQL database's own properties, which `pg_dump` without `--create` leaves out of
//! the archive: encoding, collation and character classification (libc, ICU or builtin
//! locale provider), connection limit, comment, and the settings made with
//! `ALTER DATABASE … SET` and `ALTER ROLE … IN DATABASE … SET`.
//!
//! They are read at dump time (from `pg_database` and `pg_db_role_setting`, through
//! `to_jsonb` so the columns of every server version from 13 on are read the same way),
//! recorded in the manifest, and given to the restore's target: the encoding and locale in its
//! `CREATE DATABASE` (they cannot change later), the rest as statements run on the restored
//! database before it takes the target's name. A server that cannot provide one of them (a
//! locale it lacks, a setting it does not know) fails the restore with
//! [`SourceError::UnsupportedProperty`] naming it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::SourceError;
use super::postgres::quote_ident;

/// The properties of one PostgreSQL database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresDatabaseProperties {
    /// Server encoding, e.g. `UTF8`, `LATIN1`, `SQL_ASCII`.
    pub encoding: String,
    /// `LC_COLLATE` (the libc locale for sorting), e.g. `C`, `de_DE.UTF-8`.
    pub collate: String,
    /// `LC_CTYPE` (the libc locale for character classes).
    pub ctype: String,
    /// Locale provider: `libc` (the default), `icu` (PostgreSQL 15+) or `builtin` (17+).
    #[serde(default = "libc")]
    pub locale_provider: String,
    /// The ICU locale (provider `icu`) or builtin locale (provider `builtin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_locale: Option<String>,
    /// ICU tailoring rules (PostgreSQL 16+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icu_rules: Option<String>,
    /// Connection limit for non-superusers; -1 is none.
    #[serde(default = "no_limit")]
    pub connection_limit: i32,
    /// `COMMENT ON DATABASE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `ALTER DATABASE … SET` settings, as `pg_db_role_setting` keeps them (`name=value`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// `ALTER ROLE … IN DATABASE … SET` settings, by role name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub role_settings: BTreeMap<String, Vec<String>>,
}

fn libc() -> String {
    "libc".to_owned()
}

fn no_limit() -> i32 {
    -1
}

/// Reads the properties of the database `client` is connected to.
pub async fn read_properties(client: &Client) -> Result<PostgresDatabaseProperties, SourceError> {
    let failed = |error: tokio_postgres::Error| {
        SourceError::Other(format!(
            "reading the database's properties: {}",
            error_text(&error)
        ))
    };
    let row = client
        .query_one(
            "SELECT to_jsonb(d)::text, pg_catalog.pg_encoding_to_char(d.encoding)::text, \
                    pg_catalog.shobj_description(d.oid, 'pg_database') \
             FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()",
            &[],
        )
        .await
        .map_err(failed)?;
    let json: String = row.try_get(0).map_err(failed)?;
    let encoding: String = row.try_get(1).map_err(failed)?;
    let comment: Option<String> = row.try_get(2).map_err(failed)?;
    let columns: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&json)
        .map_err(|error| SourceError::Other(format!("unexpected pg_database row: {error}")))?;
    let text = |name: &str| {
        columns
            .get(name)
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    let locale_provider = match text("datlocprovider").as_deref() {
        Some("i") => "icu",
        Some("b") => "builtin",
        _ => "libc",
    };
    // PostgreSQL 15–16 call the provider's locale `daticulocale`, 17+ `datlocale`.
    let provider_locale = match locale_provider {
        "libc" => None,
        _ => text("datlocale").or_else(|| text("daticulocale")),
    };
    let mut properties = PostgresDatabaseProperties {
        encoding,
        collate: text("datcollate").unwrap_or_else(|| "C".to_owned()),
        ctype: text("datctype").unwrap_or_else(|| "C".to_owned()),
        locale_provider: locale_provider.to_owned(),
        provider_locale,
        icu_rules: text("daticurules").filter(|rules| !rules.is_empty()),
        connection_limit: columns
            .get("datconnlimit")
            .and_then(serde_json::Value::as_i64)
            .and_then(|limit| i32::try_from(limit).ok())
            .unwrap_or(-1),
        comment,
        settings: Vec::new(),
        role_settings: BTreeMap::new(),
    };
    let rows = client
        .query(
            "SELECT r.rolname::text, s.setconfig \
             FROM pg_catalog.pg_db_role_setting s \
             LEFT JOIN pg_catalog.pg_roles r ON r.oid = s.setrole \
             WHERE s.setdatabase = (SELECT oid FROM pg_catalog.pg_database \
                                    WHERE datname = pg_catalog.current_database()) \
             ORDER BY 1 NULLS FIRST",
            &[],
        )
        .await
        .map_err(failed)?;
    for row in rows {
        let role: Option<String> = row.try_get(0).map_err(failed)?;
        let settings: Vec<String> = row
            .try_get::<_, Option<Vec<String>>>(1)
            .map_err(failed)?
            .unwrap_or_default();
        match role {
            None => properties.settings = settings,
            Some(role) => {
                properties.role_settings.insert(role, settings);
            }
        }
    }
    Ok(properties)
}

impl PostgresDatabaseProperties {
    /// The `CREATE DATABASE` statement for `database` with these properties (from
    /// `template0`, the only template that accepts any encoding and locale).
    pub fn create_statement(&self, database: &str) -> String {
        let mut sql = format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote_ident(database),
            quote_literal(&self.encoding),
            quote_literal(&self.collate),
            quote_literal(&self.ctype)
        );
        // Only a non-default provider is named, so libc databases restore onto servers older
        // than 15, which do not know LOCALE_PROVIDER.
        if self.locale_provider != "libc" {
            sql.push_str(&format!(
                " LOCALE_PROVIDER {}",
                quote_literal(&self.locale_provider)
            ));
            if let Some(locale) = &self.provider_locale {
                let option = if self.locale_provider == "builtin" {
                    "BUILTIN_LOCALE"
                } else {
                    "ICU_LOCALE"
                };
                sql.push_str(&format!(" {option} {}", quote_literal(locale)));
            }
            if let Some(rules) = &self.icu_rules {
                sql.push_str(&format!(" ICU_RULES {}", quote_literal(rules)));
            }
        }
        sql
    }

    /// Which property a failed `CREATE DATABASE` is about, from the server's message (which
    /// quotes the locale or encoding it could not use); all of them when it names none.
    pub fn create_failure(&self, message: &str) -> SourceError {
        let mut candidates = vec![
            ("LC_COLLATE", Some(&self.collate)),
            ("LC_CTYPE", Some(&self.ctype)),
            ("ICU/builtin locale", self.provider_locale.as_ref()),
            ("encoding", Some(&self.encoding)),
            ("locale provider", Some(&self.locale_provider)),
        ];
        candidates.retain(|(_, value)| value.is_some());
        let named = candidates.iter().find_map(|(what, value)| {
            let value = (*value)?;
            message
                .contains(&format!("\"{value}\""))
                .then(|| format!("{what} {value:?}"))
        });
        let property = named.unwrap_or_else(|| {
            format!(
                "encoding {:?} with LC_COLLATE {:?}, LC_CTYPE {:?}, locale provider {}{}",
                self.encoding,
                self.collate,
                self.ctype,
                self.locale_provider,
                self.provider_locale
                    .as_ref()
                    .map(|locale| format!(" ({locale:?})"))
                    .unwrap_or_default()
            )
        });
        SourceError::UnsupportedProperty {
            property,
            message: message.to_owned(),
        }
    }

    /// Applies the properties that can be set after creation — settings, role settings,
    /// comment, connection limit — to `database`, through `admin` (a session on another
    /// database of the same server). Role settings of roles the target lacks are skipped when
    /// `skip_missing_roles` (a restore with `--no-owner`), else they fail the restore with a
    /// hint; a setting the server rejects fails it with [`SourceError::UnsupportedProperty`].
    pub async fn apply(
        &self,
        admin: &Client,
        database: &str,
        skip_missing_roles: bool,
    ) -> Result<(), SourceError> {
        let db = quote_ident(database);
        for setting in &self.settings {
            let statement = format!("ALTER DATABASE {db} {}", set_clause(setting));
            run(admin, &statement, &format!("database setting {setting:?}")).await?;
        }
        for (role, settings) in &self.role_settings {
            if !role_exists(admin, role).await? {
                if skip_missing_roles {
                    continue;
                }
                return Err(SourceError::RestoreStatement {
                    tool: "vertice-backup".to_owned(),
                    message: format!(
                        "the source database has settings for role {role:?} (ALTER ROLE … IN \
                         DATABASE … SET), and role \"{role}\" does not exist on the target server"
                    ),
                    hint: Box::new(super::restore_failure::RestoreHint {
                        missing_role: Some(role.clone()),
                        no_owner: false,
                        no_privileges: false,
                        target: database.to_owned(),
                        backup: None,
                    }),
                });
            }
            for setting in settings {
                let statement = format!(
                    "ALTER ROLE {} IN DATABASE {db} {}",
                    quote_ident(role),
                    set_clause(setting)
                );
                let what = format!("setting {setting:?} of role {role:?} in the database");
                run(admin, &statement, &what).await?;
            }
        }
        if let Some(comment) = &self.comment {
            let statement = format!("COMMENT ON DATABASE {db} IS {}", quote_literal(comment));
            run(admin, &statement, "comment").await?;
        }
        if self.connection_limit != -1 {
            let statement = format!(
                "ALTER DATABASE {db} CONNECTION LIMIT {}",
                self.connection_limit
            );
            run(admin, &statement, "connection limit").await?;
        }
        Ok(())
    }
}

async fn run(admin: &Client, statement: &str, what: &str) -> Result<(), SourceError> {
    admin
        .batch_execute(statement)
        .await
        .map_err(|error| SourceError::UnsupportedProperty {
            property: what.to_owned(),
            message: error_text(&error),
        })
}

async fn role_exists(admin: &Client, role: &str) -> Result<bool, SourceError> {
    admin
        .query(
            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await
        .map(|rows| !rows.is_empty())
        .map_err(|error| {
            SourceError::Other(format!("looking up role {role:?}: {}", error_text(&error)))
        })
}

/// Settings whose value is a list of names, kept by the server with each element quoted as an
/// identifier where needed (`app, "$user", public`); the same list pg_dump special-cases
/// (`variable_is_guc_list_quote`).
const LIST_SETTINGS: [&str; 6] = [
    "local_preload_libraries",
    "search_path",
    "session_preload_libraries",
    "shared_preload_libraries",
    "temp_tablespaces",
    "unix_socket_directories",
];

/// `SET name = value` for one `name=value` entry of `pg_db_role_setting.setconfig`: list
/// settings become a list of literals (one per element), every other value one literal.
pub fn set_clause(entry: &str) -> String {
    let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
    let value = if LIST_SETTINGS.contains(&name.to_ascii_lowercase().as_str()) {
        split_list(value)
            .iter()
            .map(|element| quote_literal(element))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        quote_literal(value)
    };
    format!("SET {} = {value}", quote_ident(name))
}

/// Splits a list setting's value into its elements: separated by commas, each either a
/// double-quoted identifier (`""` is one quote) or a bare word, whitespace around ignored.
fn split_list(value: &str) -> Vec<String> {
    let mut elements = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut element = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.next_if_eq(&'"').is_some() {
                        element.push('"');
                    } else {
                        break;
                    }
                } else {
                    element.push(c);
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                element.push(c);
            }
            element = element.trim_end().to_owned();
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        elements.push(element);
        if chars.next_if_eq(&',').is_none() {
            break;
        }
    }
    elements
}

/// Quotes a PostgreSQL string literal: `'` doubled; with a backslash, the `E''` form and `\`
/// doubled, so the meaning does not depend on `standard_conforming_strings`.
pub fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

fn error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_settings_become_lists_of_literals() {
        assert_eq!(
            set_clause(r#"search_path=app, "$user", "we""ird", public"#),
            r#"SET "search_path" = 'app', '$user', 'we"ird', 'public'"#
        );
        assert_eq!(set_clause(r#"search_path="""#), r#"SET "search_path" = ''"#);
        assert_eq!(
            set_clause("statement_timeout=42s"),
            r#"SET "statement_timeout" = '42s'"#
        );
        assert_eq!(
            set_clause(r"app.note=it's a \ value=1"),
            r#"SET "app.note" = E'it''s a \\ value=1'"#
        );
    }

    #[test]
    fn create_names_a_provider_only_when_not_libc() {
        let libc = PostgresDatabaseProperties {
            encoding: "LATIN1".into(),
            collate: "C".into(),
            ctype: "C".into(),
            locale_provider: "libc".into(),
            connection_limit: -1,
            ..Default::default()
        };
        assert_eq!(
            libc.create_statement("a\"b"),
            "CREATE DATABASE \"a\"\"b\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
        );
        let icu = PostgresDatabaseProperties {
            locale_provider: "icu".into(),
            provider_locale: Some("de-DE".into()),
            ..libc
        };
        assert!(
            icu.create_statement("x")
                .ends_with("LOCALE_PROVIDER 'icu' ICU_LOCALE 'de-DE'")
        );
    }

    #[test]
    fn create_failures_name_the_property_the_server_quotes() {
        let properties = PostgresDatabaseProperties {
            encoding: "LATIN1".into(),
            collate: "de_DE.ISO-8859-1".into(),
            ctype: "de_DE.ISO-8859-1".into(),
            locale_provider: "libc".into(),
            ..Default::default()
        };
        let error = properties.create_failure("invalid locale name: \"de_DE.ISO-8859-1\"");
        assert!(
            error
                .to_string()
                .contains("LC_COLLATE \"de_DE.ISO-8859-1\""),
            "{error}"
        );
        let error = properties.create_failure("something else");
        assert!(error.to_string().contains("encoding \"LATIN1\""), "{error}");
    }

    #[test]
    fn old_manifest_shapes_parse() {
        let properties: PostgresDatabaseProperties =
            serde_json::from_str(r#"{"encoding":"UTF8","collate":"C","ctype":"C"}"#).unwrap();
        assert_eq!(properties.locale_provider, "libc");
        assert_eq!(properties.connection_limit, -1);
    }
}
