//! The `charts` step of `cargo xtask test`, for every chart in [`CHARTS`]: the synced files are
//! current, the image carries what the operator calls, `values.yaml` documents every value,
//! `helm lint` passes, `helm template` renders the defaults, every toggle on and every toggle
//! off into manifests that keep the chart's promises (hardening, probes, flags the operator
//! accepts, RBAC for leader election and Events), the values schema refuses bad values, and
//! each rendering is server-side applied to a real kube-apiserver (testkit's control plane,
//! with the vendored prometheus-operator CRDs), so the apiserver's own validation judges it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail, ensure};
use serde_json::Value;
use vertice_testkit::control_plane::ControlPlane;
use vertice_testkit::tools::tool_binary;

use super::render::{lint, of_kind, only, template, to_yaml_stream};
use super::sync::{self, ALERTS_COPY};
use super::{CHARTS, ChartEntry, image};
use crate::workspace_root;

/// The vendored prometheus-operator CRDs (ServiceMonitor, PrometheusRule).
const PROMETHEUS_OPERATOR_CRDS: &str = "xtask/vendor/prometheus-operator";

/// One way of rendering a chart.
struct Case {
    name: &'static str,
    set: Vec<String>,
}

/// Runs every check of every chart.
pub fn test() -> anyhow::Result<()> {
    for chart in CHARTS {
        sync::sync(chart, true)?;
        image::check(chart)?;
        super::values_doc::check(&chart.dir().join("values.yaml"))?;
        check_rbac_rules_are_explained(chart)?;
        check_schema_refuses_bad_values(chart)?;
    }
    let control_plane = ControlPlane::start_blocking()?;
    let kubeconfig = control_plane.admin_kubeconfig();
    for file in [
        "monitoring.coreos.com_servicemonitors.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
    ] {
        let path = workspace_root().join(PROMETHEUS_OPERATOR_CRDS).join(file);
        kubectl(
            kubeconfig,
            &["apply", "--server-side", "-f", &path.display().to_string()],
            None,
        )?;
    }
    kubectl(
        kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ],
        None,
    )?;
    for chart in CHARTS {
        for case in cases(chart) {
            let namespace = format!("chart-{}-{}", chart.name, case.name);
            println!("charts/{}: {}", chart.name, case.name);
            lint(&chart.dir(), &case.set).with_context(|| format!("helm lint, {}", case.name))?;
            let objects = template(&chart.dir(), "vertice", &namespace, &case.set)?;
            check_rendering(chart, case.name, &namespace, &objects)
                .with_context(|| format!("charts/{}, {}", chart.name, case.name))?;
            kubectl(kubeconfig, &["create", "namespace", &namespace], None)?;
            kubectl(
                kubeconfig,
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=helm",
                    "--validate=strict",
                    "-f",
                    "-",
                ],
                Some(&to_yaml_stream(&objects)?),
            )
            .with_context(|| format!("applying charts/{}, {}", chart.name, case.name))?;
        }
    }
    control_plane.stop();
    Ok(())
}

/// Defaults; every toggle on (and watching one namespace); every toggle off.
fn cases(chart: &ChartEntry) -> Vec<Case> {
    let own = |values: &[&str]| values.iter().map(|value| (*value).to_owned()).collect();
    vec![
        Case {
            name: "defaults",
            set: Vec::new(),
        },
        Case {
            name: "all-on",
            set: own(&[
                "serviceMonitor.enabled=true",
                "serviceMonitor.labels.release=prometheus",
                "serviceMonitor.scrapeTimeout=10s",
                "prometheusRule.enabled=true",
                "prometheusRule.labels.release=prometheus",
                &format!("watchNamespace=chart-{}-all-on", chart.name),
                "podDisruptionBudget.enabled=true",
                "topologySpread.enabled=true",
                "leaderElection.enabled=true",
                "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ]),
        },
        Case {
            name: "all-off",
            set: own(&[
                "replicaCount=1",
                "leaderElection.enabled=false",
                "rbac.create=false",
                "serviceAccount.create=false",
                "serviceAccount.name=existing",
                "podDisruptionBudget.enabled=false",
                "topologySpread.enabled=false",
            ]),
        },
    ]
}

/// What every rendering of a chart must show.
fn check_rendering(
    chart: &ChartEntry,
    case: &str,
    namespace: &str,
    objects: &[Value],
) -> anyhow::Result<()> {
    let deployment = only(objects, "Deployment")?;
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .context("container args")?
        .iter()
        .filter_map(|arg| arg.as_str().map(str::to_owned))
        .collect();
    // The image's entrypoint is the binary; the first argument is the subcommand.
    ensure!(
        container["command"].is_null(),
        "the chart must run the image's entrypoint"
    );
    ensure!(
        args.first().map(String::as_str) == Some("run"),
        "args start with `run`: {args:?}"
    );
    (chart.parse_flags)(&args[1..])
        .map_err(|error| anyhow::anyhow!("the operator refuses the chart's flags: {error}"))?;
    check_hardening(pod, container)?;
    check_probes(container, &args)?;
    ensure!(
        container["resources"]["limits"]["memory"].is_string()
            && container["resources"]["requests"]["cpu"].is_string(),
        "resources: {}",
        container["resources"]
    );
    if let Some(flag) = chart.runner_image_flag {
        let image = container["image"].as_str().unwrap_or_default();
        let wanted = format!("{flag}={image}");
        ensure!(
            args.contains(&wanted),
            "{flag} must default to the operator's image {image}: {args:?}"
        );
    }
    let leader_election = !case.ends_with("off");
    ensure!(
        args.contains(&format!("--leader-election={leader_election}")),
        "leader election {leader_election}: {args:?}"
    );
    match case {
        "defaults" => {
            ensure!(deployment["spec"]["replicas"] == 2, "2 replicas by default");
            ensure!(
                pod["topologySpreadConstraints"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty()),
                "topology spread by default"
            );
            ensure!(
                of_kind(objects, "ServiceMonitor").count() == 0
                    && of_kind(objects, "PrometheusRule").count() == 0,
                "monitoring is off by default"
            );
            ensure!(
                only(objects, "ClusterRoleBinding").is_ok(),
                "cluster-wide binding by default"
            );
            check_rbac(objects, namespace, true)?;
        }
        "all-on" => {
            let monitor = only(objects, "ServiceMonitor")?;
            ensure!(
                monitor["metadata"]["labels"]["release"] == "prometheus",
                "ServiceMonitor labels"
            );
            ensure!(
                monitor["spec"]["endpoints"][0]["port"] == "admin",
                "ServiceMonitor scrapes the admin port"
            );
            check_prometheus_rule(chart, only(objects, "PrometheusRule")?)?;
            let binding = only(objects, "RoleBinding").or_else(|_| {
                of_kind(objects, "RoleBinding")
                    .find(|binding| binding["roleRef"]["kind"] == "ClusterRole")
                    .context("a RoleBinding of the ClusterRole")
            })?;
            ensure!(
                binding["metadata"]["namespace"] == namespace,
                "bound in the watched namespace only"
            );
            ensure!(
                of_kind(objects, "ClusterRoleBinding").count() == 0,
                "no cluster-wide binding when one namespace is watched"
            );
            ensure!(
                args.contains(&format!("--namespace={namespace}")),
                "watches {namespace}: {args:?}"
            );
            ensure!(
                container["image"]
                    .as_str()
                    .is_some_and(|image| image.contains("@sha256:")),
                "the digest pins the image"
            );
            check_rbac(objects, namespace, true)?;
        }
        _ => {
            for kind in [
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Role",
                "RoleBinding",
                "PodDisruptionBudget",
            ] {
                ensure!(
                    of_kind(objects, kind).count() == 0,
                    "{kind} rendered although off"
                );
            }
            ensure!(
                pod["serviceAccountName"] == "existing",
                "the named ServiceAccount is used"
            );
            ensure!(
                pod["topologySpreadConstraints"].is_null(),
                "no topology spread when off"
            );
        }
    }
    Ok(())
}

/// The restricted Pod Security Standard, in the pod's and the container's context.
fn check_hardening(pod: &Value, container: &Value) -> anyhow::Result<()> {
    let context = &container["securityContext"];
    ensure!(
        context["runAsNonRoot"] == true || pod["securityContext"]["runAsNonRoot"] == true,
        "runAsNonRoot"
    );
    ensure!(
        context["readOnlyRootFilesystem"] == true,
        "readOnlyRootFilesystem"
    );
    ensure!(
        context["allowPrivilegeEscalation"] == false,
        "allowPrivilegeEscalation: false"
    );
    ensure!(
        context["capabilities"]["drop"] == serde_json::json!(["ALL"]),
        "drop ALL capabilities"
    );
    ensure!(
        context["seccompProfile"]["type"] == "RuntimeDefault"
            || pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault",
        "seccomp RuntimeDefault"
    );
    ensure!(
        pod["securityContext"]["runAsUser"]
            .as_i64()
            .is_some_and(|uid| uid > 0),
        "a non-zero runAsUser"
    );
    Ok(())
}

/// Liveness on /healthz, readiness on /readyz, both on the port the admin server listens on.
fn check_probes(container: &Value, args: &[String]) -> anyhow::Result<()> {
    let port = container["ports"]
        .as_array()
        .and_then(|ports| ports.iter().find(|port| port["name"] == "admin"))
        .and_then(|port| port["containerPort"].as_i64())
        .context("an `admin` container port")?;
    ensure!(
        args.iter()
            .any(|arg| arg == &format!("--admin-addr=0.0.0.0:{port}")),
        "the admin server listens on the admin port {port}: {args:?}"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        ensure!(
            get["path"] == path && get["port"] == "admin",
            "{probe} on {path}: {get}"
        );
    }
    Ok(())
}

/// The rules leader election and Events need (the end-to-end tests prove the rest).
fn check_rbac(objects: &[Value], namespace: &str, leader_election: bool) -> anyhow::Result<()> {
    let role = only(objects, "ClusterRole")?;
    let grants = |rules: &Value, group: &str, resource: &str, verb: &str| {
        rules.as_array().is_some_and(|rules| {
            rules.iter().any(|rule| {
                has(&rule["apiGroups"], group)
                    && has(&rule["resources"], resource)
                    && has(&rule["verbs"], verb)
            })
        })
    };
    for verb in ["create", "patch"] {
        ensure!(
            grants(&role["rules"], "events.k8s.io", "events", verb),
            "Events need {verb}"
        );
    }
    ensure!(
        !grants(&role["rules"], "", "secrets", "list")
            && !grants(&role["rules"], "", "secrets", "watch"),
        "Secrets are read one by one, never listed or watched"
    );
    ensure!(
        role["rules"]
            .as_array()
            .is_some_and(|rules| rules
                .iter()
                .all(|rule| !has(&rule["verbs"], "*") && !has(&rule["resources"], "*"))),
        "no wildcards"
    );
    if leader_election {
        let lease_role = of_kind(objects, "Role")
            .find(|role| grants(&role["rules"], "coordination.k8s.io", "leases", "update"))
            .context("a Role for the leader-election Lease")?;
        ensure!(
            lease_role["metadata"]["namespace"] == namespace,
            "the Lease Role is in the release namespace"
        );
    }
    Ok(())
}

/// The PrometheusRule carries exactly the groups of `alerts/<name>.rules.yaml` (none until it exists).
fn check_prometheus_rule(chart: &ChartEntry, rule: &Value) -> anyhow::Result<()> {
    let expected: Value = match std::fs::read_to_string(chart.dir().join(ALERTS_COPY)) {
        Ok(text) => serde_yaml::from_str::<Value>(&text)?["groups"].clone(),
        Err(_) => serde_json::json!([]),
    };
    ensure!(
        rule["spec"]["groups"] == expected,
        "the PrometheusRule's groups are the alert rules of alerts/{}.rules.yaml",
        chart.name
    );
    Ok(())
}

/// Each rule in `templates/rbac.yaml` has a comment right above it saying why.
fn check_rbac_rules_are_explained(chart: &ChartEntry) -> anyhow::Result<()> {
    let path = chart.dir().join("templates/rbac.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let unexplained = unexplained_rules(&text);
    ensure!(
        unexplained.is_empty(),
        "{}: rules without a comment saying why, at lines {unexplained:?}",
        path.display()
    );
    Ok(())
}

/// 1-based lines of `- apiGroups:` items not directly preceded by a comment line.
fn unexplained_rules(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    (0..lines.len())
        .filter(|&index| lines[index].trim_start().starts_with("- apiGroups:"))
        .filter(|&index| index == 0 || !lines[index - 1].trim_start().starts_with('#'))
        .map(|index| index + 1)
        .collect()
}

/// Bad values are refused by the chart's values.schema.json before anything renders.
fn check_schema_refuses_bad_values(chart: &ChartEntry) -> anyhow::Result<()> {
    for bad in [
        "unknownKey=1",
        "replicaCount=-1",
        "logging.format=xml",
        "image.pullPolicy=Sometimes",
        "watchNamespace=Not_A_Namespace",
        "leaderElection.enabled=maybe",
    ] {
        let refused = template(&chart.dir(), "vertice", "default", &[bad.to_owned()]);
        ensure!(refused.is_err(), "values.schema.json accepts {bad}");
    }
    Ok(())
}

fn has(list: &Value, item: &str) -> bool {
    list.as_array()
        .is_some_and(|items| items.iter().any(|value| value == item))
}

/// Runs kubectl as the admin, with `stdin`; fails with its output.
fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let kubectl = tool_binary("kubectl")?;
    let mut child = Command::new(&kubectl)
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", kubectl.display()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "kubectl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_without_a_comment_above_is_found() {
        let text = "rules:\n  # why\n  - apiGroups: [a]\n  - apiGroups: [b]\n\n  - apiGroups: [c]\n  # why\n  - apiGroups: [d]\n";
        assert_eq!(unexplained_rules(text), vec![4, 6]);
        assert!(unexplained_rules("# why\n- apiGroups: [x]\n").is_empty());
        assert_eq!(unexplained_rules("- apiGroups: [x]\n"), vec![1]);
    }
}
