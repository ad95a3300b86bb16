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
//! - A terminating pod that never reached the device is deleted at once; one that did is
//!   sent with its grace period and deleted once the device reports it `removed`.

use std::collections::{BTreeMap, BTreeSet};

use edge_protocol::{DesiredSet, DeviceId, PodSpec};
use serde::{Deserialize, Serialize};

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
    deleting: BTreeSet<String>,
    stray_republished_at: Option<u64>,
}

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
            deleting: BTreeSet::new(),
            stray_republished_at: None,
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
        self.generation += 1;
        effects.push(SyncEffect::Persist(self.persisted()));
        self.maybe_publish(effects);
    }

    fn maybe_publish(&mut self, effects: &mut Vec<SyncEffect>) {
        if self.online && self.synced && self.generation != self.published_generation {
            self.published_generation = self.generation;
            effects.push(SyncEffect::Publish(self.desired_set()));
        }
    }

    fn has_reached_device(&self, uid: &str) -> bool {
        self.reached.contains(uid)
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

    pub fn handle(&mut self, input: SyncInput) -> Vec<SyncEffect> {
        let mut effects = Vec::new();
        match input {
            SyncInput::PodUpserted(spec) => {
                let uid = spec.uid.clone();
                if spec.is_terminating() && !self.has_reached_device(&uid) {
                    self.request_delete(&spec, &mut effects);
                    if self.pods.remove(&uid).is_some() {
                        self.added_at.remove(&uid);
                        self.changed(&mut effects);
                    }
                } else if self.pods.get(&uid) != Some(&spec) {
                    self.added_at
                        .entry(uid.clone())
                        .or_insert(self.generation + 1);
                    self.pods.insert(uid, spec);
                    self.changed(&mut effects);
                }
            }
            SyncInput::PodRemoved { uid } => {
                self.deleting.remove(&uid);
                self.reached.remove(&uid);
                self.added_at.remove(&uid);
                if self.pods.remove(&uid).is_some() {
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
                    self.pods.remove(uid);
                    self.added_at.remove(uid);
                    self.reached.remove(uid);
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
            } => self.acknowledge(observed_generation, &mut effects),
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
                    self.published_generation = self.generation;
                    effects.push(SyncEffect::Publish(self.desired_set()));
                } else {
                    self.published_generation = 0;
                }
            }
            SyncInput::DeleteFailed { uid } => {
                self.deleting.remove(&uid);
            }
        }
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uid: &str) -> PodSpec {
        PodSpec {
            uid: uid.into(),
            namespace: "default".into(),
            name: format!("pod-{uid}"),
            ..Default::default()
        }
    }

    fn terminating(uid: &str) -> PodSpec {
        PodSpec {
            deletion_grace_period_seconds: Some(5),
            ..spec(uid)
        }
    }

    fn dev() -> DeviceId {
        DeviceId::new("pi-01").unwrap()
    }

    fn publishes(effects: &[SyncEffect]) -> Vec<u64> {
        effects
            .iter()
            .filter_map(|e| match e {
                SyncEffect::Publish(s) => Some(s.generation),
                _ => None,
            })
            .collect()
    }

    fn deletes(effects: &[SyncEffect]) -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                SyncEffect::DeletePod { uid, .. } => Some(uid.clone()),
                _ => None,
            })
            .collect()
    }

    fn online_synced() -> DeviceSync {
        let mut s = DeviceSync::new(dev());
        s.handle(SyncInput::Online);
        s.handle(SyncInput::KubernetesSynced {
            present: BTreeSet::new(),
        });
        s
    }

    #[test]
    fn nothing_is_published_before_kubernetes_is_synced() {
        let mut s = DeviceSync::new(dev());
        s.handle(SyncInput::Online);
        let e = s.handle(SyncInput::PodUpserted(spec("a")));
        assert!(matches!(e[0], SyncEffect::Persist(_)));
        assert!(publishes(&e).is_empty());
        let e = s.handle(SyncInput::KubernetesSynced {
            present: BTreeSet::from(["a".to_owned()]),
        });
        assert_eq!(publishes(&e), vec![1]);
    }

    #[test]
    fn persist_comes_before_publish_and_generations_increase() {
        let mut s = online_synced();
        let e = s.handle(SyncInput::PodUpserted(spec("a")));
        assert!(matches!(e[0], SyncEffect::Persist(ref p) if p.desired.generation == 1));
        assert_eq!(publishes(&e), vec![1]);
        // unchanged spec: nothing
        assert!(s.handle(SyncInput::PodUpserted(spec("a"))).is_empty());
        let e = s.handle(SyncInput::PodUpserted(spec("b")));
        assert_eq!(publishes(&e), vec![2]);
        assert_eq!(s.desired_set().pods.len(), 2);
    }

    #[test]
    fn offline_devices_get_the_set_when_back() {
        let mut s = online_synced();
        s.handle(SyncInput::Offline);
        let e = s.handle(SyncInput::PodUpserted(spec("a")));
        assert!(publishes(&e).is_empty());
        s.handle(SyncInput::PodUpserted(spec("b")));
        let e = s.handle(SyncInput::Online);
        assert_eq!(publishes(&e), vec![2]);
        // coming online again without changes does not re-send
        s.handle(SyncInput::Offline);
        assert!(publishes(&s.handle(SyncInput::Online)).is_empty());
    }

    #[test]
    fn restored_acknowledged_set_is_not_resent() {
        let mut s = online_synced();
        s.handle(SyncInput::PodUpserted(spec("a")));
        s.handle(SyncInput::Heartbeat {
            observed_generation: 1,
        });
        let stored = s.persisted();
        assert_eq!(stored.acked_generation, 1);
        let mut r = DeviceSync::restore(dev(), stored);
        r.handle(SyncInput::Online);
        assert!(r.handle(SyncInput::PodUpserted(spec("a"))).is_empty());
        let e = r.handle(SyncInput::KubernetesSynced {
            present: BTreeSet::from(["a".to_owned()]),
        });
        assert!(publishes(&e).is_empty(), "{e:?}");
    }

    #[test]
    fn restored_unacknowledged_set_is_sent_once() {
        let stored = PersistedDevice {
            desired: DesiredSet {
                generation: 3,
                pods: vec![spec("a")],
            },
            acked_generation: 2,
        };
        let mut r = DeviceSync::restore(dev(), stored);
        r.handle(SyncInput::Online);
        let e = r.handle(SyncInput::KubernetesSynced {
            present: BTreeSet::from(["a".to_owned()]),
        });
        assert_eq!(publishes(&e), vec![3]);
    }

    #[test]
    fn pods_gone_while_the_gateway_was_down_are_removed_after_sync() {
        let stored = PersistedDevice {
            desired: DesiredSet {
                generation: 3,
                pods: vec![spec("a"), spec("b")],
            },
            acked_generation: 3,
        };
        let mut r = DeviceSync::restore(dev(), stored);
        // offline device: the removal is stored but not sent yet
        let e = r.handle(SyncInput::KubernetesSynced {
            present: BTreeSet::from(["a".to_owned()]),
        });
        assert!(publishes(&e).is_empty());
        assert_eq!(r.desired_set().pods.len(), 1);
        assert_eq!(publishes(&r.handle(SyncInput::Online)), vec![4]);
    }

    #[test]
    fn restored_terminating_pods_wait_for_the_device_even_unacknowledged() {
        let stored = PersistedDevice {
            desired: DesiredSet {
                generation: 5,
                pods: vec![spec("a")],
            },
            acked_generation: 3,
        };
        let mut r = DeviceSync::restore(dev(), stored);
        let e = r.handle(SyncInput::PodUpserted(terminating("a")));
        assert!(deletes(&e).is_empty(), "{e:?}");
        assert!(r.pod("a").unwrap().is_terminating());
    }

    #[test]
    fn resync_request_resends_the_full_set() {
        let mut s = online_synced();
        s.handle(SyncInput::PodUpserted(spec("a")));
        let e = s.handle(SyncInput::ResyncRequested {
            known_generation: 0,
        });
        assert_eq!(publishes(&e), vec![1]);
    }

    #[test]
    fn terminating_pod_that_never_reached_the_device_is_deleted_at_once() {
        let mut s = DeviceSync::new(dev());
        s.handle(SyncInput::KubernetesSynced {
            present: BTreeSet::new(),
        });
        s.handle(SyncInput::PodUpserted(spec("a")));
        let e = s.handle(SyncInput::PodUpserted(terminating("a")));
        assert_eq!(deletes(&e), vec!["a"]);
        assert!(!s.has_pod("a"));
    }

    #[test]
    fn terminating_pod_on_the_device_waits_for_removed() {
        let mut s = online_synced();
        s.handle(SyncInput::PodUpserted(spec("a")));
        s.handle(SyncInput::StatusReport {
            observed_generation: 1,
            full: false,
            pods: vec![ReportedPod {
                uid: "a".into(),
                removed: false,
            }],
        });
        let e = s.handle(SyncInput::PodUpserted(terminating("a")));
        assert!(deletes(&e).is_empty());
        assert_eq!(publishes(&e), vec![2]);
        let removed = SyncInput::StatusReport {
            observed_generation: 2,
            full: false,
            pods: vec![ReportedPod {
                uid: "a".into(),
                removed: true,
            }],
        };
        assert_eq!(deletes(&s.handle(removed.clone())), vec!["a"]);
        // a duplicate report does not delete twice; a failed delete allows a retry
        assert!(deletes(&s.handle(removed.clone())).is_empty());
        s.handle(SyncInput::DeleteFailed { uid: "a".into() });
        assert_eq!(deletes(&s.handle(removed)), vec!["a"]);
        let e = s.handle(SyncInput::PodRemoved { uid: "a".into() });
        assert_eq!(publishes(&e), vec![3]);
    }

    #[test]
    fn full_report_without_a_terminating_pod_means_it_is_gone() {
        let mut s = online_synced();
        s.handle(SyncInput::PodUpserted(spec("a")));
        s.handle(SyncInput::Heartbeat {
            observed_generation: 1,
        });
        s.handle(SyncInput::PodUpserted(terminating("a")));
        let e = s.handle(SyncInput::StatusReport {
            observed_generation: 2,
            full: true,
            pods: vec![],
        });
        assert_eq!(deletes(&e), vec!["a"]);
    }

    #[test]
    fn stray_pods_trigger_one_republish_per_generation() {
        let mut s = online_synced();
        s.handle(SyncInput::PodUpserted(spec("a")));
        let stray = SyncInput::StatusReport {
            observed_generation: 1,
            full: false,
            pods: vec![ReportedPod {
                uid: "ghost".into(),
                removed: false,
            }],
        };
        assert_eq!(publishes(&s.handle(stray.clone())), vec![1]);
        assert!(publishes(&s.handle(stray)).is_empty());
    }

    #[test]
    fn stale_reports_with_extra_pods_do_not_trigger_a_republish() {
        let mut s = online_synced();
        s.handle(SyncInput::PodUpserted(spec("a")));
        s.handle(SyncInput::PodUpserted(spec("b")));
        let e = s.handle(SyncInput::StatusReport {
            observed_generation: 1,
            full: true,
            pods: vec![ReportedPod {
                uid: "old".into(),
                removed: false,
            }],
        });
        assert!(publishes(&e).is_empty(), "{e:?}");
    }

    #[test]
    fn device_ahead_of_us_gets_a_higher_generation() {
        let mut s = online_synced();
        s.handle(SyncInput::PodUpserted(spec("a")));
        let e = s.handle(SyncInput::Heartbeat {
            observed_generation: 40,
        });
        assert_eq!(publishes(&e), vec![41]);
        assert_eq!(s.generation(), 41);
    }

    #[test]
    fn acknowledgements_are_persisted_once() {
        let mut s = online_synced();
        s.handle(SyncInput::PodUpserted(spec("a")));
        let e = s.handle(SyncInput::Heartbeat {
            observed_generation: 1,
        });
        assert!(matches!(&e[..], [SyncEffect::Persist(p)] if p.acked_generation == 1));
        assert!(
            s.handle(SyncInput::Heartbeat {
                observed_generation: 1
            })
            .is_empty()
        );
    }
}
