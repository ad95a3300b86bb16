//! The termination message file of each container instance, as the kubelet keeps it:
//! `<state>/pods/<uid>/termination/<container>/<restart count>`, created empty and
//! world-writable before the container is created, bound at its
//! `terminationMessagePath`, read (its last 4096 bytes) after it exits; with
//! `FallbackToLogsOnError` an empty file after a failed exit gives the log's tail.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::container_runtime::{ContainerRuntime, LogReadOptions};
use crate::pod_volumes::pod_dir;

/// The kubelet's `MaxContainerTerminationMessageLength`.
pub const MAX_MESSAGE_BYTES: u64 = 4096;
/// The kubelet's `MaxContainerTerminationMessageLogLines` and `...LogLength`.
pub const FALLBACK_LOG_LINES: u64 = 80;
pub const FALLBACK_LOG_BYTES: usize = 2048;

fn safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where instance `restart_count` of container `name` writes its message on the host.
pub fn host_path(state_dir: &Path, uid: &str, name: &str, restart_count: u32) -> PathBuf {
    pod_dir(state_dir, uid)
        .join("termination")
        .join(safe(name))
        .join(restart_count.to_string())
}

/// Creates the empty, world-writable file of a new instance (the kubelet's mode 0666)
/// and removes those older than the previous instance.
pub fn prepare(
    state_dir: &Path,
    uid: &str,
    name: &str,
    restart_count: u32,
) -> std::io::Result<PathBuf> {
    let path = host_path(state_dir, uid, name, restart_count);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        for old in 0..restart_count.saturating_sub(1) {
            let _ = std::fs::remove_file(dir.join(old.to_string()));
        }
    }
    std::fs::File::create(&path)?;
    set_world_writable(&path)?;
    Ok(path)
}

#[cfg(unix)]
fn set_world_writable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
}

#[cfg(not(unix))]
fn set_world_writable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// The last [`MAX_MESSAGE_BYTES`] of the file (`None`: there is no file, e.g. a
/// container created before the agent bound one).
pub fn read(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(MAX_MESSAGE_BYTES)))
        .ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_MESSAGE_BYTES).read_to_end(&mut bytes).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The kubelet's fallback: the first [`FALLBACK_LOG_BYTES`] of the last
/// [`FALLBACK_LOG_LINES`] lines of the container's log.
pub async fn log_tail(runtime: &dyn ContainerRuntime, container_id: &str) -> Option<String> {
    let mut stream = runtime.logs(
        container_id,
        LogReadOptions {
            follow: false,
            tail_lines: Some(FALLBACK_LOG_LINES),
            since: None,
            timestamps: false,
        },
    );
    let mut bytes = Vec::new();
    while bytes.len() < FALLBACK_LOG_BYTES {
        match stream.next().await {
            Some(Ok(chunk)) => bytes.extend_from_slice(&chunk),
            Some(Err(e)) => {
                tracing::debug!(error = %e, container = %container_id, "cannot read the log for a termination message");
                break;
            }
            None => break,
        }
    }
    bytes.truncate(FALLBACK_LOG_BYTES);
    Some(String::from_utf8_lossy(&bytes).into_owned()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
