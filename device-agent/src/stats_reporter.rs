//! The thin task that samples resource usage every `stats_interval`: reads `/proc`, the
//! file systems and each running managed container's one-shot Engine API stats, builds
//! a [`NodeStats`] with [`crate::usage_sample`] and hands it to the agent loop, which
//! adds its counters and publishes it on `up/stats` (QoS 0).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{FilesystemUsage, NodeStats};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::container_runtime::{ContainerRuntime, RunState};
use crate::engine_api_get::{Endpoint, get_json};
use crate::usage_sample::{ContainerSample, RawNodeReadings, container_usage, node_stats};
use crate::wall_clock::now_millis;

/// Where the reporter reads from.
pub struct StatsSources {
    /// `/` on a real device (tests point it elsewhere).
    pub proc_root: PathBuf,
    /// The runtime's data directory (its images).
    pub image_dir: PathBuf,
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The Engine API, read directly for stats (Podman's values stay loose JSON).
    pub engine: Endpoint,
}

impl std::fmt::Debug for StatsSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsSources")
            .field("proc_root", &self.proc_root)
            .field("image_dir", &self.image_dir)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// Samples every `interval` until `stop`; each sample goes to `out` (a sample the loop
/// has not taken yet is replaced, never queued).
pub async fn run(
    sources: StatsSources,
    interval: Duration,
    out: mpsc::Sender<NodeStats>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let stats = sample(&sources).await;
        if let Err(mpsc::error::TrySendError::Closed(_)) = out.try_send(stats) {
            return;
        }
    }
}

/// One sample of the node and every running managed container.
pub async fn sample(sources: &StatsSources) -> NodeStats {
    let read = |name: &str| std::fs::read_to_string(sources.proc_root.join(name)).ok();
    let readings = RawNodeReadings {
        proc_stat: read("proc/stat"),
        meminfo: read("proc/meminfo"),
        net_dev: read("proc/net/dev"),
        root_filesystem: filesystem_usage(&sources.proc_root),
        image_filesystem: filesystem_usage(&sources.image_dir),
    };
    let mut containers = Vec::new();
    match sources.runtime.list_managed().await {
        Ok(list) => {
            for c in list {
                let RunState::Running { started_at } = c.state else {
                    continue;
                };
                // A pod's infra container is not one of its containers (the kubelet's
                // summary leaves the sandbox out too).
                if c.identity.is_sandbox() {
                    continue;
                }
                let path = format!("/containers/{}/stats?stream=false&one-shot=true", c.id);
                match get_json(&sources.engine, &path).await {
                    Ok((200, body)) => match container_usage(&body) {
                        Ok(usage) => containers.push(ContainerSample {
                            identity: c.identity,
                            started_at,
                            usage,
                        }),
                        Err(e) => {
                            tracing::debug!(id = %c.id, error = %e, "unusable container stats")
                        }
                    },
                    Ok((status, _)) => tracing::debug!(id = %c.id, status, "no container stats"),
                    Err(e) => tracing::debug!(id = %c.id, error = %e, "no container stats"),
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot list containers for stats"),
    }
    node_stats(now_millis(), &readings, containers)
}

/// Size, use and free space of the file system holding `path` (or its nearest existing
/// ancestor); `None` when it cannot be read.
pub fn filesystem_usage(path: &Path) -> Option<FilesystemUsage> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return None;
        }
    }
    let s = rustix::fs::statvfs(&p).ok()?;
    let block = s.f_frsize;
    Some(FilesystemUsage {
        capacity_bytes: s.f_blocks.saturating_mul(block),
        used_bytes: s.f_blocks.saturating_sub(s.f_bfree).saturating_mul(block),
        available_bytes: s.f_bavail.saturating_mul(block),
    })
}
