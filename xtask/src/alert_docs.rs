//! The alert reference pages of `cargo xtask docs`: `docs/reference/alerts-<operator>.md`, one per
//! generated rules file `alerts/<operator>.rules.yaml`, listing each alert's severity, `for`,
//! summary, runbook and expression. Read from the rules Prometheus loads, so the table cannot
//! drift from what pages people (a hand-written table could).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

/// A rules file as Prometheus reads it (only what the page shows).
#[derive(Deserialize)]
struct RulesFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    /// Absent for recording rules, which the page skips.
    alert: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The pages: file name under `docs/reference/` → text, for every `alerts/*.rules.yaml`.
pub fn pages(alerts_dir: &Path, header: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut pages = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(alerts_dir)
        .with_context(|| format!("reading {}", alerts_dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(operator) = name.strip_suffix(".rules.yaml") else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path())?;
        let rules: RulesFile =
            serde_yaml::from_str(&text).with_context(|| format!("parsing alerts/{name}"))?;
        pages.insert(
            format!("alerts-{operator}.md"),
            page(operator, &name, &rules, header)?,
        );
    }
    Ok(pages)
}

/// One operator's page.
fn page(operator: &str, file: &str, rules: &RulesFile, header: &str) -> anyhow::Result<String> {
    let mut table =
        String::from("| alert | severity | for | summary | runbook |\n|---|---|---|---|---|\n");
    let mut expressions = String::new();
    for rule in rules.groups.iter().flat_map(|group| &group.rules) {
        let Some(alert) = &rule.alert else { continue };
        let (Some(severity), Some(summary), Some(runbook)) = (
            rule.labels.get("severity"),
            rule.annotations.get("summary"),
            rule.annotations.get("runbook_url"),
        ) else {
            bail!("alerts/{file}: {alert} lacks a severity, summary or runbook_url");
        };
        let runbook_page = runbook.rsplit('/').next().unwrap_or(runbook);
        table.push_str(&format!(
            "| [{alert}](#{anchor}) | {severity} | {} | {} | [{runbook_page}](../runbooks/{runbook_page}) |\n",
            rule.for_.as_deref().unwrap_or("0s"),
            cell(summary),
            anchor = alert.to_ascii_lowercase(),
        ));
        expressions.push_str(&format!(
            "### {alert}\n\n{}\n\n```promql\n{}\n```\n\n",
            rule.annotations
                .get("description")
                .map(|d| one_line(d))
                .unwrap_or_default(),
            rule.expr.trim_end(),
        ));
    }
    Ok(format!(
        "{header}# Alerts of the {operator} operator\n\nFrom `alerts/{file}` (the rules Prometheus \
         loads; the chart's PrometheusRule carries the same). `{{{{ $labels.x }}}}` is filled in \
         by Prometheus.\n\n{table}\n## Expressions\n\n{}",
        expressions.trim_end().to_owned() + "\n"
    ))
}

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_lists_each_alert_and_refuses_one_without_a_runbook() {
        let rules: RulesFile = serde_yaml::from_str(
            "groups:\n  - name: g\n    rules:\n      - record: x:sum\n        expr: sum(x)\n      - alert: Down\n        expr: up == 0\n        for: 5m\n        labels: {severity: critical}\n        annotations: {summary: 'a | b', description: d, runbook_url: 'https://e/docs/runbooks/Down.md'}\n",
        )
        .unwrap();
        let text = page("demo", "demo.rules.yaml", &rules, "").unwrap();
        assert!(
            text.contains(
                "| [Down](#down) | critical | 5m | a \\| b | [Down.md](../runbooks/Down.md) |"
            ),
            "{text}"
        );
        assert!(text.contains("```promql\nup == 0\n```"), "{text}");
        assert!(!text.contains("x:sum"), "{text}");

        let no_runbook: RulesFile = serde_yaml::from_str(
            "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n        labels: {severity: critical}\n        annotations: {summary: s}\n",
        )
        .unwrap();
        assert!(page("demo", "demo.rules.yaml", &no_runbook, "").is_err());
    }
}
