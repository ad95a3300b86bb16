//! Object storage with one cluster-wide, increasing resourceVersion, and the event
//! history that watches resume from (like etcd plus the watch cache).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::broadcast;

/// Key of a stored object: storage name (`pods`), namespace ("" if cluster-scoped), name.
pub type ObjectKey = (&'static str, String, String);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, with the object before it (for selector transitions).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Storage name.
    pub storage: &'static str,
    /// Namespace ("" if cluster-scoped).
    pub namespace: String,
    /// Type.
    pub kind: EventType,
    /// The object after the change (for Deleted: the last state with the delete's RV).
    pub object: Arc<Value>,
    /// The object before the change.
    pub old: Option<Arc<Value>>,
}

/// The watch history no longer holds the requested version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooOld {
    /// The oldest version still available.
    pub oldest: u64,
}

/// Past events plus a receiver for later ones.
pub type Subscription = (Vec<Arc<StoredEvent>>, broadcast::Receiver<Arc<StoredEvent>>);

/// The store.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<ObjectKey, Arc<Value>>,
    /// Per resource storage (like the per-resource watch cache): recent events and the
    /// version before the oldest one kept.
    history: HashMap<&'static str, (VecDeque<Arc<StoredEvent>>, u64)>,
    history_limit: usize,
    /// Versions at or below this are gone for every resource (compaction).
    compacted: u64,
    tx: broadcast::Sender<Arc<StoredEvent>>,
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

impl Store {
    /// An empty store keeping `history_limit` events per resource for watch resumption.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(8192);
        Self {
            rv: 1,
            objects: BTreeMap::new(),
            history: HashMap::new(),
            history_limit: history_limit.max(1),
            compacted: 1,
            tx,
        }
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch of `storage` can resume from.
    pub fn oldest_rv(&self, storage: &str) -> u64 {
        self.history
            .get(storage)
            .map_or(self.compacted, |(_, c)| (*c).max(self.compacted))
    }

    /// Gets one object.
    pub fn get(&self, storage: &'static str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(&(storage, ns.to_string(), name.to_string()))
            .cloned()
    }

    /// All objects of a storage (optionally in one namespace), in key order.
    pub fn list(&self, storage: &'static str, ns: Option<&str>) -> Vec<Arc<Value>> {
        let lo = (storage, ns.unwrap_or("").to_string(), String::new());
        self.objects
            .range(lo..)
            .take_while(|((s, n, _), _)| *s == storage && ns.is_none_or(|want| n == want))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, ev: StoredEvent) {
        let ev = Arc::new(ev);
        let limit = self.history_limit;
        let (events, oldest) = self
            .history
            .entry(ev.storage)
            .or_insert_with(|| (VecDeque::new(), 1));
        events.push_back(ev.clone());
        while events.len() > limit {
            if let Some(e) = events.pop_front() {
                *oldest = e.rv;
            }
        }
        // No receivers is fine.
        let _ = self.tx.send(ev);
    }

    /// Stores a new object (caller checked it does not exist), stamping resourceVersion.
    pub fn insert(
        &mut self,
        storage: &'static str,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Arc<Value> {
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        let old = self
            .objects
            .insert((storage, ns.to_string(), name.to_string()), obj.clone());
        self.record(StoredEvent {
            rv,
            storage,
            namespace: ns.to_string(),
            kind: if old.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Removes an object, recording a Deleted event with a new resourceVersion.
    pub fn remove(&mut self, storage: &'static str, ns: &str, name: &str) -> Option<Arc<Value>> {
        let old = self
            .objects
            .remove(&(storage, ns.to_string(), name.to_string()))?;
        let rv = self.next_rv();
        let mut last = (*old).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        self.record(StoredEvent {
            rv,
            storage,
            namespace: ns.to_string(),
            kind: EventType::Deleted,
            object: last.clone(),
            old: Some(old),
        });
        Some(last)
    }

    /// Events after `since` plus a receiver for later ones, atomically.
    pub fn subscribe(
        &self,
        storage: &str,
        since: u64,
    ) -> std::result::Result<Subscription, TooOld> {
        let oldest = self.oldest_rv(storage);
        if since < oldest {
            return Err(TooOld { oldest });
        }
        let past = self
            .history
            .get(storage)
            .map(|(events, _)| events.iter().filter(|e| e.rv > since).cloned().collect())
            .unwrap_or_default();
        Ok((past, self.tx.subscribe()))
    }

    /// A receiver of future events only.
    pub fn subscribe_now(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.tx.subscribe()
    }

    /// A copy of the objects (no history, no watchers) for dry-run requests.
    pub fn dry_run_copy(&self) -> Self {
        let (tx, _) = broadcast::channel(1);
        Self {
            rv: self.rv,
            objects: self.objects.clone(),
            history: HashMap::new(),
            history_limit: 1,
            compacted: self.rv,
            tx,
        }
    }

    /// Forgets all history up to now: older versions get 410 Gone (like etcd compaction).
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn rv_increases_and_history_resumes() {
        let mut s = Store::new(2);
        let a = s.insert("pods", "default", "a", json!({"metadata":{"name":"a"}}));
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        s.insert("pods", "default", "b", json!({"metadata":{"name":"b"}}));
        s.insert("pods", "default", "c", json!({"metadata":{"name":"c"}}));
        assert_eq!(s.current_rv(), 4);
        assert!(s.subscribe("pods", 1).is_err());
        let (past, _) = s.subscribe("pods", 3).unwrap();
        assert!(s.subscribe("leases", 1).is_ok(), "history is per resource");
        assert_eq!(past.len(), 1);
        assert_eq!(s.list("pods", Some("default")).len(), 3);
        assert_eq!(s.list("pods", Some("other")).len(), 0);
        let d = s.remove("pods", "default", "a").unwrap();
        assert_eq!(d["metadata"]["resourceVersion"], "5");
    }
}
