//! The life of one Pod on the stand-in node: map images, prepare volumes and env (retrying while
//! something is missing), run every container at once, restart by `restartPolicy`, stop on
//! deletion with SIGTERM then SIGKILL, and report each step in the Pod's status.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{Patch, PatchParams};
use nix::sys::signal::Signal;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::container::{Exit, Launch, Running};
use super::env::{self, expand};
use super::sources::{PrepareError, Sources};
use super::status::{ContainerView, Phase, PodView, State, Terminated, now};
use super::termination::{describe_exit, start_error};
use super::volumes::{self, Mount, sort_parents_first};

/// `terminationGracePeriodSeconds` when the Pod does not set it.
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// Between attempts to prepare a container whose Secret, ConfigMap or claim is missing.
const PREPARE_RETRY: Duration = Duration::from_millis(500);
/// The first restart delay of an `OnFailure`/`Always` container, doubled per restart up to
/// [`MAX_RESTART_DELAY`] (the kubelet starts at 10 s and caps at 5 min; tests cannot wait that).
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(10);
/// The environment a container image usually brings (the pod's env wins).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What every container of one Pod shares.
struct PodContext {
    shared: Arc<Shared>,
    pods: Api<Pod>,
    namespace: String,
    name: String,
    uid: String,
    restart_policy: String,
    grace: Duration,
    view: Mutex<PodView>,
    terminate: CancellationToken,
}

/// Runs `pod` until every container has ended for good or `terminate` is cancelled (the Pod
/// was deleted), then writes its terminal status.
pub(crate) async fn run(shared: Arc<Shared>, pod: Pod, terminate: CancellationToken) {
    let spec = pod.spec.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let grace_seconds = spec
        .termination_grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    let context = PodContext {
        pods: Api::namespaced(shared.client.clone(), &namespace),
        shared,
        namespace,
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        restart_policy: spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".to_owned()),
        grace: Duration::from_secs(u64::try_from(grace_seconds).unwrap_or(0)),
        view: Mutex::new(PodView::new(
            spec.containers
                .iter()
                .map(|container| ContainerView {
                    name: container.name.clone(),
                    image: container.image.clone().unwrap_or_default(),
                    state: State::Waiting {
                        reason: "ContainerCreating".to_owned(),
                        message: String::new(),
                    },
                    restart_count: 0,
                    last_terminated: None,
                })
                .collect(),
        )),
        terminate,
    };

    let mut programs = Vec::new();
    let mut unmapped = Vec::new();
    for container in &spec.containers {
        let image = container.image.as_deref().unwrap_or_default();
        match context.shared.program_for(image) {
            Some(program) => programs.push(program),
            None => unmapped.push((container.name.clone(), image.to_owned())),
        }
    }
    if !unmapped.is_empty() {
        fail_unmapped_images(&context, &unmapped).await;
        return;
    }
    context.patch_current().await;

    let launches = match prepare_until_ready(&context, &pod, &spec.containers, programs).await {
        Some(launches) => launches,
        None => {
            // Deleted before its containers could start.
            let mut view = context.view.lock().await;
            view.phase = Phase::Failed;
            context.patch(&mut view).await;
            return;
        }
    };
    let runs = spec
        .containers
        .iter()
        .zip(launches)
        .map(|(container, launch)| run_container(&context, container, launch));
    futures::future::join_all(runs).await;
    let mut view = context.view.lock().await;
    if !view.phase.is_terminal() {
        // Stopped on deletion: whatever the containers say, the Pod is over.
        view.settle_phase();
        if !view.phase.is_terminal() {
            view.phase = Phase::Failed;
        }
    }
    context.patch(&mut view).await;
}

impl PodContext {
    async fn patch_current(&self) {
        let mut view = self.view.lock().await;
        self.patch(&mut view).await;
    }

    /// Writes the status; a Pod that is gone is not an error. Other failures are retried a few
    /// times and then reported on stderr (the test harness shows it with the failing test).
    async fn patch(&self, view: &mut PodView) {
        let body = view.patch();
        let mut last_error = None;
        for _ in 0..5 {
            match self
                .pods
                .patch_status(
                    &self.name,
                    &PatchParams::default(),
                    &Patch::Strategic(&body),
                )
                .await
            {
                Ok(_) => return,
                Err(kube::Error::Api(status)) if status.code == 404 => return,
                Err(kube::Error::Api(status)) if status.code == 422 => {
                    last_error = Some(format!("{status:?}"));
                    break;
                }
                Err(error) => last_error = Some(format!("{error}")),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(error) = last_error {
            eprintln!(
                "testkit kubelet: patching the status of pod {}/{} failed: {error}",
                self.namespace, self.name
            );
        }
    }

    fn pod_dir(&self) -> PathBuf {
        self.shared.root.join("pods").join(&self.uid)
    }
}

/// The kubelet leaves such a Pod Pending in `ErrImagePull`; a test is better served by a Pod that
/// fails at once and says which image lacks a local binary.
async fn fail_unmapped_images(context: &PodContext, unmapped: &[(String, String)]) {
    let known = context.shared.known_images();
    let mut view = context.view.lock().await;
    for (container, image) in unmapped {
        if let Some(view) = view.container_mut(container) {
            view.state = State::Waiting {
                reason: "ErrImagePull".to_owned(),
                message: format!(
                    "image {image:?} is not mapped to a local binary by the test \
                     (testkit kubelet knows: {known})"
                ),
            };
        }
    }
    view.phase = Phase::Failed;
    view.reason = Some("ErrImagePull".to_owned());
    view.message = Some(format!(
        "images without a local binary: {}",
        unmapped
            .iter()
            .map(|(container, image)| format!("{container}={image}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    context.patch(&mut view).await;
}

/// Prepares every container, retrying while something is missing (the container waits in
/// `CreateContainerConfigError`, as with the kubelet). `None` when the Pod is deleted first.
async fn prepare_until_ready(
    context: &PodContext,
    pod: &Pod,
    containers: &[Container],
    programs: Vec<PathBuf>,
) -> Option<Vec<Launch>> {
    let mut last_message = None;
    loop {
        if context.terminate.is_cancelled() {
            return None;
        }
        match prepare(context, pod, containers, &programs).await {
            Ok(launches) => return Some(launches),
            Err(error) => {
                let message = error.to_string();
                if last_message.as_ref() != Some(&message) {
                    let mut view = context.view.lock().await;
                    for container in &mut view.containers {
                        container.state = State::Waiting {
                            reason: "CreateContainerConfigError".to_owned(),
                            message: message.clone(),
                        };
                    }
                    context.patch(&mut view).await;
                    last_message = Some(message);
                }
            }
        }
        tokio::select! {
            () = context.terminate.cancelled() => return None,
            () = tokio::time::sleep(PREPARE_RETRY) => {}
        }
    }
}

async fn prepare(
    context: &PodContext,
    pod: &Pod,
    containers: &[Container],
    programs: &[PathBuf],
) -> Result<Vec<Launch>, PrepareError> {
    let has_init_containers = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.init_containers.as_ref())
        .is_some_and(|init| !init.is_empty());
    if has_init_containers {
        return Err(PrepareError::Config(
            "initContainers are not emulated by testkit's kubelet".to_owned(),
        ));
    }
    let mut sources = Sources::new(&context.shared.client, &context.namespace);
    let pod_dir = context.pod_dir();
    let volumes = volumes::materialise(
        &context.shared.client,
        pod,
        &mut sources,
        &pod_dir,
        &context.shared.root.join("claims"),
    )
    .await?;
    let mut launches = Vec::new();
    for (container, program) in containers.iter().zip(programs) {
        let mut environment = env::resolve(pod, container, &mut sources).await?;
        let mut mounts = volumes::container_mounts(&volumes, container, &environment)?;
        let container_dir = pod_dir.join("containers").join(&container.name);
        std::fs::create_dir_all(&container_dir).map_err(PrepareError::io(format!(
            "creating {}",
            container_dir.display()
        )))?;
        let termination_file = container_dir.join("termination-log");
        mounts.push(Mount {
            source: termination_file.clone(),
            target: container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".to_owned()),
            read_only: false,
        });
        sort_parents_first(&mut mounts);
        // `command` replaces the image's entrypoint and `args` its CMD; the mapped binary is
        // the one program of the image, so it stands in for `command[0]`.
        let expanded = |items: &Option<Vec<String>>| -> Vec<String> {
            items
                .iter()
                .flatten()
                .map(|item| expand(item, &environment))
                .collect()
        };
        let mut args: Vec<String> = expanded(&container.command).into_iter().skip(1).collect();
        args.extend(expanded(&container.args));
        environment
            .entry("PATH".to_owned())
            .or_insert_with(|| DEFAULT_PATH.to_owned());
        environment
            .entry("HOSTNAME".to_owned())
            .or_insert_with(|| context.name.clone());
        environment
            .entry("HOME".to_owned())
            .or_insert_with(|| "/root".to_owned());
        launches.push(Launch {
            program: program.clone(),
            args,
            environment,
            working_dir: container
                .working_dir
                .clone()
                .filter(|dir| !dir.is_empty())
                .unwrap_or_else(|| "/".to_owned()),
            mounts,
            termination_file,
            log_path: pod_dir.join("logs").join(format!("{}.log", container.name)),
        });
    }
    Ok(launches)
}

/// Runs one container, restarting it as `restartPolicy` says, until it ends for good or the Pod
/// is deleted.
async fn run_container(context: &PodContext, container: &Container, launch: Launch) {
    let mut restart_delay = FIRST_RESTART_DELAY;
    loop {
        let terminated = run_once(context, container, &launch).await;
        let restart = !context.terminate.is_cancelled()
            && match context.restart_policy.as_str() {
                "Always" => true,
                "OnFailure" => terminated.exit_code != 0,
                _ => false,
            };
        {
            let mut view = context.view.lock().await;
            if let Some(entry) = view.container_mut(&container.name) {
                if restart {
                    entry.restart_count += 1;
                    entry.state = State::Waiting {
                        reason: "CrashLoopBackOff".to_owned(),
                        message: format!(
                            "back-off {restart_delay:?} restarting failed container={}",
                            container.name
                        ),
                    };
                    entry.last_terminated = Some(terminated.clone());
                } else {
                    entry.state = State::Terminated(terminated.clone());
                }
            }
            view.settle_phase();
            context.patch(&mut view).await;
        }
        if !restart {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(restart_delay) => {}
            () = context.terminate.cancelled() => {
                // The Pod's final patch reports it terminated again.
                let mut view = context.view.lock().await;
                if let Some(entry) = view.container_mut(&container.name) {
                    entry.state = State::Terminated(terminated);
                }
                return;
            }
        }
        restart_delay = (restart_delay * 2).min(MAX_RESTART_DELAY);
    }
}

/// One run: start, report `running`, wait for the exit (or stop it when the Pod is deleted).
async fn run_once(context: &PodContext, container: &Container, launch: &Launch) -> Terminated {
    let _ = std::fs::write(&launch.termination_file, b"");
    let started_at = now();
    let mut running = match Running::spawn(&context.shared.unshare, launch) {
        Ok(running) => running,
        Err(error) => {
            let terminated = start_error(launch, &error, started_at);
            context.shared.record_exit(
                &context.namespace,
                &context.name,
                &container.name,
                Exit {
                    exit_code: terminated.exit_code,
                    signal: None,
                },
            );
            return terminated;
        }
    };
    let container_id = format!("testkit-kubelet://{}", running.pid());
    context.shared.record_start(
        &context.namespace,
        &context.name,
        &context.uid,
        &container.name,
        &launch.log_path,
        running.pid(),
    );
    {
        let mut view = context.view.lock().await;
        if let Some(entry) = view.container_mut(&container.name) {
            entry.state = State::Running {
                started_at: started_at.clone(),
                container_id: container_id.clone(),
            };
        }
        view.settle_phase();
        context.patch(&mut view).await;
    }
    let exit = tokio::select! {
        exit = running.wait() => exit,
        () = context.terminate.cancelled() => stop(&mut running, context.grace).await,
    };
    let terminated = describe_exit(container, exit, launch, started_at, container_id);
    context.shared.record_exit(
        &context.namespace,
        &context.name,
        &container.name,
        Exit {
            exit_code: terminated.exit_code,
            signal: terminated.signal,
        },
    );
    terminated
}

/// SIGTERM to the program, SIGKILL to its process group after `grace`.
async fn stop(running: &mut Running, grace: Duration) -> Exit {
    running.signal(Signal::SIGTERM);
    match tokio::time::timeout(grace, running.wait()).await {
        Ok(exit) => exit,
        Err(_) => {
            running.kill_group();
            running.wait().await
        }
    }
}
