//! Every value of a chart's `values.yaml` is documented: each key holding a value has a comment
//! right above it, or sits inside a documented key (e.g. the fields of `securityContext`).

use std::path::Path;

use anyhow::{Context, ensure};

/// Fails naming the undocumented keys of the `values.yaml` at `path`.
pub fn check(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let missing = undocumented(&text);
    ensure!(
        missing.is_empty(),
        "{}: values without a comment: {}",
        path.display(),
        missing.join(", ")
    );
    Ok(())
}

/// The dotted paths of keys that hold a value (inline, or as a block that is not made of
/// further keys) and have no comment above them or above any key they sit in.
pub fn undocumented(text: &str) -> Vec<String> {
    // (indent, key, documented) of the keys enclosing the current line.
    let mut stack: Vec<(usize, String, bool)> = Vec::new();
    let mut missing = Vec::new();
    let mut previous_is_comment = false;
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            previous_is_comment = false;
            continue;
        }
        if trimmed.starts_with('#') {
            previous_is_comment = true;
            continue;
        }
        let indent = line.len() - trimmed.len();
        let Some((key, value)) = key_of(trimmed) else {
            // A list item or a continuation: part of the enclosing key's value.
            previous_is_comment = false;
            continue;
        };
        while stack.last().is_some_and(|(open, _, _)| *open >= indent) {
            stack.pop();
        }
        let documented = previous_is_comment || stack.iter().any(|(_, _, doc)| *doc);
        let holds_keys = value.is_empty() && next_is_nested_key(&lines[index + 1..], indent);
        if !holds_keys && !documented {
            let mut path: Vec<&str> = stack.iter().map(|(_, key, _)| key.as_str()).collect();
            path.push(key);
            missing.push(path.join("."));
        }
        stack.push((indent, key.to_owned(), documented));
        previous_is_comment = false;
    }
    missing
}

/// `key: value` → (key, value) for a mapping key line.
fn key_of(trimmed: &str) -> Option<(&str, &str)> {
    if trimmed.starts_with('-') {
        return None;
    }
    let (key, value) = trimmed.split_once(':')?;
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    plain.then(|| (key, value.trim()))
}

/// Whether the next content line is a mapping key indented deeper than `indent`.
fn next_is_nested_key(rest: &[&str], indent: usize) -> bool {
    rest.iter()
        .map(|line| (line.len() - line.trim_start().len(), line.trim_start()))
        .find(|(_, trimmed)| !trimmed.is_empty() && !trimmed.starts_with('#'))
        .is_some_and(|(next_indent, trimmed)| next_indent > indent && key_of(trimmed).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_values_pass() {
        let text = "# -- replicas\nreplicaCount: 2\nimage:\n  # -- repo\n  repository: x\n# -- context\nsecurityContext:\n  runAsNonRoot: true\n  capabilities:\n    drop:\n      - ALL\n";
        assert!(undocumented(text).is_empty(), "{:?}", undocumented(text));
    }

    #[test]
    fn undocumented_values_are_named_with_their_path() {
        let text = "replicaCount: 2\nimage:\n  # -- repo\n  repository: x\n  tag: \"\"\n\n# -- separated by a blank line\n\nextraArgs: []\nlist:\n  - a\n";
        assert_eq!(
            undocumented(text),
            vec!["replicaCount", "image.tag", "extraArgs", "list"]
        );
    }
}
