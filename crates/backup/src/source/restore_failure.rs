//! What a user can do when `pg_restore` stops on a statement of the dump: the dump is intact,
//! so the error says how to get past it — the flags for a role the target lacks, and the exact
//! commands that restore the rest by hand when a statement cannot succeed as dumped (for
//! example a materialized view over an unqualified table name, which pg_dump's empty
//! `search_path` makes fail on `REFRESH`).

use std::fmt;

use super::SourceError;

/// How to get past a failed restore statement; shown under the error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreHint {
    /// The role the dump names that does not exist on the target, when that is what failed.
    pub missing_role: Option<String>,
    /// Whether the restore already ran with `--no-owner`.
    pub no_owner: bool,
    /// Whether the restore already ran with `--no-privileges`.
    pub no_privileges: bool,
    /// The database the restore was for.
    pub target: String,
    /// The backup's name, for the commands; filled in by the caller that knows it
    /// ([`SourceError::for_backup`]).
    pub backup: Option<String>,
}

impl fmt::Display for RestoreHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(role) = &self.missing_role {
            write!(
                f,
                "hint: the dump names role {role:?}, which does not exist on the target server: \
                 create it there first (e.g. from a globals dump)"
            )?;
            let mut flags = Vec::new();
            if !self.no_owner {
                flags.push("--no-owner (objects then belong to the restoring user)");
            }
            if !self.no_privileges {
                flags.push("--no-privileges (GRANTs to the dump's roles are skipped)");
            }
            if !flags.is_empty() {
                write!(f, ", or restore with {}", flags.join(" and "))?;
            }
            return f.write_str(".");
        }
        let backup = self.backup.as_deref().unwrap_or("<backup>");
        let file = format!("{backup}.pgdump");
        let mut pg_restore = format!("pg_restore --dbname={} ", shell_quote(&self.target));
        if self.no_owner {
            pg_restore.push_str("--no-owner ");
        }
        if self.no_privileges {
            pg_restore.push_str("--no-privileges ");
        }
        pg_restore.push_str(&shell_quote(&file));
        write!(
            f,
            "hint: the backup itself is intact, and nothing was left on the target. To restore \
             everything but the failing statement, write the dump to a file and run pg_restore \
             by hand, which goes on past errors and lists them at the end:\n  \
             vertice-backup restore --name {} --to-file {} (with this restore's store and key \
             flags)\n  createdb --template=template0 {}\n  {pg_restore}\nthen fix the failing \
             object by hand (e.g. a materialized view over an unqualified table name: qualify \
             the name, then REFRESH MATERIALIZED VIEW).",
            shell_quote(backup),
            shell_quote(&file),
            shell_quote(&self.target),
        )
    }
}

/// Turns a `pg_restore` failure on a statement into [`SourceError::RestoreStatement`] with a
/// hint; every other error (connection, a truncated stream, …) is returned unchanged.
pub fn classify_pg_restore_failure(
    error: SourceError,
    target: &str,
    no_owner: bool,
    no_privileges: bool,
) -> SourceError {
    match error {
        SourceError::Tool { tool, message }
            if message.contains("could not execute query") || message.contains("ERROR:") =>
        {
            let hint = RestoreHint {
                missing_role: missing_role(&message),
                no_owner,
                no_privileges,
                target: target.to_owned(),
                backup: None,
            };
            SourceError::RestoreStatement {
                tool,
                message,
                hint: Box::new(hint),
            }
        }
        other => other,
    }
}

impl SourceError {
    /// Names the backup in a restore hint's commands (other errors are unchanged).
    pub fn for_backup(self, backup: &str) -> Self {
        match self {
            SourceError::RestoreStatement {
                tool,
                message,
                mut hint,
            } => {
                hint.backup = Some(backup.to_owned());
                SourceError::RestoreStatement {
                    tool,
                    message,
                    hint,
                }
            }
            other => other,
        }
    }
}

/// The role of PostgreSQL's `role "<name>" does not exist`, if the message holds one.
pub fn missing_role(message: &str) -> Option<String> {
    const START: &str = "role \"";
    const END: &str = "\" does not exist";
    let start = message.find(START)? + START.len();
    let length = message[start..].find(END)?;
    Some(message[start..start + length].to_owned())
}

/// Quotes a word for a POSIX shell when it needs it (`'…'`, with `'` as `'\''`).
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool_error(stderr: &str) -> SourceError {
        SourceError::Tool {
            tool: "pg_restore".into(),
            message: format!("exited with exit status: 1: {stderr}"),
        }
    }

    #[test]
    fn a_missing_role_names_the_flags_not_yet_given() {
        let error = classify_pg_restore_failure(
            tool_error(
                "pg_restore: error: could not execute query: ERROR:  role \"app owner\" does \
                 not exist\nCommand was: ALTER TABLE public.t OWNER TO \"app owner\";",
            ),
            "shop",
            false,
            false,
        );
        let text = error.to_string();
        assert!(text.contains("\"app owner\""), "{text}");
        assert!(
            text.contains("--no-owner") && text.contains("--no-privileges"),
            "{text}"
        );
        let error = classify_pg_restore_failure(
            tool_error("ERROR:  role \"r\" does not exist\nCommand was: GRANT …"),
            "shop",
            true,
            false,
        );
        let text = error.to_string();
        assert!(
            !text.contains("--no-owner") && text.contains("--no-privileges"),
            "{text}"
        );
    }

    #[test]
    fn other_statement_failures_name_the_recovery_commands() {
        let error = classify_pg_restore_failure(
            tool_error(
                "pg_restore: error: could not execute query: ERROR:  relation \"t\" does not exist",
            ),
            "it's",
            true,
            false,
        )
        .for_backup("nightly-1");
        let text = error.to_string();
        assert!(
            text.contains("vertice-backup restore --name nightly-1 --to-file nightly-1.pgdump"),
            "{text}"
        );
        assert!(
            text.contains("pg_restore --dbname='it'\\''s' --no-owner nightly-1.pgdump"),
            "{text}"
        );
    }

    #[test]
    fn non_statement_failures_are_unchanged() {
        let error = classify_pg_restore_failure(
            tool_error("pg_restore: error: input file does not appear to be a valid archive"),
            "shop",
            false,
            false,
        );
        assert!(matches!(error, SourceError::Tool { .. }), "{error:?}");
    }
}
