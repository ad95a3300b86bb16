//! The pre-pull state machine, pure (times are Unix millis): one entry per image of the
//! current set, in the set's order, each with its phase, bytes, message and since, the
//! runtime's id for it once present, and the back-off of its failed pulls.
//!
//! - A new set replaces the old one; images both name keep their entry (phase, id,
//!   back-off); new images start `pending`, not yet looked up.
//! - [`PrepullPlan::next`]: first every image not looked up since it entered the set (or
//!   since a recheck missed it) is inspected (cheap: present images become `present`
//!   without a pull); then the first image in set order that is `pending`, or `failed`
//!   with its back-off over, is pulled, with the set's credential for its registry.
//!   One action at a time. While pods pull images ([`PrepullPlan::hold_pulls`]) no new
//!   pre-pull starts (one under way goes on): a rollout's own pulls get the link.
//! - A failed pull is `failed` with the runtime's message and is tried again after the
//!   back-off (the kubelet's: `backoff_initial` doubling to `backoff_max`), or at once
//!   when a new set brings another credential for its registry.
//! - [`PrepullPlan::listed`]: a periodic image listing; a present image whose id is gone
//!   (removed behind the agent's back) is looked up again, and pulled if missing.
//! - [`PrepullPlan::take_status`]: a status is due at once after a phase change or a new
//!   set, and for bytes alone at most every [`PROGRESS_INTERVAL_MS`].

use std::collections::BTreeSet;

use edge_protocol::{
    ImagePrepullSet, ImagePrepullStatus, PrepullImageStatus, PrepullPhase, RegistryCredential,
    UnixMillis,
};

use crate::backoff::Backoff;
use crate::config::LifecycleTimings;
use crate::image_reference::credential_for;
use crate::pull_progress::PullProgress;

/// Byte progress alone is reported at most this often.
pub const PROGRESS_INTERVAL_MS: u64 = 2_000;
/// A failure message is cut to this many bytes (a status names up to 64 images and must
/// stay a small MQTT message).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// What the worker should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the runtime for the id of this image (`None`: not on the device).
    Inspect(String),
    /// Pull this image, with this credential.
    Pull {
        image: String,
        credential: Option<RegistryCredential>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Busy {
    Inspecting(String),
    Pulling(String),
}

#[derive(Debug, Clone)]
struct Entry {
    status: PrepullImageStatus,
    /// The runtime's image id, once present.
    id: Option<String>,
    /// Looked up since it entered the set or since the last recheck missed it.
    checked: bool,
    backoff: Backoff,
    /// A failed pull is tried again from then.
    retry_at: Option<UnixMillis>,
}

impl Entry {
    fn new(image: String, now: UnixMillis) -> Self {
        Self {
            status: PrepullImageStatus {
                image,
                phase: PrepullPhase::Pending,
                since: now,
                ..Default::default()
            },
            id: None,
            checked: false,
            backoff: Backoff::default(),
            retry_at: None,
        }
    }
}

/// The device's pre-pull: the current set and where each of its images is.
#[derive(Debug, Clone)]
pub struct PrepullPlan {
    timings: LifecycleTimings,
    /// No set received yet (nothing to report).
    has_set: bool,
    revision: String,
    credentials: Vec<RegistryCredential>,
    entries: Vec<Entry>,
    busy: Option<Busy>,
    /// Pods are pulling images: no new pull starts.
    hold: bool,
    phase_dirty: bool,
    progress_dirty: bool,
    last_published: Option<UnixMillis>,
}

impl PrepullPlan {
    /// No set yet; failed pulls back off as `timings` say.
    pub fn new(timings: LifecycleTimings) -> Self {
        Self {
            timings,
            has_set: false,
            revision: String::new(),
            credentials: Vec::new(),
            entries: Vec::new(),
            busy: None,
            hold: false,
            phase_dirty: false,
            progress_dirty: false,
            last_published: None,
        }
    }

    /// Takes a new set (validated). Returns true when the action under way is about an
    /// image the new set no longer names: the worker drops it (a pull is cancelled).
    pub fn set(&mut self, set: ImagePrepullSet, now: UnixMillis) -> bool {
        let mut old = std::mem::take(&mut self.entries);
        let old_credentials = std::mem::take(&mut self.credentials);
        let new_credentials = &set.registry_credentials;
        self.entries = set
            .images
            .into_iter()
            .map(|image| {
                let Some(i) = old.iter().position(|e| e.status.image == image) else {
                    return Entry::new(image, now);
                };
                let mut entry = old.swap_remove(i);
                // a failed pull with another credential now: tried again at once
                if entry.status.phase == PrepullPhase::Failed
                    && credential_for(&image, &old_credentials)
                        != credential_for(&image, new_credentials)
                {
                    entry.retry_at = Some(now);
                }
                entry
            })
            .collect();
        self.revision = set.revision;
        self.credentials = set.registry_credentials;
        self.has_set = true;
        self.phase_dirty = true;
        let cancel = match &self.busy {
            Some(Busy::Inspecting(image) | Busy::Pulling(image)) => self.entry(image).is_none(),
            None => false,
        };
        if cancel {
            self.busy = None;
        }
        cancel
    }

    fn entry(&self, image: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.status.image == image)
    }

    fn entry_mut(&mut self, image: &str) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.status.image == image)
    }

    /// The image being pulled.
    pub fn pulling(&self) -> Option<&str> {
        match &self.busy {
            Some(Busy::Pulling(image)) => Some(image),
            _ => None,
        }
    }

    /// Whether pods are pulling images now: while they are, no pre-pull starts.
    pub fn hold_pulls(&mut self, hold: bool) {
        self.hold = hold;
    }

    /// The next action, when none is under way: an inspect of an image not looked up
    /// yet, else (unless pods are pulling) a pull of the first image (set order) that
    /// is pending or whose failed pull's back-off is over.
    pub fn next(&mut self, now: UnixMillis) -> Option<Action> {
        if self.busy.is_some() {
            return None;
        }
        if let Some(e) = self.entries.iter().find(|e| !e.checked) {
            let image = e.status.image.clone();
            self.busy = Some(Busy::Inspecting(image.clone()));
            return Some(Action::Inspect(image));
        }
        if self.hold {
            return None;
        }
        let due = |e: &Entry| match e.status.phase {
            PrepullPhase::Pending => true,
            PrepullPhase::Failed => e.retry_at.is_none_or(|t| now >= t),
            _ => false,
        };
        let credentials = &self.credentials;
        let entry = self.entries.iter_mut().find(|e| due(e))?;
        let image = entry.status.image.clone();
        let credential = credential_for(&image, credentials).cloned();
        entry.status = PrepullImageStatus {
            image: image.clone(),
            phase: PrepullPhase::Pulling,
            since: now,
            ..Default::default()
        };
        entry.retry_at = None;
        self.phase_dirty = true;
        self.busy = Some(Busy::Pulling(image.clone()));
        Some(Action::Pull { image, credential })
    }

    /// The end of an inspect: `Ok(Some(id))` the image is there, `Ok(None)` it is not,
    /// `Err` the runtime could not tell (a pull will).
    pub fn inspected(
        &mut self,
        image: &str,
        result: Result<Option<String>, String>,
        now: UnixMillis,
    ) {
        if self.busy != Some(Busy::Inspecting(image.to_owned())) {
            return;
        }
        self.busy = None;
        let Some(entry) = self.entry_mut(image) else {
            return;
        };
        entry.checked = true;
        let changed = match result {
            Ok(Some(id)) => {
                entry.id = Some(id);
                entry.backoff.reset();
                entry.retry_at = None;
                set_phase(entry, PrepullPhase::Present, String::new(), now)
            }
            Ok(None) => {
                entry.id = None;
                match entry.status.phase {
                    // gone: pulled again
                    PrepullPhase::Present => {
                        set_phase(entry, PrepullPhase::Pending, String::new(), now)
                    }
                    _ => false,
                }
            }
            Err(_) => false,
        };
        self.phase_dirty |= changed;
    }

    /// Bytes of the pull under way.
    pub fn progress(&mut self, image: &str, progress: PullProgress) {
        if self.pulling() != Some(image) {
            return;
        }
        let Some(entry) = self.entry_mut(image) else {
            return;
        };
        if (entry.status.bytes_done, entry.status.bytes_total)
            != (progress.bytes_done, progress.bytes_total)
        {
            entry.status.bytes_done = progress.bytes_done;
            entry.status.bytes_total = progress.bytes_total;
            self.progress_dirty = true;
        }
    }

    /// The end of a pull: `Ok(id)` (the id the runtime now has for it, if it tells), or
    /// the runtime's message.
    pub fn pulled(&mut self, image: &str, result: Result<Option<String>, String>, now: UnixMillis) {
        if self.pulling() != Some(image) {
            return;
        }
        self.busy = None;
        let timings = self.timings;
        let Some(entry) = self.entry_mut(image) else {
            return;
        };
        entry.checked = true;
        match result {
            Ok(id) => {
                entry.id = id;
                entry.backoff.reset();
                entry.retry_at = None;
                entry.status.bytes_done = entry.status.bytes_total;
                set_phase(entry, PrepullPhase::Present, String::new(), now);
            }
            Err(message) => {
                entry.id = None;
                entry.backoff.advance(&timings);
                entry.retry_at = Some(entry.backoff.retry_at(now));
                entry.status.bytes_done = 0;
                entry.status.bytes_total = 0;
                set_phase(entry, PrepullPhase::Failed, cut(message), now);
            }
        }
        self.phase_dirty = true;
    }

    /// A listing of the runtime's image ids: present images whose id is not among them
    /// (or whose id is not known) are looked up again.
    pub fn listed(&mut self, ids: &BTreeSet<String>) {
        let busy = self.busy.clone();
        for e in &mut self.entries {
            let mine = matches!(&busy, Some(Busy::Inspecting(i) | Busy::Pulling(i)) if *i == e.status.image);
            if e.status.phase == PrepullPhase::Present
                && !mine
                && e.id.as_ref().is_none_or(|id| !ids.contains(id))
            {
                e.checked = false;
            }
        }
    }

    /// When the next failed pull may be tried again.
    pub fn retry_in(&self, image: &str, now: UnixMillis) -> Option<u64> {
        self.entry(image)?.retry_at.map(|t| t.saturating_sub(now))
    }

    /// The status to publish now, if one is due: after a phase change or a new set at
    /// once; for bytes alone at most every [`PROGRESS_INTERVAL_MS`].
    pub fn take_status(&mut self, now: UnixMillis) -> Option<ImagePrepullStatus> {
        self.take_due(now).map(|(status, _)| status)
    }

    /// [`PrepullPlan::take_status`], and whether it is about bytes only (a newer one
    /// may take its place while it waits to be sent).
    pub fn take_due(&mut self, now: UnixMillis) -> Option<(ImagePrepullStatus, bool)> {
        let progress_due = self.progress_dirty
            && self
                .last_published
                .is_none_or(|t| now >= t.saturating_add(PROGRESS_INTERVAL_MS));
        if !self.has_set || !(self.phase_dirty || progress_due) {
            return None;
        }
        let progress_only = !self.phase_dirty;
        self.phase_dirty = false;
        self.progress_dirty = false;
        self.last_published = Some(now);
        self.status().map(|s| (s, progress_only))
    }

    /// The status now (`None` before the first set).
    pub fn status(&self) -> Option<ImagePrepullStatus> {
        self.has_set.then(|| ImagePrepullStatus {
            revision: self.revision.clone(),
            images: self.entries.iter().map(|e| e.status.clone()).collect(),
        })
    }

    /// The ids of the set's images on the device: kept from image garbage collection.
    pub fn pinned_ids(&self) -> BTreeSet<String> {
        self.entries.iter().filter_map(|e| e.id.clone()).collect()
    }
}

/// `message` cut to [`MAX_MESSAGE_BYTES`] at a character boundary, marked with `…`.
fn cut(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push('…');
    message
}

/// Moves an entry to `phase` (since `now`) with `message`; whether the phase changed.
fn set_phase(entry: &mut Entry, phase: PrepullPhase, message: String, now: UnixMillis) -> bool {
    let changed = entry.status.phase != phase || entry.status.message != message;
    if entry.status.phase != phase {
        entry.status.since = now;
    }
    entry.status.phase = phase;
    entry.status.message = message;
    changed
}
