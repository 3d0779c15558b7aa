//! Passwords for the database tools: where they come from, how they reach a tool without a
//! command line, and how they are kept out of messages.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SourceError;

/// A secret string: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that hands it to a tool or a driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a password comes from. Serialized as `{"env": "NAME"}` or `{"file": "/path"}`; a
/// literal value exists only in code (e.g. read from a Kubernetes Secret by the runner) and is
/// never serialized.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PasswordSource {
    /// No password (trust, peer or certificate authentication).
    #[default]
    None,
    /// The value of this environment variable.
    Env(String),
    /// The content of this file, without one trailing newline (how Secret volumes and most
    /// editors leave it).
    File(PathBuf),
    /// A value already in memory.
    #[serde(skip)]
    Value(Secret),
}

impl PasswordSource {
    /// Reads the password. Errors name the variable or file, never a value.
    pub fn resolve(&self) -> Result<Option<Secret>, SourceError> {
        match self {
            PasswordSource::None => Ok(None),
            PasswordSource::Value(secret) => Ok(Some(secret.clone())),
            PasswordSource::Env(name) => match std::env::var(name) {
                Ok(value) => Ok(Some(Secret(value))),
                Err(std::env::VarError::NotPresent) => Err(SourceError::Other(format!(
                    "the password environment variable {name} is not set"
                ))),
                Err(std::env::VarError::NotUnicode(_)) => Err(SourceError::Other(format!(
                    "the password environment variable {name} is not valid UTF-8"
                ))),
            },
            PasswordSource::File(path) => {
                let mut value = std::fs::read_to_string(path).map_err(|error| {
                    SourceError::Other(format!(
                        "cannot read the password file {}: {error}",
                        path.display()
                    ))
                })?;
                if value.ends_with('\n') {
                    value.pop();
                    if value.ends_with('\r') {
                        value.pop();
                    }
                }
                Ok(Some(Secret(value)))
            }
        }
    }
}

/// Replaces every occurrence of the secret in `text` (tool stderr, driver errors) — tools do
/// not print passwords, but a message must never carry one even if a tool someday does.
pub fn scrub(text: &str, secret: Option<&Secret>) -> String {
    match secret {
        Some(secret) if !secret.0.is_empty() => text.replace(&secret.0, "***"),
        _ => text.to_owned(),
    }
}

/// A file only this user can read (mode 0600, which `tempfile` guarantees on Unix), removed
/// when dropped: how option files and password files reach a tool.
pub fn private_temp_file(
    prefix: &str,
    contents: &str,
) -> Result<tempfile::NamedTempFile, SourceError> {
    let mut file = tempfile::Builder::new().prefix(prefix).tempfile()?;
    file.write_all(contents.as_bytes())?;
    file.flush()?;
    Ok(file)
}

/// The path of a temp file as a string argument for a tool option.
pub fn path_arg(prefix: &str, path: &Path) -> String {
    format!("{prefix}{}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_hides_the_value() {
        let source = PasswordSource::Value(Secret::new("hunter2"));
        assert!(!format!("{source:?}").contains("hunter2"));
    }

    #[test]
    fn file_source_strips_one_newline() {
        let file = private_temp_file("pw-", "s3cr:et\n\n").unwrap();
        let secret = PasswordSource::File(file.path().to_path_buf())
            .resolve()
            .unwrap();
        assert_eq!(secret.unwrap().expose(), "s3cr:et\n");
    }

    #[test]
    fn temp_files_are_private() {
        let file = private_temp_file("pw-", "x").unwrap();
        let mode = std::fs::metadata(file.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn scrub_removes_the_secret() {
        let secret = Secret::new("p@ss");
        assert_eq!(
            scrub("bad p@ss here p@ss", Some(&secret)),
            "bad *** here ***"
        );
        assert_eq!(scrub("x", None), "x");
    }

    #[test]
    fn serde_forms() {
        let env: PasswordSource = serde_json::from_str(r#"{"env":"PGPW"}"#).unwrap();
        assert_eq!(env, PasswordSource::Env("PGPW".into()));
        let file: PasswordSource = serde_json::from_str(r#"{"file":"/run/pw"}"#).unwrap();
        assert_eq!(file, PasswordSource::File("/run/pw".into()));
    }
}
