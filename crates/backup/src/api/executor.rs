//! Where a run executes: a Kubernetes Job per attempt (the default; the data never passes
//! through the operator) or inside the operator process (small databases, no Job overhead).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How runs execute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExecutorType {
    /// A batch/v1 Job per attempt, running this operator's image as `vertice-backup runner`.
    #[default]
    Job,
    /// A task inside the operator process (cancelled on shutdown or lost leadership).
    InProcess,
}

/// Pull policy of the runner image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    /// Always pull.
    Always,
    /// Pull when not present (the default for tagged images).
    IfNotPresent,
    /// Never pull.
    Never,
}

/// The executor and, for `Job`, the Pod settings of each run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'Job' || (!has(self.image) && !has(self.resources) && !has(self.serviceAccountName) && !has(self.nodeSelector) && !has(self.tolerations) && !has(self.activeDeadlineSeconds))").message("image, resources, serviceAccountName, nodeSelector, tolerations and activeDeadlineSeconds apply to type Job only"))]
pub struct ExecutorSpec {
    /// `Job` (default) or `InProcess`.
    #[serde(default, rename = "type")]
    pub type_: ExecutorType,
    /// Runner image; default the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Pull policy of `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// CPU and memory of the runner container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// ServiceAccount of the runner Pod; default the namespace's `default` (runs need no
    /// Kubernetes API access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account_name: Option<String>,
    /// Node labels the runner Pod must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Tolerations of the runner Pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// Seconds an attempt may run before Kubernetes stops it. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 604800))]
    pub active_deadline_seconds: Option<i64>,
}
