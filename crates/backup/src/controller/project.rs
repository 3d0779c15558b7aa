//! Which project and environment a backup run belongs to (issue 8 §3).
//!
//! A run's project is its spec `projectId`, else its VerticeBackup's `projectId`, else its
//! `vertice.dev/project` label (how a project was named before the field existed), else its
//! namespace; its environment likewise from `environment` and `vertice.dev/environment`, else
//! none. The BackupRequest controller writes the resolved values onto the run as those labels
//! before the run is admitted ([`labels_to_write`]), so that everything reading runs from the
//! cache — the per-project limit in `queue.rs`, the size gauge — finds a run's project on the
//! run itself without reading its VerticeBackup.

use std::collections::BTreeMap;

use kube::ResourceExt;

use super::labels;
use crate::api::{BackupRequest, VerticeBackup, VerticeBackupSpec};

/// A run's project and environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunIdentity {
    /// The project (never empty for a namespaced object).
    pub project: String,
    /// The environment, if any.
    pub environment: Option<String>,
}

impl RunIdentity {
    /// The environment as a metric label value (`""` when none).
    pub fn environment_label(&self) -> &str {
        self.environment.as_deref().unwrap_or_default()
    }
}

fn label(object: &impl ResourceExt, key: &str) -> Option<String> {
    object.labels().get(key).filter(|v| !v.is_empty()).cloned()
}

/// The project and environment of `request`, whose VerticeBackup (if it has one) is `policy`.
pub fn identity(request: &BackupRequest, policy: Option<&VerticeBackupSpec>) -> RunIdentity {
    let spec = &request.spec;
    let project = spec
        .project_id
        .clone()
        .or_else(|| policy.and_then(|policy| policy.project_id.clone()))
        .or_else(|| label(request, labels::PROJECT))
        .unwrap_or_else(|| request.namespace().unwrap_or_default());
    let environment = spec
        .environment
        .clone()
        .or_else(|| policy.and_then(|policy| policy.environment.clone()))
        .or_else(|| label(request, labels::ENVIRONMENT));
    RunIdentity {
        project,
        environment,
    }
}

/// The project a run counts against, read from the run alone: its `projectId`, else its
/// `vertice.dev/project` label (written by the controller from its VerticeBackup before the
/// run starts), else its namespace.
pub fn project_of(request: &BackupRequest) -> String {
    request
        .spec
        .project_id
        .clone()
        .or_else(|| label(request, labels::PROJECT))
        .unwrap_or_else(|| request.namespace().unwrap_or_default())
}

/// The environment of a run, read from the run alone (like [`project_of`]).
pub fn environment_of(request: &BackupRequest) -> Option<String> {
    request
        .spec
        .environment
        .clone()
        .or_else(|| label(request, labels::ENVIRONMENT))
}

/// The project and environment of a VerticeBackup's runs: its `projectId`/`environment`,
/// else its `vertice.dev/project`/`vertice.dev/environment` labels, else the namespace/none.
pub fn policy_identity(backup: &VerticeBackup) -> RunIdentity {
    RunIdentity {
        project: backup
            .spec
            .project_id
            .clone()
            .or_else(|| label(backup, labels::PROJECT))
            .unwrap_or_else(|| backup.namespace().unwrap_or_default()),
        environment: backup
            .spec
            .environment
            .clone()
            .or_else(|| label(backup, labels::ENVIRONMENT)),
    }
}

/// The labels `identity` puts on a run, its Job and its manifest.
pub fn identity_labels(identity: &RunIdentity) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([(labels::PROJECT.to_owned(), identity.project.clone())]);
    if let Some(environment) = &identity.environment {
        out.insert(labels::ENVIRONMENT.to_owned(), environment.clone());
    }
    out
}

/// The labels `request` lacks (or holds with another value) to carry `identity`; `None` when
/// it already carries them.
pub fn labels_to_write(
    request: &BackupRequest,
    identity: &RunIdentity,
) -> Option<BTreeMap<String, String>> {
    let wanted = identity_labels(identity);
    let missing = wanted
        .iter()
        .any(|(key, value)| request.labels().get(key) != Some(value));
    missing.then_some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BackupRequestSpec;
    use crate::api::refs::LocalRef;
    use kube::api::ObjectMeta;

    fn request(
        project: Option<&str>,
        environment: Option<&str>,
        labels: &[(&str, &str)],
    ) -> BackupRequest {
        let spec = BackupRequestSpec {
            backup_ref: Some(LocalRef { name: "vb".into() }),
            target: None,
            snapshot: None,
            object_store: None,
            storage: None,
            encryption: None,
            compression: None,
            executor: None,
            backup_name: None,
            labels: BTreeMap::new(),
            project_id: project.map(str::to_owned),
            environment: environment.map(str::to_owned),
        };
        let mut run = BackupRequest::new("run", spec);
        run.metadata = ObjectMeta {
            name: Some("run".into()),
            namespace: Some("ns".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        };
        run
    }

    fn policy(project: Option<&str>, environment: Option<&str>) -> VerticeBackupSpec {
        let mut spec: VerticeBackupSpec = serde_json::from_value(serde_json::json!({
            "schedule": "@daily",
            "storage": {"store": "s3", "bucket": "b", "credentialsSecretRef": {"name": "s"}},
            "encryption": {"disabled": true},
            "target": {"engine": "redis", "host": "h", "passwordSecretRef": {"name": "p", "key": "k"}},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        spec.project_id = project.map(str::to_owned);
        spec.environment = environment.map(str::to_owned);
        spec
    }

    #[test]
    fn the_run_s_own_fields_win_then_the_policy_then_labels_then_the_namespace() {
        let vb = policy(Some("shop"), Some("prod"));
        let own = request(Some("mine"), Some("dev"), &[(labels::PROJECT, "label")]);
        assert_eq!(
            identity(&own, Some(&vb)),
            RunIdentity {
                project: "mine".into(),
                environment: Some("dev".into())
            }
        );
        let inherits = request(None, None, &[(labels::PROJECT, "label")]);
        assert_eq!(identity(&inherits, Some(&vb)).project, "shop");
        assert_eq!(
            identity(&inherits, Some(&vb)).environment.as_deref(),
            Some("prod")
        );
        let bare = policy(None, None);
        assert_eq!(identity(&inherits, Some(&bare)).project, "label");
        assert_eq!(identity(&inherits, Some(&bare)).environment, None);
        let nothing = request(None, None, &[]);
        assert_eq!(identity(&nothing, None).project, "ns");
        assert_eq!(identity(&nothing, None).environment_label(), "");
    }

    #[test]
    fn labels_are_written_until_the_run_carries_its_identity() {
        let vb = policy(Some("shop"), Some("prod"));
        let run = request(None, None, &[(labels::PROJECT, "old")]);
        let wanted = identity(&run, Some(&vb));
        let labels = labels_to_write(&run, &wanted).unwrap_or_default();
        assert_eq!(
            labels.get(labels::PROJECT).map(String::as_str),
            Some("shop")
        );
        assert_eq!(
            labels.get(labels::ENVIRONMENT).map(String::as_str),
            Some("prod")
        );
        let labelled = request(
            None,
            None,
            &[(labels::PROJECT, "shop"), (labels::ENVIRONMENT, "prod")],
        );
        assert_eq!(labels_to_write(&labelled, &wanted), None);
        // Once labelled, the run alone names the project its VerticeBackup gave it.
        assert_eq!(project_of(&labelled), "shop");
        assert_eq!(environment_of(&labelled).as_deref(), Some("prod"));
    }
}
