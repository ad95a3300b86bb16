//! The eviction manager's thin effects, run every `eviction_monitoring_interval`:
//! measures memory (`/proc/meminfo`), the node and image file systems (`statvfs`:
//! bytes and inodes) and PIDs (`/proc/loadavg`, `pid_max`); removes unused images
//! when the image filesystem is over the GC threshold; and hands the pure parts
//! ([`crate::node_pressure`], [`crate::image_gc`]) what they decide on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use edge_protocol::{NodeImage, NodePressureCondition, NodeStats, PodSpec, UnixMillis};

use crate::engine_api_get::Endpoint;
use crate::image_gc::ImageTracker;
use crate::node_pressure::{
    Crossed, EvictionCandidate, Level, Measurements, PressureConditions, Signal, choose_victim,
    qos_class,
};
use crate::resource_policy::ResourcePolicy;
use crate::runtime_images::{list_images, remove_image, used_image_ids};
use crate::usage_sample::node_memory;

/// Where the measurements come from.
#[derive(Debug, Clone)]
pub struct PressureSources {
    /// `/` on a device (tests point it elsewhere).
    pub proc_root: PathBuf,
    pub nodefs: PathBuf,
    pub imagefs: PathBuf,
}

/// Reads every figure; those that cannot be read are `None`.
pub fn measure(sources: &PressureSources) -> Measurements {
    let proc_file = |rel: &str| std::fs::read_to_string(sources.proc_root.join(rel)).ok();
    let memory = proc_file("proc/meminfo")
        .as_deref()
        .and_then(node_memory)
        .and_then(|m| {
            let available = m.memory_available_bytes?;
            Some(Level {
                available,
                capacity: available.saturating_add(m.memory_working_set_bytes),
            })
        });
    let (nodefs, nodefs_inodes) = filesystem(&sources.nodefs);
    let (imagefs, imagefs_inodes) = filesystem(&sources.imagefs);
    let pids = proc_file("proc/sys/kernel/pid_max")
        .and_then(|m| m.trim().parse::<u64>().ok())
        .zip(proc_file("proc/loadavg").and_then(|l| {
            // `0.00 0.01 0.05 1/123 4567`: running/total tasks
            l.split_whitespace()
                .nth(3)?
                .split_once('/')?
                .1
                .parse::<u64>()
                .ok()
        }))
        .map(|(max, used)| Level {
            available: max.saturating_sub(used),
            capacity: max,
        });
    Measurements {
        memory,
        nodefs,
        nodefs_inodes,
        imagefs,
        imagefs_inodes,
        pids,
    }
}

/// Bytes and inodes available on the file system holding `path` (or its nearest
/// existing ancestor).
fn filesystem(path: &Path) -> (Option<Level>, Option<Level>) {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return (None, None);
        }
    }
    let Ok(s) = rustix::fs::statvfs(&p) else {
        return (None, None);
    };
    let bytes = Level {
        available: s.f_bavail.saturating_mul(s.f_frsize),
        capacity: s.f_blocks.saturating_mul(s.f_frsize),
    };
    // file systems without inode accounting (some overlay and FUSE) report 0 files
    let inodes = (s.f_files > 0).then_some(Level {
        available: s.f_favail,
        capacity: s.f_files,
    });
    (Some(bytes), inodes)
}

/// What one pass decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PressurePass {
    /// The conditions or the image list changed: the node report must be sent again.
    pub report_changed: bool,
    /// The pod to evict and the kubelet's message.
    pub evict: Option<(String, String)>,
}

/// The eviction manager's state between passes.
#[derive(Debug)]
pub struct PressureMonitor {
    policy: ResourcePolicy,
    sources: PressureSources,
    endpoint: Endpoint,
    docker: Docker,
    conditions: PressureConditions,
    images: ImageTracker,
    reported_images: Vec<NodeImage>,
}

impl PressureMonitor {
    pub fn new(
        policy: ResourcePolicy,
        sources: PressureSources,
        endpoint: Endpoint,
        docker: Docker,
        now: UnixMillis,
    ) -> Self {
        Self {
            conditions: PressureConditions::new(policy.pressure_transition_period, now),
            policy,
            sources,
            endpoint,
            docker,
            images: ImageTracker::default(),
            reported_images: Vec::new(),
        }
    }

    pub fn conditions(&self) -> Vec<NodePressureCondition> {
        self.conditions.conditions()
    }

    pub fn images(&self) -> Vec<NodeImage> {
        self.reported_images.clone()
    }

    /// The image ids of the current pre-pull set: image GC never removes them.
    pub fn pin_images(&mut self, ids: std::collections::BTreeSet<String>) {
        self.images.pin(ids);
    }

    /// One pass: image GC when the image filesystem is too full, measure, update the
    /// conditions, and choose at most one pod to evict among `running` (the pods with a
    /// running container that are not evicted yet).
    pub async fn pass(
        &mut self,
        running: &[&PodSpec],
        stats: Option<&NodeStats>,
        now: UnixMillis,
    ) -> PressurePass {
        self.collect_images(now).await;
        let images = self.images.node_images();
        let mut pass = PressurePass {
            report_changed: images != self.reported_images,
            evict: None,
        };
        self.reported_images = images;
        let crossed = self.policy.eviction_hard.crossed(&measure(&self.sources));
        if self.conditions.observe(&crossed, now) {
            tracing::info!(conditions = ?self.conditions.conditions(), "node pressure changed");
            pass.report_changed = true;
        }
        if let Some(first) = crossed.first() {
            pass.evict = victim(first, running, stats).map(|uid| (uid, first.eviction_message()));
        }
        pass
    }

    /// Lists images and the containers' images; removes what the GC plan says.
    async fn collect_images(&mut self, now: UnixMillis) {
        let listed = match list_images(&self.endpoint).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list images");
                return;
            }
        };
        let used = match used_image_ids(&self.endpoint).await {
            Ok(u) => u,
            Err(e) => {
                // The node report still lists the images; only the GC needs to know
                // which are in use, and it waits for a listing that works.
                tracing::warn!(
                    error = %e,
                    "cannot list the containers to tell which images are in use: \
                     image garbage collection skipped (check the container runtime)"
                );
                self.images.observe_images_only(listed, now);
                return;
            }
        };
        self.images.observe(listed, used, now);
        let (fs, _) = filesystem(&self.sources.imagefs);
        let Some(fs) = fs else {
            return;
        };
        let plan = self
            .images
            .plan(fs.capacity, fs.available, self.policy.image_gc, now);
        if plan.remove.is_empty() {
            return;
        }
        tracing::info!(
            images = plan.remove.len(),
            bytes_to_free = plan.bytes_to_free,
            "image filesystem over the GC threshold: removing unused images"
        );
        for id in &plan.remove {
            if let Err(e) = remove_image(&self.docker, id).await {
                tracing::warn!(error = %e, "image GC");
            }
        }
    }
}

/// The pod the kubelet would evict for `crossed`.
fn victim(crossed: &Crossed, running: &[&PodSpec], stats: Option<&NodeStats>) -> Option<String> {
    let memory_usage: HashMap<&str, u64> = stats
        .map(|s| {
            s.pods
                .iter()
                .map(|p| {
                    let sum = p
                        .containers
                        .iter()
                        .map(|c| c.usage.memory_working_set_bytes)
                        .sum();
                    (p.pod_uid.as_str(), sum)
                })
                .collect()
        })
        .unwrap_or_default();
    let memory = crossed.signal == Signal::MemoryAvailable;
    let candidates: Vec<EvictionCandidate> = running
        .iter()
        .map(|spec| EvictionCandidate {
            uid: spec.uid.clone(),
            qos: qos_class(spec),
            usage: if memory {
                memory_usage.get(spec.uid.as_str()).copied()
            } else {
                None
            },
            request: if memory {
                spec.containers
                    .iter()
                    .filter_map(|c| {
                        c.resources
                            .memory_request_bytes
                            .or(c.resources.memory_limit_bytes)
                    })
                    .sum()
            } else {
                0
            },
        })
        .collect();
    choose_victim(&candidates).map(|c| c.uid.clone())
}
