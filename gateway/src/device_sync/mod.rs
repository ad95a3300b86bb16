//! Per-device desired-set synchronisation: a pure state machine.
//!
//! It holds what the device should run (the desired set and its generation), what the
//! device confirmed (acknowledged generation, pods it has reported), and decides when
//! to persist, publish and delete. The driver executes the effects in order:
//! [`SyncEffect::Persist`] is flushed before the [`SyncEffect::Publish`] that follows it.
//!
//! Rules:
//! - Nothing is published before the gateway's view of Kubernetes is complete
//!   ([`SyncInput::KubernetesSynced`]): a partial view would make the device purge pods.
//! - A desired set is published when it changed, the device is online, and that
//!   generation was not yet sent; an offline device gets it when it comes back.
//! - A restored device whose stored generation was acknowledged is not re-sent anything.
//! - A terminating pod that was never sent to the device is deleted at once; one that was
//!   sent (even if the device has not confirmed it yet: it may be running) is sent again
//!   with its grace period and deleted once the device reports it `removed`.
//! - A published set the device's heartbeats still do not show after
//!   [`UNANSWERED_HEARTBEATS`] of them is published again: a broker can acknowledge a
//!   set and still not deliver it (a cluster node failing over while the device
//!   re-subscribes), and nothing else would send it before the device reconnects.
//! - A pod that would make the set too large for one MQTT message is refused
//!   ([`SyncEffect::Refused`]) and the rest of the set keeps flowing.

mod set_size;

use std::collections::{BTreeMap, BTreeSet};

use edge_protocol::{DesiredSet, DeviceId, PodSpec};
use serde::{Deserialize, Serialize};

pub use set_size::{ADMISSION_LIMIT_BYTES, TERMINATION_HEADROOM_BYTES};
use set_size::{SetSize, pod_bytes};

/// The largest generation a device's acknowledgement may name (2^62: at one change a
/// millisecond, 146 million years); anything beyond is ignored, so a device cannot make
/// the gateway's generation wrap.
pub const MAX_GENERATION: u64 = 1 << 62;

/// What is stored per device (and flushed before anything is promised to the device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PersistedDevice {
    pub desired: DesiredSet,
    pub acked_generation: u64,
}

/// One reported pod, as far as synchronisation cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedPod {
    pub uid: String,
    pub removed: bool,
}

// A pod spec is moved in once per pod change; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInput {
    /// A pod bound to this device was added or changed (already translated).
    PodUpserted(PodSpec),
    /// A pod no longer exists in Kubernetes.
    PodRemoved {
        uid: String,
    },
    /// The gateway's list of Kubernetes pods is complete; `present` holds the uids of
    /// this device's pods that exist.
    KubernetesSynced {
        present: BTreeSet<String>,
    },
    Online,
    Offline,
    /// The device's heartbeat with the generation it applied.
    Heartbeat {
        observed_generation: u64,
    },
    /// A status report.
    StatusReport {
        observed_generation: u64,
        full: bool,
        pods: Vec<ReportedPod>,
    },
    /// The device asked for its whole desired set.
    ResyncRequested {
        known_generation: u64,
    },
    /// A `DeletePod` effect failed; allow it again.
    DeleteFailed {
        uid: String,
    },
    /// A `Persist` effect failed (and the `Publish` after it was held back); the store
    /// may work again: persist the current set, then send it.
    StoreRecovered,
    /// The gateway's broker session was lost (the broker restarted without it): sets
    /// published but not acknowledged may never have reached the device.
    BrokerSessionLost,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEffect {
    /// Write and flush this record before executing the next effect.
    Persist(PersistedDevice),
    /// Send the whole desired set to the device (QoS 1).
    Publish(DesiredSet),
    /// Delete the pod from Kubernetes with grace 0 and a UID precondition.
    DeletePod {
        uid: String,
        namespace: String,
        name: String,
    },
    /// The pod (new, or a change of one on the device) would make the desired set
    /// `size` bytes, over `limit`: it was left out (a new pod) or the device keeps the
    /// previous spec (a change).
    Refused {
        uid: String,
        namespace: String,
        name: String,
        new_pod: bool,
        size: usize,
        limit: usize,
    },
}

/// Synchronisation state of one device.
#[derive(Debug, Clone)]
pub struct DeviceSync {
    device: DeviceId,
    pods: BTreeMap<String, PodSpec>,
    generation: u64,
    acked_generation: u64,
    published_generation: u64,
    online: bool,
    synced: bool,
    added_at: BTreeMap<String, u64>,
    reached: BTreeSet<String>,
    /// Pods that were part of a published set: they may run on the device even before
    /// it confirms them.
    sent: BTreeSet<String>,
    deleting: BTreeSet<String>,
    stray_republished_at: Option<u64>,
    /// Heartbeats since the last publish that showed an older generation than it.
    unanswered_heartbeats: u32,
    size: SetSize,
}

/// Heartbeats showing an older generation than the one published, after which it is
/// published again (the agent counts a set as observed when it receives it, before any
/// image pull; at the default 10 s heartbeat, about 30 s).
pub const UNANSWERED_HEARTBEATS: u32 = 3;

impl DeviceSync {
    /// A device seen for the first time.
    pub fn new(device: DeviceId) -> Self {
        Self::restore(device, PersistedDevice::default())
    }

    /// A device restored from the store: what it acknowledged counts as already sent,
    /// and every stored pod counts as possibly running on the device.
    pub fn restore(device: DeviceId, stored: PersistedDevice) -> Self {
        let generation = stored.desired.generation.max(stored.acked_generation);
        let acked = stored.acked_generation;
        let pods: BTreeMap<String, PodSpec> = stored
            .desired
            .pods
            .into_iter()
            .map(|p| (p.uid.clone(), p))
            .collect();
        // Which stored pods reached the device is unknown after a restart: assume all
        // did, so a terminating one is only deleted once the device confirms (never
        // purged from Kubernetes behind an offline device's back).
        let reached = pods.keys().cloned().collect();
        let added_at = pods.keys().map(|k| (k.clone(), generation)).collect();
        let size = SetSize::of(pods.values());
        Self {
            device,
            pods,
            generation,
            acked_generation: acked,
            published_generation: acked,
            online: false,
            synced: false,
            added_at,
            reached,
            sent: BTreeSet::new(),
            deleting: BTreeSet::new(),
            stray_republished_at: None,
            unanswered_heartbeats: 0,
            size,
        }
    }

    pub fn device(&self) -> &DeviceId {
        &self.device
    }
    pub fn generation(&self) -> u64 {
        self.generation
    }
    pub fn acked_generation(&self) -> u64 {
        self.acked_generation
    }
    pub fn is_online(&self) -> bool {
        self.online
    }
    /// Whether `uid` is in this device's desired set (the isolation check for reports).
    pub fn has_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }
    pub fn pod(&self, uid: &str) -> Option<&PodSpec> {
        self.pods.get(uid)
    }
    pub fn pods(&self) -> impl Iterator<Item = &PodSpec> {
        self.pods.values()
    }

    pub fn desired_set(&self) -> DesiredSet {
        DesiredSet {
            generation: self.generation,
            pods: self.pods.values().cloned().collect(),
        }
    }

    fn persisted(&self) -> PersistedDevice {
        PersistedDevice {
            desired: self.desired_set(),
            acked_generation: self.acked_generation,
        }
    }

    fn changed(&mut self, effects: &mut Vec<SyncEffect>) {
        self.generation = self.generation.saturating_add(1);
        effects.push(SyncEffect::Persist(self.persisted()));
        self.maybe_publish(effects);
    }

    fn maybe_publish(&mut self, effects: &mut Vec<SyncEffect>) {
        if self.online && self.synced && self.generation != self.published_generation {
            self.publish(effects);
        }
    }

    fn publish(&mut self, effects: &mut Vec<SyncEffect>) {
        self.published_generation = self.generation;
        self.unanswered_heartbeats = 0;
        self.sent.extend(self.pods.keys().cloned());
        effects.push(SyncEffect::Publish(self.desired_set()));
    }

    fn forget(&mut self, uid: &str) -> bool {
        self.added_at.remove(uid);
        self.reached.remove(uid);
        self.sent.remove(uid);
        self.size.remove(uid);
        self.pods.remove(uid).is_some()
    }

    /// Whether the pod may run on the device: it was sent in a desired set (the device
    /// may have applied it without confirming yet), reported, or confirmed.
    fn may_be_on_device(&self, uid: &str) -> bool {
        self.reached.contains(uid)
            || self.sent.contains(uid)
            || self
                .added_at
                .get(uid)
                .is_some_and(|g| self.acked_generation >= *g)
    }

    fn request_delete(&mut self, spec: &PodSpec, effects: &mut Vec<SyncEffect>) {
        if self.deleting.insert(spec.uid.clone()) {
            effects.push(SyncEffect::DeletePod {
                uid: spec.uid.clone(),
                namespace: spec.namespace.clone(),
                name: spec.name.clone(),
            });
        }
    }

    fn acknowledge(&mut self, observed: u64, effects: &mut Vec<SyncEffect>) {
        if observed > MAX_GENERATION {
            // no gateway makes such a generation: a broken or hostile device; jumping
            // there would make the next change wrap
            return;
        }
        if observed > self.generation {
            // The device applied a generation we never made (the store was lost or
            // another gateway served it): jump past it and send the whole set again.
            self.generation = observed;
            self.acked_generation = observed;
            self.published_generation = 0;
            self.changed(effects);
            return;
        }
        if observed > self.acked_generation {
            self.acked_generation = observed;
            let reached: Vec<String> = self
                .added_at
                .iter()
                .filter(|(_, g)| **g <= observed)
                .map(|(uid, _)| uid.clone())
                .collect();
            self.reached.extend(reached);
            effects.push(SyncEffect::Persist(self.persisted()));
        }
    }

    /// A heartbeat: publishes the set again when the device keeps showing an older
    /// generation than the one published (the broker lost it on the way).
    fn unanswered(&mut self, observed: u64, effects: &mut Vec<SyncEffect>) {
        let waiting = self.online
            && self.synced
            && self.published_generation == self.generation
            && observed < self.published_generation;
        if !waiting {
            self.unanswered_heartbeats = 0;
            return;
        }
        self.unanswered_heartbeats += 1;
        if self.unanswered_heartbeats >= UNANSWERED_HEARTBEATS {
            self.publish(effects);
        }
    }

    pub fn handle(&mut self, input: SyncInput) -> Vec<SyncEffect> {
        let mut effects = Vec::new();
        match input {
            SyncInput::PodUpserted(spec) => {
                let uid = spec.uid.clone();
                if spec.is_terminating() && !self.may_be_on_device(&uid) {
                    self.request_delete(&spec, &mut effects);
                    if self.forget(&uid) {
                        self.changed(&mut effects);
                    }
                } else if self.pods.get(&uid) != Some(&spec) {
                    let bytes = pod_bytes(&spec);
                    let size = self.size.total_with(&uid, bytes);
                    // a deletion always goes through (the headroom is kept for it)
                    if size > ADMISSION_LIMIT_BYTES && !spec.is_terminating() {
                        effects.push(SyncEffect::Refused {
                            new_pod: !self.pods.contains_key(&uid),
                            uid,
                            namespace: spec.namespace,
                            name: spec.name,
                            size,
                            limit: ADMISSION_LIMIT_BYTES,
                        });
                        return effects;
                    }
                    self.added_at
                        .entry(uid.clone())
                        .or_insert(self.generation + 1);
                    self.size.insert(&uid, bytes);
                    self.pods.insert(uid, spec);
                    self.changed(&mut effects);
                }
            }
            SyncInput::PodRemoved { uid } => {
                self.deleting.remove(&uid);
                if self.forget(&uid) {
                    self.changed(&mut effects);
                }
            }
            SyncInput::KubernetesSynced { present } => {
                self.synced = true;
                let gone: Vec<String> = self
                    .pods
                    .keys()
                    .filter(|uid| !present.contains(*uid))
                    .cloned()
                    .collect();
                for uid in &gone {
                    self.forget(uid);
                }
                if gone.is_empty() {
                    self.maybe_publish(&mut effects);
                } else {
                    self.changed(&mut effects);
                }
            }
            SyncInput::Online => {
                self.online = true;
                self.maybe_publish(&mut effects);
            }
            SyncInput::Offline => self.online = false,
            SyncInput::Heartbeat {
                observed_generation,
            } => {
                self.acknowledge(observed_generation, &mut effects);
                self.unanswered(observed_generation, &mut effects);
            }
            SyncInput::StatusReport {
                observed_generation,
                full,
                pods,
            } => {
                self.acknowledge(observed_generation, &mut effects);
                let mut stray = false;
                for reported in &pods {
                    match self.pods.get(&reported.uid).cloned() {
                        Some(spec) => {
                            self.reached.insert(reported.uid.clone());
                            if reported.removed && spec.is_terminating() {
                                self.request_delete(&spec, &mut effects);
                            }
                        }
                        None => stray |= !reported.removed,
                    }
                }
                if full && observed_generation >= self.generation {
                    let terminating_gone: Vec<PodSpec> = self
                        .pods
                        .values()
                        .filter(|p| p.is_terminating() && !pods.iter().any(|r| r.uid == p.uid))
                        .cloned()
                        .collect();
                    for spec in terminating_gone {
                        self.request_delete(&spec, &mut effects);
                    }
                }
                // The device runs pods Kubernetes no longer has: send the set again so it
                // removes them (once per generation, and never before we are synced).
                // (only when it claims to have applied our latest set: a report made
                // before that set arrived naturally lists pods it is about to remove)
                if stray
                    && observed_generation >= self.generation
                    && self.synced
                    && self.stray_republished_at != Some(self.generation)
                {
                    self.stray_republished_at = Some(self.generation);
                    self.published_generation = 0;
                    self.maybe_publish(&mut effects);
                }
            }
            SyncInput::ResyncRequested { known_generation } => {
                // An explicit request is answered even before the device counts as
                // online (its state message may still be on the way).
                let _ = known_generation;
                if self.synced {
                    self.publish(&mut effects);
                } else {
                    self.published_generation = 0;
                }
            }
            SyncInput::DeleteFailed { uid } => {
                self.deleting.remove(&uid);
            }
            SyncInput::BrokerSessionLost => {
                if self.generation != self.acked_generation {
                    self.published_generation = 0;
                    self.maybe_publish(&mut effects);
                }
            }
            SyncInput::StoreRecovered => {
                effects.push(SyncEffect::Persist(self.persisted()));
                if self.generation > 0 {
                    self.published_generation = 0;
                }
                self.maybe_publish(&mut effects);
            }
        }
        effects
    }
}

#[cfg(test)]
mod tests;
