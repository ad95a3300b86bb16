//! The wipe of a retired device, ordered by the gateway on `down/retire` (protocol 1.3):
//! every managed container stopped (with its pod's grace period, at most
//! [`MAX_STOP_GRACE`]) and removed, then the state directory (local store, outbox, pod
//! volumes and their Secrets) and the device's key and certificate deleted. The agent
//! then exits with [`RETIRED_EXIT_CODE`], which the systemd unit lists in
//! `RestartPreventExitStatus=`, so it is not restarted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::AgentConfig;
use crate::container_runtime::{ContainerRuntime, RunState};

/// The exit status of a retired agent (sysexits' `EX_CONFIG`: it has no identity any
/// more; `RestartPreventExitStatus=78` in `edge-agent.service`).
pub const RETIRED_EXIT_CODE: i32 = 78;
/// The longest a container is given to stop before it is killed.
pub const MAX_STOP_GRACE: Duration = Duration::from_secs(30);

/// What the wipe did and what it could not do.
#[derive(Debug, Default)]
pub struct WipeReport {
    pub containers_removed: usize,
    pub paths_removed: Vec<PathBuf>,
    /// One line per failed step (the wipe goes on with the others).
    pub failures: Vec<String>,
}

/// The files and directories a retired device deletes: the state directory and the
/// device's private key and certificate (the CA certificate is public and stays) (pure).
pub fn paths_to_wipe(config: &AgentConfig) -> Vec<PathBuf> {
    let mut paths = vec![config.state_dir.clone()];
    paths.extend(config.tls.key_file.iter().cloned());
    paths.extend(config.tls.cert_file.iter().cloned());
    paths
}

/// Stops (SIGTERM, SIGKILL after the grace period) and removes every container the
/// agent manages, app containers first, pod infra containers last.
pub async fn remove_containers(runtime: &dyn ContainerRuntime, report: &mut WipeReport) {
    let mut containers = match runtime.list_managed().await {
        Ok(list) => list,
        Err(e) => {
            report
                .failures
                .push(format!("cannot list the managed containers: {e}"));
            return;
        }
    };
    containers.sort_by_key(|c| {
        c.identity.container_name == crate::container_labels::SANDBOX_CONTAINER_NAME
    });
    let stops = containers.iter().map(|c| async move {
        if matches!(c.state, RunState::Running { .. } | RunState::Created) {
            let grace = Duration::from_secs(c.identity.grace_period_seconds).min(MAX_STOP_GRACE);
            runtime.stop(&c.id, grace).await.err()
        } else {
            None
        }
    });
    for (c, failed) in containers
        .iter()
        .zip(futures::future::join_all(stops).await)
    {
        if let Some(e) = failed {
            report.failures.push(format!(
                "cannot stop container {} of pod {}/{}: {e}",
                c.identity.container_name, c.identity.pod_namespace, c.identity.pod_name
            ));
        }
    }
    for c in &containers {
        match runtime.remove(&c.id).await {
            Ok(()) => report.containers_removed += 1,
            Err(e) => report.failures.push(format!(
                "cannot remove container {} of pod {}/{}: {e}",
                c.identity.container_name, c.identity.pod_namespace, c.identity.pod_name
            )),
        }
    }
}

/// Deletes `paths` (directories recursively); a path already gone is fine.
pub fn remove_paths(paths: &[PathBuf], report: &mut WipeReport) {
    for path in paths {
        match remove_path(path) {
            Ok(true) => report.paths_removed.push(path.clone()),
            Ok(false) => {}
            Err(e) => report
                .failures
                .push(format!("cannot delete {}: {e}", path.display())),
        }
    }
}

fn remove_path(path: &Path) -> std::io::Result<bool> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
