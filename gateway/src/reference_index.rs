//! Which device pods use which ConfigMaps and Secrets (pure): the per-object watches to
//! start and stop, the pods to translate again when an object changes, and the immutable
//! objects that need no watch after their first read.
//!
//! Like the kubelet's watch-based ConfigMap/Secret manager, one watch per referenced
//! object (`metadata.name=<name>` in its namespace), and only while a pod on one of the
//! gateway's devices references it. The resourceVersion a translation read is
//! remembered, so a watch's first event (the object as it already is) changes nothing,
//! while a change made between the read and the watch's start is not lost.

use std::collections::{BTreeMap, BTreeSet};

use crate::translation::ObjectKind;

/// One ConfigMap or Secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
}

/// Watches to start and stop after a change of the index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchChanges {
    pub start: Vec<ObjectRef>,
    pub stop: Vec<ObjectRef>,
}

/// What a watch event on an object means.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectUpdate {
    /// Uids of the pods to translate again (the object changed since they read it).
    pub retranslate: Vec<String>,
    /// Watches to stop (the object became immutable).
    pub watches: WatchChanges,
}

/// The index: pods → objects, objects → pods, what was read, what is watched.
#[derive(Debug, Default)]
pub struct ReferenceIndex {
    by_pod: BTreeMap<String, BTreeSet<ObjectRef>>,
    users: BTreeMap<ObjectRef, BTreeSet<String>>,
    /// The resourceVersion last read or seen per object (`None`: known to be absent).
    seen: BTreeMap<ObjectRef, Option<String>>,
    immutable: BTreeSet<ObjectRef>,
    watched: BTreeSet<ObjectRef>,
}

impl ReferenceIndex {
    /// The objects pod `uid` references now (replacing what it referenced before).
    pub fn set_pod(&mut self, uid: &str, refs: BTreeSet<ObjectRef>) -> WatchChanges {
        let old = self.by_pod.remove(uid).unwrap_or_default();
        for r in old.difference(&refs) {
            self.remove_user(r, uid);
        }
        for r in &refs {
            self.users
                .entry(r.clone())
                .or_default()
                .insert(uid.to_owned());
        }
        let affected: BTreeSet<ObjectRef> = old.union(&refs).cloned().collect();
        if !refs.is_empty() {
            self.by_pod.insert(uid.to_owned(), refs);
        }
        self.sync_watches(affected)
    }

    /// Pod `uid` is gone (or no longer on one of our devices).
    pub fn remove_pod(&mut self, uid: &str) -> WatchChanges {
        self.set_pod(uid, BTreeSet::new())
    }

    /// A translation read `object` (`None`: it does not exist) at `resource_version`.
    pub fn read(
        &mut self,
        object: &ObjectRef,
        resource_version: Option<&str>,
        immutable: bool,
    ) -> WatchChanges {
        self.seen
            .insert(object.clone(), resource_version.map(str::to_owned));
        if immutable && resource_version.is_some() {
            self.immutable.insert(object.clone());
        }
        self.sync_watches([object.clone()].into())
    }

    /// A watch saw `object` at `resource_version` (`None`: deleted).
    ///
    /// A deleted object changes nothing on the devices (like the kubelet, the pods keep
    /// the files they have); it being created again does.
    pub fn on_object(
        &mut self,
        object: &ObjectRef,
        resource_version: Option<&str>,
        immutable: bool,
    ) -> ObjectUpdate {
        let Some(users) = self.users.get(object) else {
            return ObjectUpdate::default();
        };
        let new = resource_version.map(str::to_owned);
        let changed = new.is_some() && self.seen.get(object) != Some(&new);
        let retranslate = if changed {
            users.iter().cloned().collect()
        } else {
            Vec::new()
        };
        self.seen.insert(object.clone(), new);
        if immutable && resource_version.is_some() {
            self.immutable.insert(object.clone());
        }
        ObjectUpdate {
            retranslate,
            watches: self.sync_watches([object.clone()].into()),
        }
    }

    /// Pods that reference `object`.
    pub fn users_of(&self, object: &ObjectRef) -> Vec<String> {
        self.users
            .get(object)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Objects watched now.
    pub fn watched(&self) -> impl Iterator<Item = &ObjectRef> {
        self.watched.iter()
    }

    fn remove_user(&mut self, object: &ObjectRef, uid: &str) {
        if let Some(users) = self.users.get_mut(object) {
            users.remove(uid);
            if users.is_empty() {
                self.users.remove(object);
                self.seen.remove(object);
                self.immutable.remove(object);
            }
        }
    }

    /// Starts watches on used, mutable objects and stops the others, among `affected`.
    fn sync_watches(&mut self, affected: BTreeSet<ObjectRef>) -> WatchChanges {
        let mut changes = WatchChanges::default();
        for object in affected {
            let wanted = self.users.contains_key(&object) && !self.immutable.contains(&object);
            let watching = self.watched.contains(&object);
            if wanted && !watching {
                self.watched.insert(object.clone());
                changes.start.push(object);
            } else if !wanted && watching {
                self.watched.remove(&object);
                changes.stop.push(object);
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests;
