//! Label selectors over the labels a manifest carries (`manifest.labels`), so listing and
//! retention see only one policy's backups when several share a prefix.
//!
//! The syntax is Kubernetes' equality-based one: requirements separated by commas, each
//! `key=value` (or `key==value`), `key!=value`, `key` (present) or `!key` (absent); all must
//! hold. The empty selector matches every backup.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::BackupError;

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Requirement {
    /// The label has exactly this value.
    Equals(String, String),
    /// The label is absent or has another value.
    NotEquals(String, String),
    /// The label is present (any value).
    Exists(String),
    /// The label is absent.
    Absent(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Equals(key, value) => labels.get(key) == Some(value),
            Self::NotEquals(key, value) => labels.get(key) != Some(value),
            Self::Exists(key) => labels.contains_key(key),
            Self::Absent(key) => !labels.contains_key(key),
        }
    }
}

/// A conjunction of label requirements; [`LabelSelector::default`] matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSelector {
    /// All must hold.
    pub requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// A selector requiring every `labels` pair (what the operator uses: its policy's UID).
    pub fn equal_to(labels: &BTreeMap<String, String>) -> Self {
        LabelSelector {
            requirements: labels
                .iter()
                .map(|(key, value)| Requirement::Equals(key.clone(), value.clone()))
                .collect(),
        }
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|requirement| requirement.matches(labels))
    }

    /// Whether this selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses each of `texts` (e.g. repeated `--selector` flags) and requires them all.
    /// Errors: `Config` naming the requirement that does not parse.
    pub fn parse_all(texts: &[String]) -> Result<Self, BackupError> {
        let mut requirements = Vec::new();
        for text in texts {
            requirements.extend(text.parse::<LabelSelector>()?.requirements);
        }
        Ok(LabelSelector { requirements })
    }
}

impl FromStr for LabelSelector {
    type Err = BackupError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut requirements = Vec::new();
        for part in text
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
        {
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector { requirements })
    }
}

fn parse_requirement(part: &str) -> Result<Requirement, BackupError> {
    let invalid = |why: &str| {
        BackupError::Config(format!(
            "invalid label selector {part:?}: {why} (use key=value, key!=value, key or !key)"
        ))
    };
    let (requirement, key, value) = if let Some((key, value)) = part.split_once("!=") {
        (
            Requirement::NotEquals as fn(String, String) -> Requirement,
            key,
            Some(value),
        )
    } else if let Some((key, value)) = part.split_once("==") {
        (
            Requirement::Equals as fn(String, String) -> Requirement,
            key,
            Some(value),
        )
    } else if let Some((key, value)) = part.split_once('=') {
        (
            Requirement::Equals as fn(String, String) -> Requirement,
            key,
            Some(value),
        )
    } else {
        let (absent, key) = match part.strip_prefix('!') {
            Some(key) => (true, key.trim()),
            None => (false, part),
        };
        check_key(key).map_err(&invalid)?;
        return Ok(if absent {
            Requirement::Absent(key.to_string())
        } else {
            Requirement::Exists(key.to_string())
        });
    };
    let key = key.trim();
    check_key(key).map_err(&invalid)?;
    let value = value.unwrap_or_default().trim();
    if value.contains(['=', '!', ',']) {
        return Err(invalid("a value holds no =, ! or ,"));
    }
    Ok(requirement(key.to_string(), value.to_string()))
}

fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("the key is empty");
    }
    if key.contains(['=', '!', ',', ' ']) {
        return Err("a key holds no =, !, comma or space");
    }
    Ok(())
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|requirement| match requirement {
                Requirement::Equals(key, value) => format!("{key}={value}"),
                Requirement::NotEquals(key, value) => format!("{key}!={value}"),
                Requirement::Exists(key) => key.clone(),
                Requirement::Absent(key) => format!("!{key}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn requirements_parse_and_match() {
        let policy_a = labels(&[("backup.vertice.dev/policy-uid", "a"), ("tier", "gold")]);
        let policy_b = labels(&[("backup.vertice.dev/policy-uid", "b")]);
        let none = labels(&[]);
        for (text, a, b, empty) in [
            ("", true, true, true),
            ("backup.vertice.dev/policy-uid=a", true, false, false),
            ("backup.vertice.dev/policy-uid==b", false, true, false),
            ("backup.vertice.dev/policy-uid!=a", false, true, true),
            ("tier", true, false, false),
            ("!tier", false, true, true),
            (
                "backup.vertice.dev/policy-uid=a, tier=gold",
                true,
                false,
                false,
            ),
            (
                "backup.vertice.dev/policy-uid=a,tier=silver",
                false,
                false,
                false,
            ),
            ("tier=", false, false, false),
        ] {
            let selector: LabelSelector = text.parse().unwrap();
            assert_eq!(selector.matches(&policy_a), a, "{text:?} on a");
            assert_eq!(selector.matches(&policy_b), b, "{text:?} on b");
            assert_eq!(selector.matches(&none), empty, "{text:?} on no labels");
            // Display gives text that parses back to the same selector.
            assert_eq!(
                selector.to_string().parse::<LabelSelector>().unwrap(),
                selector
            );
        }
    }

    #[test]
    fn malformed_requirements_are_config_errors() {
        for text in ["=a", "!=a", "!", "a=b=c", "a b=c", "a=b!", "k!=v=w"] {
            let error = text.parse::<LabelSelector>().unwrap_err();
            assert!(matches!(error, BackupError::Config(_)), "{text:?}: {error}");
        }
    }

    #[test]
    fn repeated_flags_are_all_required() {
        let selector = LabelSelector::parse_all(&["a=1".to_string(), "b=2,c".to_string()]).unwrap();
        assert_eq!(selector.requirements.len(), 3);
        assert!(selector.matches(&labels(&[("a", "1"), ("b", "2"), ("c", "")])));
        assert!(!selector.matches(&labels(&[("a", "1"), ("b", "2")])));
        let equal = LabelSelector::equal_to(&labels(&[("a", "1"), ("b", "2")]));
        assert!(equal.matches(&labels(&[("a", "1"), ("b", "2"), ("z", "9")])));
        assert!(!equal.matches(&labels(&[("a", "1")])));
    }
}
