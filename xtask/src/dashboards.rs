//! `cargo xtask dashboards [--check]`: the Grafana dashboards in `dashboards/` are generated
//! from the small Rust descriptions in `dashboards/` beside this file (one module per
//! dashboard), so every panel is built the same way (datasource variable, `$__rate_interval`,
//! units, layout) and a new operator adds its dashboard as one entry in [`all`] and its scrape
//! job as one entry in `overview::OPERATORS`. Generated rather than hand-edited JSON because
//! Grafana's JSON is ~80 % boilerplate that drifts between panels when edited by hand; `--check`
//! fails when a file is stale, missing or left over, or when a dashboard lacks a field Grafana
//! needs ([`grafana_problems`]).

mod backup;
mod model;
mod overview;

use crate::generated::GeneratedDir;
use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use clap::Args;
use serde_json::Value;

/// Arguments of `cargo xtask dashboards`.
#[derive(Args)]
pub struct DashboardsArgs {
    /// Fail when dashboards/ is stale instead of writing it.
    #[arg(long)]
    pub check: bool,
}

/// Every dashboard: file name (without `.json`) → description.
fn all() -> Vec<(&'static str, model::Dashboard)> {
    vec![
        ("overview", overview::dashboard()),
        ("backup", backup::dashboard()),
    ]
}

/// `dashboards/`, one JSON file per dashboard.
const DASHBOARDS: GeneratedDir = GeneratedDir {
    relative: "dashboards",
    extension: "json",
    command: "dashboards",
    source: "description",
};

/// Regenerates or checks dashboards/.
pub fn run(args: DashboardsArgs) -> anyhow::Result<()> {
    let mut wanted = BTreeMap::new();
    for (name, dashboard) in all() {
        let json = dashboard.render();
        let problems = grafana_problems(&json);
        if !problems.is_empty() {
            bail!("dashboard {name}: {}", problems.join("; "));
        }
        let text = serde_json::to_string_pretty(&json)? + "\n";
        wanted.insert(format!("{name}.json"), text);
    }
    DASHBOARDS.write_or_check(&wanted, args.check)
}

/// The `cargo xtask test` step of the packaging files this module and `docs` generate:
/// `dashboards --check` then `docs --check`.
pub fn test_step() -> anyhow::Result<()> {
    run(DashboardsArgs { check: true })?;
    crate::docs::run(crate::docs::DocsArgs { check: true })
}

/// Grafana's own template variables a query may use.
const BUILTIN_VARIABLES: &[&str] = &["__rate_interval", "__interval", "__range"];

/// What Grafana needs of a dashboard JSON and this project adds, as a list of problems (empty:
/// fine). The required fields follow `@grafana/schema`'s `Dashboard`, `Panel`, `RowPanel`,
/// `GridPos`, `DataQuery` and `VariableModel` types (the fields without a default there):
/// a `uid` of at most 40 characters, `title`, numeric `schemaVersion`, `time.from`/`time.to`,
/// `templating.list`, `panels`; each panel a unique numeric `id`, `type`, `title` and a
/// `gridPos` inside the 24-column grid; each query a `refId` unique in its panel. The project's
/// rules on top: a `datasource` variable of type `datasource` for Prometheus, used by every
/// panel and query; every variable a query names is defined; every range is
/// `[$__rate_interval]`.
pub fn grafana_problems(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let uid = dashboard["uid"].as_str().unwrap_or_default();
    if uid.is_empty() || uid.len() > 40 {
        problems.push(format!("uid {uid:?} must have 1 to 40 characters"));
    }
    for field in ["title"] {
        if dashboard[field].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {field}"));
        }
    }
    if !dashboard["schemaVersion"].is_u64() {
        problems.push("no numeric schemaVersion".into());
    }
    if dashboard["time"]["from"].as_str().is_none() || dashboard["time"]["to"].as_str().is_none() {
        problems.push("no time.from/time.to".into());
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let defined: BTreeSet<&str> = variables
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    let datasource_ok = variables.iter().any(|v| {
        v["name"] == model::DATASOURCE_VARIABLE
            && v["type"] == "datasource"
            && v["query"] == "prometheus"
    });
    if !datasource_ok {
        problems.push("no `datasource` variable of type datasource for prometheus".into());
    }
    let Some(panels) = dashboard["panels"].as_array() else {
        problems.push("no panels".into());
        return problems;
    };
    let mut ids = BTreeSet::new();
    let wanted_source = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        let mut problem = |what: String| problems.push(format!("panel {title:?}: {what}"));
        if title.is_empty() {
            problem("no title".into());
        }
        match panel["id"].as_u64() {
            Some(id) if ids.insert(id) => {}
            Some(id) => problem(format!("id {id} used twice")),
            None => problem("no numeric id".into()),
        }
        let grid = &panel["gridPos"];
        let (x, w, h) = (grid["x"].as_u64(), grid["w"].as_u64(), grid["h"].as_u64());
        match (x, w, h, grid["y"].as_u64()) {
            (Some(x), Some(w), Some(h), Some(_)) if w > 0 && h > 0 && x + w <= 24 => {}
            _ => problem(format!("gridPos {grid} is not inside the 24-column grid")),
        }
        let kind = panel["type"].as_str().unwrap_or_default();
        if kind.is_empty() {
            problem("no type".into());
        }
        if kind == "row" {
            continue;
        }
        if panel["datasource"] != wanted_source {
            problem("datasource is not the ${datasource} variable".into());
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problem("no targets".into());
        }
        let mut ref_ids = BTreeSet::new();
        for target in &targets {
            let ref_id = target["refId"].as_str().unwrap_or_default();
            if ref_id.is_empty() || !ref_ids.insert(ref_id.to_owned()) {
                problem(format!("refId {ref_id:?} missing or repeated"));
            }
            if target["datasource"] != wanted_source {
                problem(format!("query {ref_id}: datasource is not ${{datasource}}"));
            }
            let expr = target["expr"].as_str().unwrap_or_default();
            if expr.trim().is_empty() {
                problem(format!("query {ref_id}: no expr"));
            }
            for range in ranges(expr) {
                if range != "$__rate_interval" {
                    problem(format!(
                        "query {ref_id}: range [{range}], not [$__rate_interval]"
                    ));
                }
            }
            for variable in variables_in(expr) {
                if !defined.contains(variable.as_str())
                    && !BUILTIN_VARIABLES.contains(&variable.as_str())
                {
                    problem(format!("query {ref_id}: ${variable} is not defined"));
                }
            }
        }
    }
    problems
}

/// The contents of every `[...]` in `expr` (range and subquery selectors).
fn ranges(expr: &str) -> Vec<String> {
    expr.split('[')
        .skip(1)
        .filter_map(|rest| rest.split_once(']').map(|(range, _)| range.to_owned()))
        .collect()
}

/// The names of the `$name` / `${name}` variables in `expr`.
fn variables_in(expr: &str) -> BTreeSet<String> {
    expr.split('$')
        .skip(1)
        .map(|rest| {
            rest.trim_start_matches('{')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_dashboard_has_what_grafana_needs() {
        for (name, dashboard) in all() {
            let json = dashboard.render();
            assert_eq!(grafana_problems(&json), Vec::<String>::new(), "{name}");
        }
    }

    #[test]
    fn uids_are_unique_and_stable() {
        let uids: Vec<&str> = all().iter().map(|(_, d)| d.uid).collect();
        assert_eq!(uids, ["vertice-overview", "vertice-backup"]);
    }

    /// Each kind of defect is found: a fault is planted in a good dashboard and must be named.
    #[test]
    fn defects_are_found() {
        let good = backup::dashboard().render();
        type Plant = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Plant)> = vec![
            ("uid", Box::new(|d| d["uid"] = "".into())),
            ("uid", Box::new(|d| d["uid"] = "x".repeat(41).into())),
            (
                "schemaVersion",
                Box::new(|d| d["schemaVersion"] = "39".into()),
            ),
            ("time", Box::new(|d| d["time"] = Value::Null)),
            (
                "datasource` variable",
                Box::new(|d| d["templating"]["list"][0]["type"] = "query".into()),
            ),
            (
                "id 1 used twice",
                Box::new(|d| d["panels"][2]["id"] = 1.into()),
            ),
            (
                "gridPos",
                Box::new(|d| d["panels"][1]["gridPos"]["x"] = 20.into()),
            ),
            (
                "datasource is not",
                Box::new(|d| d["panels"][1]["datasource"] = "Prometheus".into()),
            ),
            (
                "query A: datasource",
                Box::new(|d| d["panels"][1]["targets"][0]["datasource"] = Value::Null),
            ),
            (
                "not [$__rate_interval]",
                Box::new(|d| {
                    d["panels"][1]["targets"][0]["expr"] =
                        "rate(vertice_backup_runs_total[5m])".into()
                }),
            ),
            (
                "$cluster is not defined",
                Box::new(|d| {
                    d["panels"][1]["targets"][0]["expr"] = r#"up{cluster="$cluster"}"#.into()
                }),
            ),
            (
                "refId",
                Box::new(|d| d["panels"][1]["targets"][0]["refId"] = "".into()),
            ),
            (
                "no targets",
                Box::new(|d| d["panels"][1]["targets"] = Value::Array(vec![])),
            ),
        ];
        for (expected, plant) in cases {
            let mut broken = good.clone();
            plant(&mut broken);
            let problems = grafana_problems(&broken);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "expected a problem naming {expected:?}, got {problems:?}"
            );
        }
    }

    #[test]
    fn every_operator_on_the_overview_links_to_a_generated_dashboard() {
        let uids: BTreeSet<&str> = all().iter().map(|(_, d)| d.uid).collect();
        for operator in overview::OPERATORS {
            assert!(uids.contains(operator.dashboard.1), "{}", operator.job);
        }
    }
}
