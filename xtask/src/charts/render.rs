//! `helm lint` and `helm template` of a chart, and the rendered manifests as JSON values.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use vertice_testkit::tools::tool_binary;

/// `helm lint --strict` of the chart in `dir`, with the default values and with `set`.
pub fn lint(dir: &Path, set: &[String]) -> anyhow::Result<()> {
    let mut args = vec!["lint".to_owned(), "--strict".to_owned(), path_arg(dir)];
    args.extend(set_args(set));
    helm(&args).map(|_| ())
}

/// `helm template <release> <dir> --namespace <namespace> --include-crds --set …`: every
/// rendered object.
pub fn template(
    dir: &Path,
    release: &str,
    namespace: &str,
    set: &[String],
) -> anyhow::Result<Vec<Value>> {
    let mut args = vec![
        "template".to_owned(),
        release.to_owned(),
        path_arg(dir),
        "--namespace".to_owned(),
        namespace.to_owned(),
        "--include-crds".to_owned(),
    ];
    args.extend(set_args(set));
    parse_documents(&helm(&args)?)
}

/// The objects of a multi-document YAML stream (empty documents skipped).
pub fn parse_documents(yaml: &str) -> anyhow::Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = Value::deserialize(document).context("parsing helm's output")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// The rendered objects as one YAML stream (for `kubectl apply -f -`).
pub fn to_yaml_stream(objects: &[Value]) -> anyhow::Result<String> {
    let mut stream = String::new();
    for object in objects {
        stream.push_str("---\n");
        stream.push_str(&serde_yaml::to_string(object)?);
    }
    Ok(stream)
}

/// The only object of `kind`, or why not.
pub fn only<'a>(objects: &'a [Value], kind: &str) -> anyhow::Result<&'a Value> {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|object| object["kind"].as_str() == Some(kind))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        other => bail!("expected one {kind}, rendered {}", other.len()),
    }
}

/// The objects of `kind`.
pub fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    objects
        .iter()
        .filter(move |object| object["kind"].as_str() == Some(kind))
}

fn set_args(set: &[String]) -> Vec<String> {
    set.iter()
        .flat_map(|assignment| ["--set".to_owned(), assignment.clone()])
        .collect()
}

fn path_arg(dir: &Path) -> String {
    dir.display().to_string()
}

/// Runs helm; its stdout, or its stderr as the error.
fn helm(args: &[String]) -> anyhow::Result<String> {
    let helm = tool_binary("helm")?;
    let output = Command::new(&helm)
        .args(args)
        .output()
        .with_context(|| format!("running {}", helm.display()))?;
    if !output.status.success() {
        bail!(
            "helm {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
