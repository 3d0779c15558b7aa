//! Messages for specs that do not parse (`runner` specs, `--source-spec` files), without the
//! secrets a user may have inlined by mistake.
//!
//! serde quotes the offending value: `password: hunter2` fails as "unknown variant `hunter2`",
//! and that message goes to stdout, the Job's log and its termination message. So before the
//! message leaves, every value under a secret-looking key is masked, and the message says how a
//! secret is given instead.

use serde_yaml::Value;

/// Key names (lowercase substrings) whose values are treated as secrets.
const SECRET_KEY_PARTS: &[&str] = &["password", "secret", "token"];

/// `error`'s message for the spec `text`, with inlined secrets masked.
pub fn describe(text: &str, error: &serde_yaml::Error) -> String {
    let mut message = error.to_string();
    let mut secrets = Vec::new();
    if let Ok(value) = serde_yaml::from_str::<Value>(text) {
        collect_secrets(&value, false, &mut secrets);
    }
    // Longest first, so a secret that contains another is masked whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    let mut masked = false;
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        if message.contains(secret.as_str()) {
            message = message.replace(secret.as_str(), "***");
            masked = true;
        }
    }
    if masked {
        message.push_str(
            " (a secret is given by reference, {env: NAME} or {file: /path}, never inline)",
        );
    }
    message
}

/// Pushes every scalar under a secret-looking key (at any depth) onto `out`.
fn collect_secrets(value: &Value, under_secret_key: bool, out: &mut Vec<String>) {
    match value {
        Value::Mapping(map) => {
            for (key, item) in map {
                let secret = key.as_str().is_some_and(|key| {
                    let key = key.to_ascii_lowercase();
                    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
                });
                collect_secrets(item, secret, out);
            }
        }
        Value::Sequence(items) => {
            for item in items {
                collect_secrets(item, under_secret_key, out);
            }
        }
        Value::Tagged(tagged) => collect_secrets(&tagged.value, under_secret_key, out),
        Value::String(text) if under_secret_key => out.push(text.clone()),
        Value::Number(number) if under_secret_key => out.push(number.to_string()),
        Value::Bool(_) | Value::Null | Value::String(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message_for(text: &str) -> String {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Reference {
            #[serde(rename = "env")]
            Env(String),
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Spec {
            password: Reference,
            host: String,
        }
        let error = serde_yaml::from_str::<Spec>(text).unwrap_err();
        describe(text, &error)
    }

    #[test]
    fn inlined_secrets_are_masked_and_references_explained() {
        let message = message_for("host: db\npassword: hunter2-secret\n");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("***"), "{message}");
        assert!(message.contains("{env: NAME}"), "{message}");
        let message = message_for("host: db\npassword: 12345678\n");
        assert!(!message.contains("12345678"), "{message}");
    }

    #[test]
    fn other_errors_are_unchanged() {
        let message = message_for("host: [1]\npassword: {env: PGPASSWORD}\n");
        assert!(message.contains("host"), "{message}");
        assert!(!message.contains("***"), "{message}");
        assert!(!message.contains("never inline"), "{message}");
    }
}
