//! Image pre-pull (protocol 1.5): the gateway tells a device which images to hold ahead
//! of a rollout, the device pulls them one at a time at its link's pace and keeps them
//! from image garbage collection, and reports how far it got.
//!
//! ```text
//! gateway                                   device
//!   down/prepull  imagePrepullSet    ──▶  revision, images, registry credentials
//!                                         (the whole set: it replaces the previous one)
//!   up/prepull    imagePrepullStatus ◀──  revision, per image: pending … pulling … present
//!                                         (or failed, with the runtime's message)
//!   up/hello      nodeReport         ◀──  imagePrepull = the last status (after a restart)
//! ```
//!
//! The set is desired state, not a command: the device keeps it on disk, pulls what is
//! missing after a reboot or an outage, retries failed pulls with back-off, and protects
//! its images from garbage collection until a set without them arrives.

use serde::{Deserialize, Serialize};

use crate::desired_set::RegistryCredential;
use crate::node_report::UnixMillis;

/// Most images one set names (the sum of every pre-pull selecting the device).
pub const MAX_PREPULL_IMAGES: usize = 64;

/// `imagePrepullSet` on `down/prepull`: the images the device should hold. An empty set
/// ends every pre-pull (the images stay until garbage collection wants the space).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ImagePrepullSet {
    /// Names this content; the device echoes it in its status, so the gateway knows which
    /// set a status is about.
    pub revision: String,
    /// Image references as a pod spec writes them, each once.
    pub images: Vec<String>,
    /// Logins for private registries, matched to images as for a desired set.
    pub registry_credentials: Vec<RegistryCredential>,
}

/// Where a device is with one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum PrepullPhase {
    /// Not started yet (the device pulls one image at a time).
    #[default]
    Pending,
    /// Being pulled (`bytesDone` of `bytesTotal` when the runtime tells).
    Pulling,
    /// On the device.
    Present,
    /// The last pull failed (`message` says why); the device tries again later.
    Failed,
    /// A phase of a newer protocol.
    #[serde(other)]
    Unknown,
}

/// One image of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct PrepullImageStatus {
    pub image: String,
    pub phase: PrepullPhase,
    /// Bytes downloaded so far and in all (0 when the runtime does not tell).
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Why, for `failed`; empty otherwise.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the image entered this phase.
    pub since: UnixMillis,
}

/// `imagePrepullStatus` on `up/prepull`, and the node report's `imagePrepull`: the
/// device's progress on the set of `revision`, one entry per image of that set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub struct ImagePrepullStatus {
    pub revision: String,
    pub images: Vec<PrepullImageStatus>,
}

impl ImagePrepullStatus {
    /// Every image of the set is on the device.
    pub fn complete(&self) -> bool {
        self.images.iter().all(|i| i.phase == PrepullPhase::Present)
    }
}

#[cfg(test)]
mod tests;
