//! `cargo xtask alerts [--check]`: writes each operator's Prometheus rule file and its
//! `promtool` unit tests from one shared template plus the operator's own rules, and checks
//! that every alert carries what the issue requires; [`test`] is the `cargo xtask test` step
//! that also runs `promtool check rules` and `promtool test rules` on them.
//!
//! Layout (paths relative to `alerts/`):
//! - `shared/operator.rules.yaml`, `shared/operator.rules.test.yaml` — the alerts every operator
//!   gets and their tests, written once with the placeholders of [`Operator::placeholders`];
//! - `src/<operator>.rules.yaml`, `src/<operator>.rules.test.yaml` — one operator's own alerts
//!   and tests (same placeholders); a new operator is one more pair of files here;
//! - `<operator>.rules.yaml`, `<operator>.rules.test.yaml` — generated, checked in (the chart's
//!   PrometheusRule and users load these).
//!
//! Generation is textual, so the sources' comments survive into the generated files: every
//! source holds one top-level key (`groups:` or `tests:`) and its list is concatenated.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use clap::Args;
use serde_yaml::Value;

use crate::workspace_root;

/// Base URL of the runbooks (`docs/runbooks/<alert>.md`): the project home named in the charts.
const RUNBOOKS: &str = "https://github.com/vertice-dev/vertice-operators/blob/main/docs/runbooks";

/// The severities an alert may carry (Alertmanager routes on them).
const SEVERITIES: [&str; 2] = ["warning", "critical"];

/// Arguments of `cargo xtask alerts`.
#[derive(Args)]
pub struct AlertsArgs {
    /// Fail (listing the files) instead of writing when a generated file is stale.
    #[arg(long)]
    pub check: bool,
}

/// One operator whose rule files are generated.
struct Operator {
    name: String,
}

impl Operator {
    /// The placeholders of the templates and their values for this operator.
    fn placeholders(&self) -> [(&'static str, String); 4] {
        let service = format!("vertice-{}", self.name);
        [
            ("${operator}", self.name.clone()),
            // Prometheus anchors regexes: any release prefix, e.g. `prod-vertice-backup`.
            ("${job}", format!(".*{service}")),
            // Deployment pods: `<release prefix><service>-<replicaset hash>-<suffix>`.
            ("${pod}", format!(".*{service}-[a-z0-9]+-[a-z0-9]+")),
            ("${runbooks}", RUNBOOKS.to_owned()),
        ]
    }

    fn instantiate(&self, template: &str) -> String {
        self.placeholders()
            .iter()
            .fold(template.to_owned(), |text, (key, value)| {
                text.replace(key, value)
            })
    }
}

/// A generated file and its content.
struct Generated {
    path: PathBuf,
    content: String,
}

/// Writes (or with `--check` compares) every generated file.
pub fn run(args: AlertsArgs) -> anyhow::Result<()> {
    let root = workspace_root();
    let generated = generate(&root)?;
    let mut stale = Vec::new();
    for file in &generated {
        let current = std::fs::read_to_string(&file.path).unwrap_or_default();
        if current == file.content {
            continue;
        }
        if args.check {
            stale.push(file.path.display().to_string());
        } else {
            std::fs::write(&file.path, &file.content)
                .with_context(|| format!("writing {}", file.path.display()))?;
            println!("wrote {}", file.path.display());
        }
    }
    if !stale.is_empty() {
        bail!(
            "generated alert files are stale (run `cargo xtask alerts`): {}",
            stale.join(", ")
        );
    }
    Ok(())
}

/// The `cargo xtask test` step: generated files up to date, then `promtool check rules` and
/// `promtool test rules` on every operator's files.
pub fn test() -> anyhow::Result<()> {
    run(AlertsArgs { check: true })?;
    let alerts = workspace_root().join("alerts");
    for operator in operators(&alerts)? {
        let rules = format!("{}.rules.yaml", operator.name);
        let tests = format!("{}.rules.test.yaml", operator.name);
        promtool(&alerts, &["check", "rules", &rules])?;
        promtool(&alerts, &["test", "rules", &tests])?;
    }
    Ok(())
}

fn promtool(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .status()
        .context(
            "running promtool (install it with `apt-get install prometheus`, which puts it in \
             /usr/bin)",
        )?;
    ensure!(
        status.success(),
        "promtool {} exited with {status}",
        args.join(" ")
    );
    Ok(())
}

/// The operators with a `src/<name>.rules.yaml`, by name.
fn operators(alerts: &Path) -> anyhow::Result<Vec<Operator>> {
    let source_dir = alerts.join("src");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&source_dir)
        .with_context(|| format!("reading {}", source_dir.display()))?
    {
        let file_name = entry?.file_name();
        let file_name = file_name.to_string_lossy();
        if let Some(name) = file_name.strip_suffix(".rules.yaml") {
            names.push(name.to_owned());
        }
    }
    names.sort();
    ensure!(
        !names.is_empty(),
        "no operator rule sources in {}",
        source_dir.display()
    );
    Ok(names.into_iter().map(|name| Operator { name }).collect())
}

/// Every generated file's content, checked.
fn generate(root: &Path) -> anyhow::Result<Vec<Generated>> {
    let alerts = root.join("alerts");
    let read = |relative: &str| {
        let path = alerts.join(relative);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let shared_rules = read("shared/operator.rules.yaml")?;
    let shared_tests = read("shared/operator.rules.test.yaml")?;
    let mut generated = Vec::new();
    for operator in operators(&alerts)? {
        let name = &operator.name;
        let own_rules = read(&format!("src/{name}.rules.yaml"))?;
        let own_tests = read(&format!("src/{name}.rules.test.yaml"))?;
        let rules = format!(
            "{}groups:\n{}{}",
            header(name),
            operator.instantiate(list_of(&own_rules, "groups")?),
            operator.instantiate(list_of(&shared_rules, "groups")?),
        );
        let tests = format!(
            "{}rule_files:\n  - {name}.rules.yaml\nevaluation_interval: 1m\ntests:\n{}{}",
            header(name),
            operator.instantiate(list_of(&own_tests, "tests")?),
            operator.instantiate(list_of(&shared_tests, "tests")?),
        );
        let alert_names =
            check_rules(&rules, root).with_context(|| format!("alerts/{name}.rules.yaml"))?;
        check_tests(&tests, &alert_names)
            .with_context(|| format!("alerts/{name}.rules.test.yaml"))?;
        generated.push(Generated {
            path: alerts.join(format!("{name}.rules.yaml")),
            content: rules,
        });
        generated.push(Generated {
            path: alerts.join(format!("{name}.rules.test.yaml")),
            content: tests,
        });
    }
    Ok(generated)
}

fn header(operator: &str) -> String {
    format!(
        "# GENERATED by `cargo xtask alerts` from alerts/src/{operator}.* and alerts/shared/ — \
         edit those, not this file.\n"
    )
}

/// The text of the list under `key:`, the source's only top-level key (comments before it are
/// the source's own notes and stay there).
fn list_of<'a>(source: &'a str, key: &str) -> anyhow::Result<&'a str> {
    let line = format!("{key}:\n");
    let start = source
        .find(&line)
        .filter(|&at| at == 0 || source[..at].ends_with('\n'))
        .with_context(|| format!("no top-level `{key}:` line"))?;
    let list = &source[start + line.len()..];
    let other_key = list.lines().any(|line| {
        line.chars()
            .next()
            .is_some_and(|c| !c.is_whitespace() && c != '#')
    });
    ensure!(!other_key, "`{key}:` must be the last top-level key");
    Ok(list)
}

fn string_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .and_then(Value::as_str)
}

/// Checks every alert of a rule file: `for`, `severity`, `summary`, `description` and a
/// `runbook_url` to an existing `docs/runbooks/<alert>.md`; no placeholder left. Returns the
/// alert names.
fn check_rules(rules: &str, root: &Path) -> anyhow::Result<Vec<String>> {
    ensure!(!rules.contains("${"), "a placeholder was not replaced");
    let file: Value = serde_yaml::from_str(rules).context("not YAML")?;
    let groups = file
        .get("groups")
        .and_then(Value::as_sequence)
        .context("no `groups` list")?;
    let mut names = Vec::new();
    for rule in groups
        .iter()
        .filter_map(|group| group.get("rules").and_then(Value::as_sequence))
        .flatten()
    {
        let Some(alert) = string_at(rule, &["alert"]) else {
            continue;
        };
        ensure!(string_at(rule, &["for"]).is_some(), "{alert}: no `for`");
        let severity = string_at(rule, &["labels", "severity"]).unwrap_or_default();
        ensure!(
            SEVERITIES.contains(&severity),
            "{alert}: severity {severity:?} is not one of {SEVERITIES:?}"
        );
        for annotation in ["summary", "description"] {
            ensure!(
                string_at(rule, &["annotations", annotation]).is_some_and(|text| !text.is_empty()),
                "{alert}: no `{annotation}` annotation"
            );
        }
        let url = string_at(rule, &["annotations", "runbook_url"]).unwrap_or_default();
        ensure!(
            url == format!("{RUNBOOKS}/{alert}.md"),
            "{alert}: runbook_url {url:?} is not {RUNBOOKS}/{alert}.md"
        );
        let runbook = root.join(format!("docs/runbooks/{alert}.md"));
        ensure!(
            runbook.is_file(),
            "{alert}: no runbook {}",
            runbook.display()
        );
        names.push(alert.to_owned());
    }
    Ok(names)
}

/// Checks that every alert has at least one `promtool` test expecting it to fire.
fn check_tests(tests: &str, alerts: &[String]) -> anyhow::Result<()> {
    ensure!(!tests.contains("${"), "a placeholder was not replaced");
    let file: Value = serde_yaml::from_str(tests).context("not YAML")?;
    let cases = file
        .get("tests")
        .and_then(Value::as_sequence)
        .context("no `tests` list")?;
    let fired: Vec<&str> = cases
        .iter()
        .filter_map(|case| case.get("alert_rule_test").and_then(Value::as_sequence))
        .flatten()
        .filter(|check| {
            check
                .get("exp_alerts")
                .and_then(Value::as_sequence)
                .is_some_and(|expected| !expected.is_empty())
        })
        .filter_map(|check| string_at(check, &["alertname"]))
        .collect();
    let untested: Vec<&String> = alerts
        .iter()
        .filter(|alert| !fired.contains(&alert.as_str()))
        .collect();
    ensure!(
        untested.is_empty(),
        "no test shows these alerts firing: {untested:?}"
    );
    Ok(())
}
