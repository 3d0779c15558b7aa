//! The batch/v1 Job of one run attempt (backup, restore, verify or drill): the operator's own
//! image running `vertice-backup runner --result-file /dev/termination-log` with the run spec
//! in `VERTICE_BACKUP_SPEC` and the run's Secrets mounted read-only as files (issue 7 §3).
//!
//! Retries inside the Job follow the runner's exit codes (README "Exit codes") through
//! `podFailurePolicy`: a wrong spec, Secret, key or backup (2, 3, 6, 7, 9) and a name that
//! exists (8: a retry would find it again) fail the Job at once; an internal, database or
//! store failure (1, 4, 5) counts against `backoffLimit`; a disrupted Pod (eviction,
//! preemption) is retried without counting.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::labels;
use super::mounts::{LOCAL_STORE_PATH, Mounts};
use crate::api::executor::{ExecutorSpec, PullPolicy};
use crate::engine::spec::RunSpec;

/// The runner container's name (the exit-code rules name it).
pub const CONTAINER: &str = "runner";

/// The environment variable holding the run spec (JSON), read by `vertice-backup runner`.
pub const SPEC_ENV: &str = "VERTICE_BACKUP_SPEC";

/// Where the runner writes its result JSON (the container's termination message).
pub const RESULT_FILE: &str = "/dev/termination-log";

/// The longest Job name: the job controller copies it into the `batch.kubernetes.io/job-name`
/// label, whose values are at most 63 characters.
const MAX_NAME: usize = 63;

/// Exit codes that fail the Job at once (retrying cannot help).
const FAIL_JOB_CODES: [i32; 6] = [2, 3, 6, 7, 8, 9];
/// Exit codes that count against `backoffLimit` (the database or store may come back).
const COUNT_CODES: [i32; 3] = [1, 4, 5];

/// The runner's scratch directory (an emptyDir; `TMPDIR` points to it), since the root
/// filesystem is read-only. Not `/tmp` itself, so the Pod's other mounts never sit under it.
pub const SCRATCH_PATH: &str = "/var/run/vertice/tmp";

/// The non-root user the runner runs as (the image's `nonroot` user).
const RUN_AS_USER: i64 = 65532;

/// What [`build`] needs besides the run spec.
#[derive(Clone, Debug)]
pub struct JobParams<'a> {
    /// The run object's name (BackupRequest or RestoreRequest).
    pub run_name: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// The attempt number, from 1.
    pub attempt: u32,
    /// The ownerReference to the run object (controller=true).
    pub owner: OwnerReference,
    /// The image when the executor names none: the operator's own (`--runner-image`).
    pub default_image: &'a str,
    /// Pod retries after a counted failure.
    pub backoff_limit: i32,
    /// Labels for the Job and its Pods (the managed-by label is always added).
    pub labels: BTreeMap<String, String>,
}

/// The Job name of `attempt` of the run `run_name`: `<run>-<attempt>`, or for a long name its
/// first characters, a hash of the whole name and the attempt — at most 63 characters, a valid
/// DNS label, and different for different runs.
pub fn job_name(run_name: &str, attempt: u32) -> String {
    let suffix = format!("-{attempt}");
    let plain = format!("{run_name}{suffix}");
    if plain.len() <= MAX_NAME && is_dns_label(&plain) {
        return plain;
    }
    let hash = blake3::hash(run_name.as_bytes()).to_hex();
    let hash = &hash.as_str()[..10];
    let keep = MAX_NAME - suffix.len() - hash.len() - 1;
    let head: String = run_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(keep)
        .collect();
    let head = head.trim_matches('-');
    if head.is_empty() {
        format!("run-{hash}{suffix}")
    } else {
        format!("{head}-{hash}{suffix}")
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The Job of one attempt. Errors only if the spec cannot be serialized.
pub fn build(
    params: &JobParams<'_>,
    spec: &RunSpec,
    mounts: &Mounts,
    executor: &ExecutorSpec,
) -> Result<Job, serde_json::Error> {
    let spec_json = serde_json::to_string(spec)?;
    let mut job_labels = params.labels.clone();
    job_labels.insert(labels::MANAGED_BY.into(), labels::MANAGED_BY_VALUE.into());
    job_labels.insert(labels::ATTEMPT.into(), params.attempt.to_string());

    let mut volumes = vec![Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let mut volume_mounts = vec![VolumeMount {
        name: "tmp".into(),
        mount_path: SCRATCH_PATH.into(),
        ..VolumeMount::default()
    }];
    for secret in &mounts.secrets {
        volumes.push(Volume {
            name: secret.volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.secret.clone()),
                default_mode: Some(0o400),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        volume_mounts.push(VolumeMount {
            name: secret.volume.clone(),
            mount_path: mounts.root().join(&secret.volume).display().to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    if let Some(claim) = &mounts.claim {
        volumes.push(Volume {
            name: "store".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
        volume_mounts.push(VolumeMount {
            name: "store".into(),
            mount_path: LOCAL_STORE_PATH.into(),
            ..VolumeMount::default()
        });
    }

    let container = Container {
        name: CONTAINER.into(),
        image: Some(
            executor
                .image
                .clone()
                .unwrap_or_else(|| params.default_image.to_owned()),
        ),
        image_pull_policy: executor.image_pull_policy.map(|policy| {
            match policy {
                PullPolicy::Always => "Always",
                PullPolicy::IfNotPresent => "IfNotPresent",
                PullPolicy::Never => "Never",
            }
            .to_owned()
        }),
        command: Some(vec![
            "vertice-backup".into(),
            "runner".into(),
            "--result-file".into(),
            RESULT_FILE.into(),
        ]),
        env: Some(vec![
            EnvVar {
                name: SPEC_ENV.into(),
                value: Some(spec_json),
                ..EnvVar::default()
            },
            EnvVar {
                name: "TMPDIR".into(),
                value: Some(SCRATCH_PATH.into()),
                ..EnvVar::default()
            },
        ]),
        resources: executor.resources.clone(),
        volume_mounts: Some(volume_mounts),
        termination_message_path: Some(RESULT_FILE.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };

    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        service_account_name: executor.service_account_name.clone(),
        // Runs need no Kubernetes API access.
        automount_service_account_token: Some(false),
        node_selector: executor.node_selector.clone(),
        tolerations: executor.tolerations.clone(),
        volumes: Some(volumes),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS_USER),
            run_as_group: Some(RUN_AS_USER),
            fs_group: Some(RUN_AS_USER),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        ..PodSpec::default()
    };

    Ok(Job {
        metadata: ObjectMeta {
            name: Some(job_name(params.run_name, params.attempt)),
            namespace: Some(params.namespace.to_owned()),
            labels: Some(job_labels.clone()),
            owner_references: Some(vec![params.owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(params.backoff_limit),
            active_deadline_seconds: executor.active_deadline_seconds,
            pod_failure_policy: Some(pod_failure_policy()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

fn pod_failure_policy() -> PodFailurePolicy {
    let on_codes = |action: &str, codes: &[i32]| PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
            container_name: Some(CONTAINER.into()),
            operator: "In".into(),
            values: codes.to_vec(),
        }),
        on_pod_conditions: None,
    };
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".into(),
                on_exit_codes: None,
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".into(),
                    status: Some("True".into()),
                }]),
            },
            on_codes("FailJob", &FAIL_JOB_CODES),
            on_codes("Count", &COUNT_CODES),
        ],
    }
}

/// Creates `job`; one that already exists is this attempt's (Job names are deterministic), so
/// a restarted operator that created it before counts it as created.
pub async fn create(jobs: &kube::Api<Job>, job: &Job) -> Result<(), kube::Error> {
    match jobs.create(&kube::api::PostParams::default(), job).await {
        Ok(_) => Ok(()),
        Err(error) if vertice_core::error::is_conflict(&error) => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::refs::SecretKeyRef;
    use crate::store::StoreConfig;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "backup.vertice.dev/v1alpha1".into(),
            kind: "BackupRequest".into(),
            name: "nightly".into(),
            uid: "u-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    #[test]
    fn job_names_fit_a_label_value_and_stay_distinct() {
        assert_eq!(job_name("nightly-123", 1), "nightly-123-1");
        let long_a = format!("{}-a", "x".repeat(70));
        let long_b = format!("{}-b", "x".repeat(70));
        for (name, attempt) in [
            (long_a.as_str(), 1),
            (long_b.as_str(), 1),
            (long_a.as_str(), 12),
            ("db.backup.example", 3),
            (&"a".repeat(61), 1),
            (&"a".repeat(62), 10),
            ("-.-.-", 2),
        ] {
            let job = job_name(name, attempt);
            assert!(job.len() <= MAX_NAME, "{job}");
            assert!(is_dns_label(&job), "{job}");
            assert!(job.ends_with(&format!("-{attempt}")), "{job}");
        }
        assert_ne!(job_name(&long_a, 1), job_name(&long_b, 1));
        assert_eq!(job_name(&long_a, 1), job_name(&long_a, 1));
    }

    #[test]
    fn the_job_runs_the_runner_with_secrets_as_read_only_files() {
        let mut mounts = Mounts::new(super::super::mounts::SECRETS_ROOT);
        let password = mounts.secret_file(&SecretKeyRef {
            name: "db".into(),
            key: "password".into(),
        });
        let spec = RunSpec {
            action: crate::engine::spec::Action::Backup,
            name: Some("b".into()),
            source: None,
            snapshot: None,
            storage: StoreConfig::default(),
            objects: None,
            compression: "zstd".into(),
            compression_level: None,
            fixed_compression_level: false,
            chunk_size: None,
            parallelism: None,
            encryption: Default::default(),
            labels: BTreeMap::new(),
            restore: Default::default(),
        };
        let executor = ExecutorSpec {
            image: Some("registry/runner:1".into()),
            active_deadline_seconds: Some(600),
            ..ExecutorSpec::default()
        };
        let params = JobParams {
            run_name: "nightly",
            namespace: "ns",
            attempt: 2,
            owner: owner(),
            default_image: "operator:1",
            backoff_limit: 2,
            labels: BTreeMap::from([(labels::REQUEST.into(), "nightly".into())]),
        };
        let job = build(&params, &spec, &mounts, &executor).unwrap();
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(json["metadata"]["name"], "nightly-2");
        assert_eq!(
            json["metadata"]["labels"][labels::MANAGED_BY],
            labels::MANAGED_BY_VALUE
        );
        assert_eq!(json["metadata"]["ownerReferences"][0]["uid"], "u-1");
        let spec_json = &json["spec"];
        assert_eq!(spec_json["backoffLimit"], 2);
        assert_eq!(spec_json["activeDeadlineSeconds"], 600);
        let pod = &spec_json["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "registry/runner:1");
        assert_eq!(
            container["command"],
            serde_json::json!(["vertice-backup", "runner", "--result-file", RESULT_FILE])
        );
        assert_eq!(
            container["terminationMessagePolicy"],
            "FallbackToLogsOnError"
        );
        assert_eq!(container["env"][0]["name"], SPEC_ENV);
        let mount = &container["volumeMounts"][1];
        assert_eq!(mount["readOnly"], true);
        assert!(
            password.starts_with(mount["mountPath"].as_str().unwrap()),
            "{password:?} {mount}"
        );
        assert_eq!(pod["volumes"][1]["secret"]["secretName"], "db");
        let rules = &spec_json["podFailurePolicy"]["rules"];
        assert_eq!(rules[0]["action"], "Ignore");
        assert_eq!(
            rules[1]["onExitCodes"]["values"],
            serde_json::json!([2, 3, 6, 7, 8, 9])
        );
        assert_eq!(
            rules[2]["onExitCodes"]["values"],
            serde_json::json!([1, 4, 5])
        );
    }
}
