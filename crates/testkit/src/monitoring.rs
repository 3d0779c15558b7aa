//! Reading the project's monitoring files for tests: the PromQL of every Grafana panel
//! (`dashboards/*.json`) and of every alert (`alerts/*.rules.yaml`), the metric names a PromQL
//! expression selects, and the metric families a `/metrics` page exports. The one-source-of-
//! metric-names tests compare these sets; the dashboard tests run the queries against the real
//! test Prometheus.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;

/// Metrics the dashboards and alerts may use that no Vértice operator exports: Prometheus's
/// own `up` and alert series, and kube-state-metrics' pod restarts. Keep it short: anything
/// else a query names must come from an operator's registry.
pub const EXTERNAL_METRICS: &[&str] = &[
    "up",
    "ALERTS",
    "ALERTS_FOR_STATE",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_resource_limits",
];

/// One PromQL query found in a monitoring file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundQuery {
    /// Where it is: `<file> / <panel or alert>`.
    pub origin: String,
    /// The expression as written (Grafana variables not substituted).
    pub expr: String,
}

/// Every target `expr` of every panel of a Grafana dashboard JSON (panels nested in rows too).
pub fn dashboard_queries(file: &str, dashboard: &serde_json::Value) -> Vec<FoundQuery> {
    let mut found = Vec::new();
    let mut stack: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .map(|panels| panels.iter().collect())
        .unwrap_or_default();
    while let Some(panel) = stack.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            stack.extend(nested.iter());
        }
        let title = panel["title"].as_str().unwrap_or("(untitled)");
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                found.push(FoundQuery {
                    origin: format!("{file} / {title}"),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    found
}

/// Every `expr` of every rule of a Prometheus rule file (`groups[].rules[]`).
pub fn rule_queries(file: &str, rules: &serde_yaml::Value) -> Vec<FoundQuery> {
    let mut found = Vec::new();
    for group in rules["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .unwrap_or("(unnamed)");
            if let Some(expr) = rule["expr"].as_str() {
                found.push(FoundQuery {
                    origin: format!("{file} / {name}"),
                    expr: expr.to_owned(),
                });
            }
        }
    }
    found
}

/// The queries of every `*.json` in `dashboards_dir` and every `*.rules.yaml` in `alerts_dir`
/// (a missing directory has none). Errors: a file that cannot be read or parsed.
pub fn all_queries(dashboards_dir: &Path, alerts_dir: &Path) -> anyhow::Result<Vec<FoundQuery>> {
    let mut found = Vec::new();
    for (path, name) in files_ending(dashboards_dir, ".json")? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {name}"))?;
        let json = serde_json::from_str(&text).with_context(|| format!("parsing {name}"))?;
        found.extend(dashboard_queries(&name, &json));
    }
    for (path, name) in files_ending(alerts_dir, ".rules.yaml")? {
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {name}"))?;
        let yaml = serde_yaml::from_str(&text).with_context(|| format!("parsing {name}"))?;
        found.extend(rule_queries(&name, &yaml));
    }
    Ok(found)
}

fn files_ending(dir: &Path, suffix: &str) -> anyhow::Result<Vec<(std::path::PathBuf, String)>> {
    let mut files = Vec::new();
    if !dir.exists() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(suffix) {
            files.push((path, name));
        }
    }
    files.sort();
    Ok(files)
}

/// Words of PromQL that are never metric names where they stand outside `{}`/`[]`/strings.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    // Aggregations, which may be followed by `by (…)` before their `(`.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects (`foo`, `foo{a="b"}`, `foo[5m]`; not function
/// or aggregation names, label names, strings, numbers or durations). Grafana variables
/// (`$x`, `${x}`) are skipped. Only valid PromQL is expected: the real Prometheus parses the
/// same expressions in the tests, so this scanner need not diagnose errors.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_until(&chars, i, '}'),
            '[' => i = skip_until(&chars, i, ']'),
            '$' => {
                i += 1;
                while i < chars.len() && (is_word(chars[i]) || chars[i] == '{' || chars[i] == '}') {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // A number or a duration (`1e3`, `0.99`, `5m`).
                while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_word_start(c) => {
                let start = i;
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
                let lower = word.to_ascii_lowercase();
                if LABEL_LISTS.contains(&lower.as_str()) && next == Some('(') {
                    let open = i + chars[i..].iter().position(|c| *c == '(').unwrap_or(0);
                    i = skip_until(&chars, open, ')');
                } else if lower == "offset" {
                    // The duration after it is skipped as a number.
                } else if next != Some('(') && !KEYWORDS.contains(&lower.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Index just past the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    i
}

/// Index just past the `close` matching the opener at `start`, skipping strings inside.
fn skip_until(chars: &[char], start: usize, close: char) -> usize {
    let open = chars[start];
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The sample names a `/metrics` page (Prometheus or OpenMetrics text) can carry, from its
/// `# TYPE` lines, so a family counts even before its first sample: a counter `x` gives
/// `x_total` (and `x_created`), a histogram `x` gives `x_bucket`, `x_sum`, `x_count`, a summary
/// `x`, `x_sum`, `x_count`, a gauge or untyped `x` gives `x`. Keyed by family name.
pub fn exported_families(metrics_text: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut families = Vec::new();
    for line in metrics_text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let samples: BTreeSet<String> = match kind {
            "counter" => {
                let base = name.strip_suffix("_total").unwrap_or(name);
                [format!("{base}_total"), format!("{base}_created")].into()
            }
            "histogram" | "gaugehistogram" => [
                format!("{name}_bucket"),
                format!("{name}_sum"),
                format!("{name}_count"),
            ]
            .into(),
            "summary" => [
                name.to_owned(),
                format!("{name}_sum"),
                format!("{name}_count"),
            ]
            .into(),
            _ => [name.to_owned()].into(),
        };
        families.push((name.to_owned(), samples));
    }
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn metric_names_skip_functions_labels_strings_numbers_and_variables() {
        assert_eq!(names("up"), ["up"]);
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (le, backup) (rate(vertice_backup_duration_seconds_bucket{namespace=~"$namespace", x="a{b}"}[$__rate_interval])))"#
            ),
            ["vertice_backup_duration_seconds_bucket"]
        );
        assert_eq!(
            names(
                "time() - max by (namespace) (a_seconds) > 2 * on (namespace, backup) group_left () b_seconds"
            ),
            ["a_seconds", "b_seconds"]
        );
        assert_eq!(
            names(r#"sum(rate(x_total[5m] offset 1h)) without (pod) or vector(0) unless y"#),
            ["x_total", "y"]
        );
        assert_eq!(
            names(r#"label_replace(m, "dst", "$1", "src", "(.*)") and bool n:rule:rate5m"#),
            ["m", "n:rule:rate5m"]
        );
        assert_eq!(names("sum(z) BY (le)"), ["z"]);
    }

    #[test]
    fn families_map_to_their_sample_names() {
        let text = "# HELP a_total A.\n# TYPE a counter\na_total 1\n\
                    # TYPE b histogram\nb_bucket{le=\"1\"} 0\n\
                    # TYPE c gauge\n# TYPE d_total counter\n";
        let families = exported_families(text);
        let names: Vec<&str> = families.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d_total"]);
        assert!(families[0].1.contains("a_total"));
        assert!(families[1].1.contains("b_bucket") && families[1].1.contains("b_count"));
        assert_eq!(families[2].1, ["c".to_owned()].into());
        assert!(families[3].1.contains("d_total"));
    }

    #[test]
    fn queries_are_found_in_nested_panels_and_rule_groups() {
        let dashboard = serde_json::json!({"panels": [
            {"title": "row", "type": "row", "panels": [{"title": "p", "targets": [{"expr": "a"}]}]},
            {"title": "q", "targets": [{"expr": "b"}, {"refId": "no expr"}]},
        ]});
        let mut exprs: Vec<String> = dashboard_queries("d.json", &dashboard)
            .into_iter()
            .map(|q| q.expr)
            .collect();
        exprs.sort();
        assert_eq!(exprs, ["a", "b"]);
        let rules: serde_yaml::Value = serde_yaml::from_str(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n  - record: r\n    expr: sum(x)\n",
        )
        .unwrap();
        let found = rule_queries("r.yaml", &rules);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].origin, "r.yaml / A");
    }
}
