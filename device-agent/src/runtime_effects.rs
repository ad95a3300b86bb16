//! Executes the runtime and file-system effects of [`PodLifecycle`](crate::pod_lifecycle::PodLifecycle)
//! (volumes, image pulls, create, start, stop, remove, pod directory clean-up) and turns
//! their results into outcomes.

use std::path::Path;
use std::time::Duration;

use edge_protocol::{
    ContainerPort, ContainerSpec, DEFAULT_TERMINATION_MESSAGE_PATH, PodSpec, PullPolicy,
};
use tokio::sync::mpsc;

use crate::config::SandboxSettings;
use crate::container_labels::{ContainerIdentity, SANDBOX_CONTAINER_NAME};
use crate::container_runtime::{
    BindMount, ContainerRuntime, CreateContainer, PortMapping, cpu_shares,
};
use crate::image_reference::credential_for;
use crate::pod_lifecycle::{
    ContainerKey, Effect, FailureReason, Input, Outcome, SandboxRole, VolumeSetupError,
};
use crate::{hook_runner, pod_volumes, termination_log};

/// Executes one runtime/file-system effect; returns its outcome.
pub async fn run_effect(
    runtime: &dyn ContainerRuntime,
    device: &str,
    state_dir: &Path,
    effect: Effect,
    tx: &mpsc::UnboundedSender<Input>,
) -> Option<Outcome> {
    let outcome = run(runtime, device, state_dir, effect, tx).await;
    match &outcome {
        Some(Outcome::Created { key, id }) => {
            tracing::debug!(pod = %key.0, container = %key.1, %id, "container created");
        }
        Some(Outcome::CreateFailed { key, message, .. }) => {
            tracing::warn!(pod = %key.0, container = %key.1, error = %message, "cannot create container");
        }
        Some(Outcome::Started { id, .. }) => tracing::debug!(%id, "container started"),
        Some(Outcome::StartFailed { id, message, .. }) => {
            tracing::warn!(%id, error = %message, "cannot start container");
        }
        Some(Outcome::Stopped { id }) => tracing::debug!(%id, "container stopped"),
        Some(Outcome::StopFailed { id, message }) => {
            tracing::warn!(%id, error = %message, "cannot stop container");
        }
        Some(Outcome::Removed { id }) => tracing::debug!(%id, "container removed"),
        Some(Outcome::RemoveFailed { id, message }) => {
            tracing::warn!(%id, error = %message, "cannot remove container");
        }
        _ => {}
    }
    outcome
}

async fn run(
    runtime: &dyn ContainerRuntime,
    device: &str,
    state_dir: &Path,
    effect: Effect,
    tx: &mpsc::UnboundedSender<Input>,
) -> Option<Outcome> {
    match effect {
        Effect::PrepareVolumes { pod } => {
            let dir = state_dir.to_owned();
            let uid = pod.uid.clone();
            let result =
                match tokio::task::spawn_blocking(move || pod_volumes::prepare(&dir, &pod)).await {
                    Ok(prepared) => prepared.map_err(VolumeSetupError::from),
                    Err(e) => Err(VolumeSetupError::Interrupted(e.to_string())),
                };
            Some(Outcome::VolumesReady {
                pod_uid: uid,
                result,
            })
        }
        Effect::EnsureImage {
            key,
            image,
            policy,
            credentials,
        } => Some(ensure_image(runtime, key, &image, policy, &credentials, tx).await),
        Effect::Create {
            key,
            pod,
            restart_count,
            spec_hash,
            share,
            sandbox,
            gpus,
        } => {
            if let SandboxRole::Infra(settings) = &sandbox {
                let spec = infra_container(device, &pod, restart_count, spec_hash, settings);
                return Some(match runtime.create(&spec).await {
                    Ok(id) => Outcome::Created { key, id },
                    Err(e) => Outcome::CreateFailed {
                        key,
                        reason: FailureReason::CreateContainerError,
                        message: format!("Failed to create pod sandbox: {e}"),
                    },
                });
            }
            let joined = match &sandbox {
                SandboxRole::Join(id) => Some(format!("container:{id}")),
                SandboxRole::Own | SandboxRole::Infra(_) => None,
            };
            let ephemeral = pod.ephemeral_container(&key.1);
            let c = match pod.container(&key.1) {
                Some(c) => c.clone(),
                None => match ephemeral {
                    Some(e) => e.to_container_spec(),
                    None => {
                        return Some(Outcome::CreateFailed {
                            key,
                            reason: FailureReason::CreateContainerConfigError,
                            message: "container is not in the pod spec".to_owned(),
                        });
                    }
                },
            };
            let c = &c;
            let mut mounts = match pod_volumes::container_mounts(state_dir, &pod, c) {
                Ok(m) => m,
                Err(e) => {
                    return Some(Outcome::CreateFailed {
                        key,
                        reason: FailureReason::CreateContainerConfigError,
                        message: e.to_string(),
                    });
                }
            };
            if let Err(e) = bind_termination_log(state_dir, &pod, c, restart_count, &mut mounts) {
                return Some(Outcome::CreateFailed {
                    key,
                    reason: FailureReason::CreateContainerConfigError,
                    message: format!("cannot create the termination message file: {e}"),
                });
            }
            let spec = CreateContainer {
                identity: Some(ContainerIdentity {
                    device: device.to_owned(),
                    pod_uid: pod.uid.clone(),
                    pod_namespace: pod.namespace.clone(),
                    pod_name: pod.name.clone(),
                    container_name: c.name.clone(),
                    restart_count,
                    spec_hash,
                    grace_period_seconds: pod.termination_grace_period_seconds,
                    sandbox_id: match &sandbox {
                        SandboxRole::Join(id) => id.clone(),
                        SandboxRole::Own | SandboxRole::Infra(_) => String::new(),
                    },
                    gpu_devices: gpus.clone(),
                }),
                image: c.image.clone(),
                command: c.command.clone(),
                args: c.args.clone(),
                working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
                env: c
                    .env
                    .iter()
                    .map(|e| format!("{}={}", e.name, e.value))
                    .collect(),
                binds: mounts.binds,
                tmpfs: mounts.tmpfs,
                devices: c.devices.clone(),
                ports: port_mappings(&c.ports),
                cpu_limit_millis: c.resources.cpu_limit_millis,
                cpu_shares: Some(cpu_shares(c.resources.cpu_request_millis)),
                memory_limit_bytes: c.resources.memory_limit_bytes,
                host_network: pod.host_network,
                hostname: pod.hostname.clone().or_else(|| Some(pod.name.clone())),
                privileged: c.privileged,
                pid_mode: share
                    .as_ref()
                    .and_then(|s| s.pid_of.as_ref())
                    .map(|id| format!("container:{id}")),
                network_mode: share
                    .as_ref()
                    .and_then(|s| s.network_of.as_ref())
                    .map(|id| format!("container:{id}"))
                    .or_else(|| joined.clone()),
                ipc_mode: joined,
                stdin: c.stdin,
                stdin_once: c.stdin_once,
                tty: c.tty,
                gpus,
            };
            Some(match runtime.create(&spec).await {
                Ok(id) => Outcome::Created { key, id },
                Err(e) => Outcome::CreateFailed {
                    key,
                    reason: FailureReason::CreateContainerError,
                    message: e.to_string(),
                },
            })
        }
        Effect::Start { key, id } => Some(match runtime.start(&id).await {
            Ok(()) => Outcome::Started { key, id },
            Err(e) => Outcome::StartFailed {
                key,
                id,
                message: e.to_string(),
            },
        }),
        Effect::Stop { id, grace } => {
            let limit = grace + Duration::from_secs(30);
            Some(
                match tokio::time::timeout(limit, runtime.stop(&id, grace)).await {
                    Ok(Ok(())) => Outcome::Stopped { id },
                    Ok(Err(e)) => Outcome::StopFailed {
                        id,
                        message: e.to_string(),
                    },
                    Err(_) => Outcome::StopFailed {
                        id,
                        message: "stop timed out".to_owned(),
                    },
                },
            )
        }
        Effect::Remove { id } => Some(match runtime.remove(&id).await {
            Ok(()) => Outcome::Removed { id },
            Err(e) => Outcome::RemoveFailed {
                id,
                message: e.to_string(),
            },
        }),
        Effect::CleanupPod { pod_uid } => {
            let dir = state_dir.to_owned();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = pod_volumes::cleanup(&dir, &pod_uid) {
                    tracing::warn!(error = %e, pod = %pod_uid, "cannot remove pod directory");
                }
            })
            .await;
            None
        }
        Effect::RunHook {
            container_id,
            kind,
            handler,
            target_ip,
            timeout,
        } => {
            let (elapsed, result) =
                hook_runner::run_hook(runtime, &container_id, &handler, &target_ip, timeout).await;
            Some(Outcome::HookDone {
                container_id,
                kind,
                elapsed,
                result,
            })
        }
        Effect::ReadTerminationMessage {
            container_id,
            pod_uid,
            container_name,
            restart_count,
            fallback_to_logs,
        } => {
            let path =
                termination_log::host_path(state_dir, &pod_uid, &container_name, restart_count);
            let mut message = tokio::task::spawn_blocking(move || termination_log::read(&path))
                .await
                .ok()
                .flatten();
            if fallback_to_logs && message.as_deref().is_none_or(str::is_empty) {
                message = termination_log::log_tail(runtime, &container_id).await;
            }
            Some(Outcome::TerminationMessage {
                container_id,
                message,
            })
        }
        Effect::Report(_)
        | Effect::Events(_)
        | Effect::WatchProbes { .. }
        | Effect::UnwatchProbes { .. } => None,
    }
}

/// Binds the termination message file of this instance at the container's
/// `terminationMessagePath` (unless a volume is mounted there).
fn bind_termination_log(
    state_dir: &Path,
    pod: &PodSpec,
    c: &ContainerSpec,
    restart_count: u32,
    mounts: &mut pod_volumes::ContainerMounts,
) -> std::io::Result<()> {
    let container_path = c
        .termination_message_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.to_owned());
    if mounts
        .binds
        .iter()
        .any(|b| b.container_path == container_path)
    {
        return Ok(());
    }
    let host = termination_log::prepare(state_dir, &pod.uid, &c.name, restart_count)?;
    mounts.binds.push(BindMount {
        host_path: host.to_string_lossy().into_owned(),
        container_path,
        read_only: false,
    });
    Ok(())
}

/// The pod's infra container: it holds the network (with every published port), IPC
/// (shareable) and UTS (the pod's hostname) namespaces its containers join.
fn infra_container(
    device: &str,
    pod: &PodSpec,
    restart_count: u32,
    spec_hash: String,
    settings: &SandboxSettings,
) -> CreateContainer {
    let ports: Vec<ContainerPort> = pod
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().cloned())
        .collect();
    CreateContainer {
        identity: Some(ContainerIdentity {
            device: device.to_owned(),
            pod_uid: pod.uid.clone(),
            pod_namespace: pod.namespace.clone(),
            pod_name: pod.name.clone(),
            container_name: SANDBOX_CONTAINER_NAME.to_owned(),
            restart_count,
            spec_hash,
            grace_period_seconds: pod.termination_grace_period_seconds,
            sandbox_id: String::new(),
            gpu_devices: Vec::new(),
        }),
        image: settings.image.clone(),
        command: settings.command.clone(),
        ports: port_mappings(&ports),
        hostname: pod.hostname.clone().or_else(|| Some(pod.name.clone())),
        ipc_mode: Some("shareable".to_owned()),
        ..Default::default()
    }
}

fn port_mappings(ports: &[ContainerPort]) -> Vec<PortMapping> {
    ports
        .iter()
        .map(|p| PortMapping {
            container_port: p.container_port,
            host_port: p.host_port,
            protocol: format!("{:?}", p.protocol).to_lowercase(),
        })
        .collect()
}

async fn ensure_image(
    runtime: &dyn ContainerRuntime,
    key: ContainerKey,
    image: &str,
    policy: PullPolicy,
    credentials: &[edge_protocol::RegistryCredential],
    tx: &mpsc::UnboundedSender<Input>,
) -> Outcome {
    let present = match policy {
        PullPolicy::Always => false,
        _ => match runtime.image_present(image).await {
            Ok(p) => p,
            Err(e) => {
                return Outcome::ImageFailed {
                    key,
                    message: e.to_string(),
                };
            }
        },
    };
    if present {
        return Outcome::ImageReady { key, pulled: false };
    }
    if policy == PullPolicy::Never {
        return Outcome::ImageFailed {
            key,
            message: format!(
                "Container image \"{image}\" is not present with pull policy of Never"
            ),
        };
    }
    let _ = tx.send(Input::Done(Outcome::PullStarted { key: key.clone() }));
    let credential = credential_for(image, credentials);
    match runtime.pull(image, credential).await {
        Ok(()) => Outcome::ImageReady { key, pulled: true },
        Err(e) => Outcome::ImageFailed {
            key,
            message: e.to_string(),
        },
    }
}
