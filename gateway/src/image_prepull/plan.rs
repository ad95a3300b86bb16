//! The pre-pull controller's decisions (pure): from the declared pre-pulls, the device
//! Nodes and what each device last reported, the image set every device of this replica
//! should hold, each Node's progress annotation and each pre-pull's status.
//!
//! A device's set is the union of the images of every pre-pull selecting it (in the
//! pre-pulls' name order, each image once, at most [`MAX_PREPULL_IMAGES`]), with the
//! logins of their pull Secrets. A device selected by none gets the empty set, which
//! ends its pre-pulls; its `revision` is empty, so a device that never had one is not
//! sent anything.

use std::collections::BTreeMap;

use edge_protocol::{
    ImagePrepullSet, ImagePrepullStatus, MAX_PREPULL_IMAGES, PrepullPhase, RegistryCredential,
};
use serde::{Deserialize, Serialize};

use super::spec::PrepullSpec;

/// Failures a pre-pull's status names at most.
pub const MAX_FAILURES_LISTED: usize = 10;

/// One declared pre-pull, its Secrets resolved.
#[derive(Debug, Clone)]
pub struct Prepull {
    /// The ConfigMap's name.
    pub name: String,
    /// `Err` says why the ConfigMap is not valid.
    pub spec: Result<PrepullSpec, String>,
    /// The logins of its pull Secrets; `Err` says which Secret is missing or unusable.
    pub credentials: Result<Vec<RegistryCredential>, String>,
}

/// What the controller knows of one device Node.
#[derive(Debug, Clone, Default)]
pub struct DeviceView {
    pub node: String,
    pub labels: BTreeMap<String, String>,
    /// Served by this replica.
    pub ours: bool,
    /// Its agent declares `capabilities.imagePrepull`.
    pub capable: bool,
    /// Its last pre-pull status (from a status message or its last hello).
    pub status: Option<ImagePrepullStatus>,
}

/// A Node's pre-pull progress, in the annotation `edge-kube.io/image-prepull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodePrepullPhase {
    /// Images not pulled yet (offline, or waiting for its turn).
    Pending,
    Pulling,
    /// Every image of its set is on the device.
    Complete,
    /// A pull failed; the device tries again with back-off.
    Failed,
    /// Its agent predates pre-pull (protocol 1.5).
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePrepull {
    pub phase: NodePrepullPhase,
    pub images: u32,
    pub present: u32,
    /// Downloaded so far of the images being pulled (when the runtime tells).
    #[serde(skip_serializing_if = "is_zero", default)]
    pub bytes_done: u64,
    #[serde(skip_serializing_if = "is_zero", default)]
    pub bytes_total: u64,
    /// The first failure (`image: why`), or why the device is unsupported.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub message: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl NodePrepull {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A pre-pull's phase: Complete once every selected Node holds its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrepullStatusPhase {
    Progressing,
    Complete,
    Invalid,
}

/// A pre-pull's status, in its ConfigMap's annotation `edge-kube.io/prepull-status`:
/// how many of the selected Nodes (of this replica) hold all its images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepullStatus {
    pub phase: PrepullStatusPhase,
    pub images: u32,
    /// Selected device Nodes.
    pub nodes: u32,
    pub complete: u32,
    pub pulling: u32,
    pub failed: u32,
    /// Selected Nodes not started yet (offline, or not reported since).
    pub waiting: u32,
    /// Selected Nodes whose agent predates pre-pull.
    pub unsupported: u32,
    /// `node: image: why`, at most [`MAX_FAILURES_LISTED`].
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub failures: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub message: String,
}

/// Everything decided in one pass.
#[derive(Debug, Clone, Default)]
pub struct Decisions {
    /// The set each device of this replica with a capable agent should hold.
    pub sets: BTreeMap<String, ImagePrepullSet>,
    /// Each Node's annotation (`None`: none, the Node is in no pre-pull).
    pub nodes: BTreeMap<String, Option<NodePrepull>>,
    /// Each pre-pull's status, by ConfigMap name.
    pub statuses: BTreeMap<String, PrepullStatus>,
}

/// The revision of a set: empty for no images, else a digest of its images and logins
/// (a changed Secret is a new revision, so the device gets the new login).
pub fn revision(images: &[String], credentials: &[RegistryCredential]) -> String {
    if images.is_empty() {
        return String::new();
    }
    let text = serde_json::to_vec(&(images, credentials)).unwrap_or_default();
    let digest = ring::digest::digest(&ring::digest::SHA256, &text);
    edge_protocol::ota_signature::hex(&digest.as_ref()[..8])
}

/// Where a device is with `image`, by its last status (any revision: an image's phase
/// does not depend on the set it came in).
fn phase_of<'a>(
    status: Option<&'a ImagePrepullStatus>,
    image: &str,
) -> Option<&'a edge_protocol::PrepullImageStatus> {
    status?.images.iter().find(|i| i.image == image)
}

const UNSUPPORTED: &str = "its agent predates image pre-pull (protocol 1.5): upgrade the agent";

pub fn plan(prepulls: &[Prepull], devices: &[DeviceView]) -> Decisions {
    let mut decisions = Decisions::default();
    let valid: Vec<(&Prepull, &PrepullSpec, &Vec<RegistryCredential>)> = prepulls
        .iter()
        .filter_map(|p| match (&p.spec, &p.credentials) {
            (Ok(spec), Ok(creds)) => Some((p, spec, creds)),
            _ => None,
        })
        .collect();
    for device in devices.iter().filter(|d| d.ours) {
        let selecting: Vec<_> = valid
            .iter()
            .filter(|(_, spec, _)| spec.selector.matches(&device.labels))
            .collect();
        if !device.capable {
            let node = (!selecting.is_empty()).then(|| NodePrepull {
                phase: NodePrepullPhase::Unsupported,
                images: 0,
                present: 0,
                bytes_done: 0,
                bytes_total: 0,
                message: UNSUPPORTED.to_owned(),
            });
            decisions.nodes.insert(device.node.clone(), node);
            continue;
        }
        let mut images: Vec<String> = Vec::new();
        let mut credentials: Vec<RegistryCredential> = Vec::new();
        let mut left_out = 0;
        for (_, spec, creds) in &selecting {
            for image in &spec.images {
                if images.contains(image) {
                    continue;
                }
                if images.len() == MAX_PREPULL_IMAGES {
                    left_out += 1;
                    continue;
                }
                images.push(image.clone());
            }
            for c in creds.iter() {
                if !credentials.contains(c) {
                    credentials.push(c.clone());
                }
            }
        }
        let node = (!images.is_empty()).then(|| {
            let mut node = node_progress(device.status.as_ref(), &images);
            if left_out > 0 && node.message.is_empty() {
                node.message = format!(
                    "{left_out} image(s) left out: more than {MAX_PREPULL_IMAGES} selected"
                );
            }
            node
        });
        decisions.nodes.insert(device.node.clone(), node);
        decisions.sets.insert(
            device.node.clone(),
            ImagePrepullSet {
                revision: revision(&images, &credentials),
                images,
                registry_credentials: credentials,
            },
        );
    }
    for prepull in prepulls {
        decisions
            .statuses
            .insert(prepull.name.clone(), prepull_status(prepull, devices));
    }
    decisions
}

fn node_progress(status: Option<&ImagePrepullStatus>, images: &[String]) -> NodePrepull {
    let mut node = NodePrepull {
        phase: NodePrepullPhase::Pending,
        images: images.len() as u32,
        present: 0,
        bytes_done: 0,
        bytes_total: 0,
        message: String::new(),
    };
    let (mut pulling, mut failed) = (false, false);
    for image in images {
        match phase_of(status, image) {
            Some(s) if s.phase == PrepullPhase::Present => node.present += 1,
            Some(s) if s.phase == PrepullPhase::Pulling => {
                pulling = true;
                node.bytes_done += s.bytes_done;
                node.bytes_total += s.bytes_total;
            }
            Some(s) if s.phase == PrepullPhase::Failed => {
                if !failed {
                    node.message = format!("{image}: {}", s.message);
                }
                failed = true;
            }
            _ => {}
        }
    }
    node.phase = if node.present == node.images {
        NodePrepullPhase::Complete
    } else if failed {
        NodePrepullPhase::Failed
    } else if pulling {
        NodePrepullPhase::Pulling
    } else {
        NodePrepullPhase::Pending
    };
    node
}

fn prepull_status(prepull: &Prepull, devices: &[DeviceView]) -> PrepullStatus {
    let mut status = PrepullStatus {
        phase: PrepullStatusPhase::Progressing,
        images: 0,
        nodes: 0,
        complete: 0,
        pulling: 0,
        failed: 0,
        waiting: 0,
        unsupported: 0,
        failures: Vec::new(),
        message: String::new(),
    };
    let spec = match (&prepull.spec, &prepull.credentials) {
        (Err(why), _) | (_, Err(why)) => {
            status.phase = PrepullStatusPhase::Invalid;
            status.message = why.clone();
            return status;
        }
        (Ok(spec), Ok(_)) => spec,
    };
    status.images = spec.images.len() as u32;
    for device in devices
        .iter()
        .filter(|d| d.ours && spec.selector.matches(&d.labels))
    {
        status.nodes += 1;
        if !device.capable {
            status.unsupported += 1;
            continue;
        }
        let node = node_progress(device.status.as_ref(), &spec.images);
        match node.phase {
            NodePrepullPhase::Complete => status.complete += 1,
            NodePrepullPhase::Failed => {
                status.failed += 1;
                if status.failures.len() < MAX_FAILURES_LISTED {
                    status
                        .failures
                        .push(format!("{}: {}", device.node, node.message));
                }
            }
            NodePrepullPhase::Pulling => status.pulling += 1,
            NodePrepullPhase::Pending | NodePrepullPhase::Unsupported => status.waiting += 1,
        }
    }
    if status.complete + status.unsupported == status.nodes {
        status.phase = PrepullStatusPhase::Complete;
    }
    if status.nodes == 0 {
        status.message = format!(
            "no device Node of this gateway matches the nodeSelector {:?}",
            spec.selector.as_str()
        );
    }
    if status.unsupported > 0 {
        status.message = format!("{} Node(s) skipped: {UNSUPPORTED}", status.unsupported);
    }
    status
}

#[cfg(test)]
mod tests;
