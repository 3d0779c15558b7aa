//! The files of a chart that are copies of the repository's sources: `crds/` (from the
//! top-level `crds/`), `files/alerts.rules.yaml` (from `alerts/<name>.rules.yaml`) and the
//! `version`/`appVersion` lines of `Chart.yaml` (the workspace version).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::ChartEntry;
use crate::workspace_root;

/// The workspace version (xtask's version is `version.workspace = true`).
pub const WORKSPACE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where, inside a chart, the alert rules are copied.
pub const ALERTS_COPY: &str = "files/alerts.rules.yaml";

/// Writes (or with `check`, compares) every synced file of `chart`.
pub fn sync(chart: &ChartEntry, check: bool) -> anyhow::Result<()> {
    let dir = chart.dir();
    let wanted = wanted_files(chart)?;
    let present = present_files(&dir)?;
    let mut stale = Vec::new();
    for (path, content) in &wanted {
        let current = present.get(path).map(String::as_str);
        if current != content.as_deref() {
            stale.push(path.clone());
            if !check {
                write_or_remove(&dir.join(path), content.as_deref())?;
            }
        }
    }
    for path in present.keys().filter(|path| !wanted.contains_key(*path)) {
        stale.push(path.clone());
        if !check {
            write_or_remove(&dir.join(path), None)?;
        }
    }
    if check && !stale.is_empty() {
        bail!(
            "charts/{} is stale ({}); run `cargo xtask charts`",
            chart.name,
            stale.join(", ")
        );
    }
    if !check {
        for path in &stale {
            println!("charts/{}/{path}: updated", chart.name);
        }
    }
    Ok(())
}

/// Every synced file of `chart` (relative path → content; `None`: must not exist).
fn wanted_files(chart: &ChartEntry) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut wanted = BTreeMap::new();
    let suffix = format!(".{}.yaml", chart.crd_group);
    let crds_dir = workspace_root().join("crds");
    for entry in
        std::fs::read_dir(&crds_dir).with_context(|| format!("reading {}", crds_dir.display()))?
    {
        let path = entry?.path();
        let name = file_name(&path);
        if name.ends_with(&suffix) {
            wanted.insert(format!("crds/{name}"), Some(read(&path)?));
        }
    }
    if !wanted.keys().any(|path| path.starts_with("crds/")) {
        bail!(
            "crds/ has no CRD of group {} for charts/{}",
            chart.crd_group,
            chart.name
        );
    }
    // Until an operator has alert rules, its PrometheusRule renders no groups.
    let alerts = chart.alerts_file();
    let alerts_copy = if alerts.exists() {
        Some(read(&alerts)?)
    } else {
        None
    };
    wanted.insert(ALERTS_COPY.to_owned(), alerts_copy);
    let chart_yaml = chart.dir().join("Chart.yaml");
    wanted.insert(
        "Chart.yaml".to_owned(),
        Some(with_version(&read(&chart_yaml)?, WORKSPACE_VERSION)?),
    );
    Ok(wanted)
}

/// The synced files present in a chart (`crds/*.yaml`, the alerts copy, `Chart.yaml`).
fn present_files(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut present = BTreeMap::new();
    let crds = dir.join("crds");
    if crds.exists() {
        for entry in std::fs::read_dir(&crds)? {
            let path = entry?.path();
            present.insert(format!("crds/{}", file_name(&path)), read(&path)?);
        }
    }
    for relative in [ALERTS_COPY, "Chart.yaml"] {
        let path = dir.join(relative);
        if path.exists() {
            present.insert(relative.to_owned(), read(&path)?);
        }
    }
    Ok(present)
}

/// `Chart.yaml` text with its top-level `version:` and `appVersion:` set to `version`; the
/// rest (comments, order) is kept.
pub fn with_version(chart_yaml: &str, version: &str) -> anyhow::Result<String> {
    let mut seen = (false, false);
    let mut lines = Vec::new();
    for line in chart_yaml.lines() {
        if line.starts_with("version:") {
            seen.0 = true;
            lines.push(format!("version: {version}"));
        } else if line.starts_with("appVersion:") {
            seen.1 = true;
            lines.push(format!("appVersion: \"{version}\""));
        } else {
            lines.push(line.to_owned());
        }
    }
    if seen != (true, true) {
        bail!("Chart.yaml needs top-level `version:` and `appVersion:` lines");
    }
    Ok(lines.join("\n") + "\n")
}

fn write_or_remove(path: &PathBuf, content: Option<&str>) -> anyhow::Result<()> {
    match content {
        Some(content) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))
        }
        None => std::fs::remove_file(path).with_context(|| format!("removing {}", path.display())),
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_set_and_everything_else_is_kept() {
        let chart = "# comment\napiVersion: v2\nversion: 0.0.9\nappVersion: \"0.0.9\"\nannotations:\n  version: keep\n";
        let updated = with_version(chart, "1.2.3").unwrap();
        assert_eq!(
            updated,
            "# comment\napiVersion: v2\nversion: 1.2.3\nappVersion: \"1.2.3\"\nannotations:\n  version: keep\n"
        );
        // Idempotent: the check compares against this.
        assert_eq!(with_version(&updated, "1.2.3").unwrap(), updated);
    }

    #[test]
    fn a_chart_yaml_without_either_version_line_is_refused() {
        for chart in [
            "apiVersion: v2\nappVersion: \"1\"\n",
            "apiVersion: v2\nversion: 1\n",
            "  version: 1\n  appVersion: 1\n",
        ] {
            assert!(with_version(chart, "1.0.0").is_err(), "{chart}");
        }
    }
}
