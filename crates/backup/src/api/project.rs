//! Which project and environment a run belongs to: `projectId` and `environment` on
//! BackupRequests and VerticeBackups (issue 8 §3). They become the labels
//! `vertice.dev/project` and `vertice.dev/environment` on the runs, their Jobs and manifests,
//! the `project` and `environment` labels of the run metrics, and the key of the per-project
//! concurrency limit. Both are label values, so both follow the Kubernetes label-value syntax.

/// The regex of a label value (Kubernetes "Labels and Selectors"): 1–63 characters of
/// `A–Z a–z 0–9 - _ .`, starting and ending with a letter or digit.
pub const LABEL_VALUE_PATTERN: &str = "^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_follow_the_kubernetes_syntax() {
        let pattern =
            regex::Regex::new(super::LABEL_VALUE_PATTERN).unwrap_or_else(|e| panic!("{e}"));
        let longest = "a".repeat(63);
        for value in ["shop", "team-a", "Prod_1.eu", "x", "9", longest.as_str()] {
            assert!(pattern.is_match(value), "{value}");
        }
        let too_long = "a".repeat(64);
        for value in [
            "",
            "-shop",
            "shop-",
            ".a",
            "a b",
            "team/a",
            "é",
            "a:b",
            too_long.as_str(),
        ] {
            assert!(!pattern.is_match(value), "{value:?}");
        }
    }
}
