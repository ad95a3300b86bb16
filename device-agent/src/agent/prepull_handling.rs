//! Image pre-pull in the agent loop: a set from `down/prepull` is checked
//! ([`crate::image_prepull::validate`]; a bad one is refused with a log line and the
//! set in force stays), saved in the local store (it is desired state: after a restart
//! the worker resumes it) and handed to the worker ([`crate::image_prepull::worker`]).
//! The worker's statuses go out on `up/prepull` (QoS 1) and into the node report's
//! `imagePrepull`; the latest goes out again after every connect and on a resync
//! request. The ids of the set's
//! images go to image garbage collection, which keeps them.

use std::collections::HashSet;

use edge_protocol::{ImagePrepullSet, ImagePrepullStatus, PrepullPhase};
use tokio::sync::{mpsc, watch};

use super::AgentLoop;
use crate::image_prepull::validate;
use crate::image_prepull::worker::PrepullUpdate;
use crate::pod_lifecycle::{ContainerKey, Input, Outcome};
use crate::systemd_notify;

/// The agent loop's side of the pre-pull.
pub(super) struct Prepull {
    /// To the worker: sets accepted.
    sets: mpsc::UnboundedSender<ImagePrepullSet>,
    /// The revision in force (`None`: no set yet).
    revision: Option<String>,
    /// The latest status (the node report's, and sent after each connect).
    pub(super) status: Option<ImagePrepullStatus>,
    /// Accepted but not saved yet: saved again every sync interval.
    unsaved: Option<ImagePrepullSet>,
    /// Pods' image pulls under way (no new pre-pull starts meanwhile).
    pod_pulls: HashSet<ContainerKey>,
    pods_pulling: watch::Sender<bool>,
}

impl Prepull {
    /// `stored`: the set the worker resumes from the local store.
    pub(super) fn new(
        sets: mpsc::UnboundedSender<ImagePrepullSet>,
        stored: Option<&ImagePrepullSet>,
        pods_pulling: watch::Sender<bool>,
    ) -> Self {
        Self {
            sets,
            revision: stored.map(|s| s.revision.clone()),
            status: None,
            unsaved: None,
            pod_pulls: HashSet::new(),
            pods_pulling,
        }
    }

    /// Follows pods' image pulls (an effect's outcome always comes: started, then ready
    /// or failed) and tells the worker whether any runs.
    pub(super) fn observe(&mut self, input: &Input) {
        match input {
            Input::Done(Outcome::PullStarted { key }) => {
                self.pod_pulls.insert(key.clone());
            }
            Input::Done(Outcome::ImageReady { key, .. } | Outcome::ImageFailed { key, .. }) => {
                self.pod_pulls.remove(key);
            }
            _ => return,
        }
        let pulling = !self.pod_pulls.is_empty();
        self.pods_pulling.send_if_modified(|p| {
            let changed = *p != pulling;
            *p = pulling;
            changed
        });
    }
}

impl AgentLoop {
    pub(super) fn on_prepull_set(&mut self, set: ImagePrepullSet) {
        if let Err(why) = validate(&set) {
            tracing::warn!(revision = %set.revision, error = %why,
                kept = ?self.prepull.revision,
                "refused an image pre-pull set; the set in force stays (the gateway must send a valid set)");
            return;
        }
        tracing::info!(revision = %set.revision, images = set.images.len(),
            "image pre-pull set received");
        self.prepull.revision = Some(set.revision.clone());
        self.prepull.unsaved = Some(set.clone());
        self.retry_unsaved_prepull();
        let _ = self.prepull.sets.send(set);
    }

    /// Saves the accepted set not saved yet. It is pulled meanwhile; only a restart
    /// before it is saved falls back to the previous set.
    pub(super) fn retry_unsaved_prepull(&mut self) {
        let Some(set) = &self.prepull.unsaved else {
            return;
        };
        match self.store.save_prepull_set(set) {
            Ok(()) => self.prepull.unsaved = None,
            Err(e) => {
                tracing::error!(error = %e, revision = %set.revision,
                    "cannot save the image pre-pull set; pulling it anyway, saving again every \
                     sync interval (a restart meanwhile resumes the previous set; free space \
                     or fix permissions in the state directory)");
                systemd_notify::status("cannot save the image pre-pull set; see the log");
            }
        }
    }

    pub(super) fn on_prepull_update(&mut self, update: PrepullUpdate) {
        match update {
            PrepullUpdate::Status { status, progress } => {
                let pulled = status
                    .images
                    .iter()
                    .filter(|i| i.phase == PrepullPhase::Present)
                    .count();
                tracing::debug!(revision = %status.revision, present = pulled,
                    images = status.images.len(), "image pre-pull status");
                self.session
                    .publish_prepull(status.clone().into(), progress);
                let new_revision =
                    self.prepull.status.as_ref().map(|s| &s.revision) != Some(&status.revision);
                let latest = Some(status);
                self.report_tx
                    .send_if_modified(|r| replace(&mut r.image_prepull, &latest));
                self.prepull.status = latest;
                if new_revision {
                    // the node report names the set it is about (after a restart too)
                    self.session.node_report_changed();
                }
            }
            PrepullUpdate::Pinned(ids) => {
                if let Some(monitor) = self.pressure.as_mut() {
                    tracing::debug!(images = ids.len(), ids = ?ids,
                        "image GC keeps the pre-pull set's images");
                    monitor.pin_images(ids);
                }
            }
        }
    }

    /// After a connect (a status sent while offline is lost) and on the gateway's resync
    /// request: the latest status again.
    pub(super) fn republish_prepull(&mut self) {
        if let Some(status) = &self.prepull.status {
            self.session.publish_prepull(status.clone().into(), false);
        }
    }
}

/// The node report's status replaced (published again only for a new revision:
/// `up/prepull` carries the progress; the report sent on connect has the latest).
fn replace(slot: &mut Option<ImagePrepullStatus>, latest: &Option<ImagePrepullStatus>) -> bool {
    if slot == latest {
        return false;
    }
    slot.clone_from(latest);
    true
}

#[cfg(test)]
mod tests;
