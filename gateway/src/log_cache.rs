//! The offline log cache: for each container of the pods the fleet knows, the last
//! `--offline-log-cache-bytes` of output its device reported on `up/logtail`, kept in
//! the sled store (tree `log_tails`) so a gateway restarted while the device is offline
//! still has it, and served by `kubelet_api` as `kubectl logs` while the device is
//! offline ([`offline_answer`]).
//!
//! Who decides and who holds: the fleet's runner, the one owner of fleet state, decides
//! what goes in (only containers of pods it knows on the sending device that did not
//! opt out; other entries are dropped and counted as hostile input) and when a pod's
//! tails are forgotten, as effects. This small owner only holds the bytes: the fleet
//! state machine stays free of log data (up to 64 KiB a container), and the kubelet API
//! reads a tail with a short lock instead of a round trip through the runner's queue.
//!
//! | module | what is there |
//! |---|---|
//! | [`cached_tail`] | one container's bounded tail: appending reports, oldest bytes dropped at a line start (pure) |
//! | [`offline_answer`] | the `kubectl logs` answer while offline: notice line, `tailLines`, `limitBytes`, `since*` (pure) |

pub mod cached_tail;
pub mod offline_answer;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use edge_protocol::{ContainerLogTail, DeviceId};
use tracing::warn;

pub use cached_tail::CachedTail;

use crate::store::Store;

/// The default of `--offline-log-cache-bytes`: per container.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024;

/// Which container a tail is of.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TailKey {
    pub device: String,
    pub pod_uid: String,
    pub container: String,
}

impl TailKey {
    /// The store key: `device/pod uid/container` (none of them holds a `/`).
    fn store_key(&self) -> String {
        format!("{}/{}/{}", self.device, self.pod_uid, self.container)
    }

    fn from_store_key(key: &str) -> Option<Self> {
        let mut parts = key.splitn(3, '/');
        Some(Self {
            device: parts.next()?.to_owned(),
            pod_uid: parts.next()?.to_owned(),
            container: parts.next()?.to_owned(),
        })
    }
}

/// The cached tails, by container.
#[derive(Debug)]
pub struct LogCache {
    /// Bytes kept per container; 0 = the cache is off.
    limit: usize,
    tails: Mutex<HashMap<TailKey, CachedTail>>,
    store: Store,
}

impl LogCache {
    /// The cache as the store holds it (cut to `limit` if that was lowered; emptied
    /// when `limit` is 0).
    pub fn open(store: Store, limit: u64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut tails = HashMap::new();
        for (key, value) in store.load_log_tails() {
            let parsed = TailKey::from_store_key(&key)
                .zip(serde_json::from_slice::<CachedTail>(&value).ok());
            match parsed {
                Some((k, mut tail)) if limit > 0 => {
                    tail.bound(limit);
                    tails.insert(k, tail);
                }
                _ => {
                    let _ = store.remove_log_tail(&key);
                }
            }
        }
        Self {
            limit,
            tails: Mutex::new(tails),
            store,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TailKey, CachedTail>> {
        self.tails.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_on(&self) -> bool {
        self.limit > 0
    }

    fn persist(&self, key: &TailKey, tail: &CachedTail) {
        let written = serde_json::to_vec(tail)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                self.store
                    .put_log_tail(&key.store_key(), &v)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            warn!(device = %key.device, container = %key.container, error = %e,
                "cannot store a cached log tail");
        }
    }

    /// Adds a device's report of one container (checked by the fleet: the pod is the
    /// device's and did not opt out).
    pub fn append(&self, device: &DeviceId, report: &ContainerLogTail) {
        if !self.is_on() {
            return;
        }
        let key = TailKey {
            device: device.to_string(),
            pod_uid: report.pod_uid.clone(),
            container: report.container.clone(),
        };
        let mut tails = self.lock();
        let tail = tails.entry(key.clone()).or_default();
        if tail.append(report, self.limit) {
            let copy = tail.clone();
            drop(tails);
            self.persist(&key, &copy);
        }
    }

    /// The cached tail of a container, if any.
    pub fn get(&self, device: &DeviceId, pod_uid: &str, container: &str) -> Option<CachedTail> {
        let key = TailKey {
            device: device.to_string(),
            pod_uid: pod_uid.to_owned(),
            container: container.to_owned(),
        };
        self.lock().get(&key).cloned()
    }

    fn remove_where(&self, gone: impl Fn(&TailKey) -> bool) {
        let removed: Vec<TailKey> = {
            let mut tails = self.lock();
            let keys: Vec<TailKey> = tails.keys().filter(|k| gone(k)).cloned().collect();
            for k in &keys {
                tails.remove(k);
            }
            keys
        };
        for k in removed {
            if let Err(e) = self.store.remove_log_tail(&k.store_key()) {
                warn!(device = %k.device, error = %e, "cannot remove a cached log tail");
            }
        }
    }

    /// Forgets the tails of a pod (gone, or opted out).
    pub fn forget_pod(&self, pod_uid: &str) {
        self.remove_where(|k| k.pod_uid == pod_uid);
    }

    /// Forgets the tails of a device's pods other than `present` (pods deleted while the
    /// gateway was not running), or all of them when the device is gone.
    pub fn retain_pods(&self, device: &DeviceId, present: &BTreeSet<String>) {
        self.remove_where(|k| k.device == device.as_str() && !present.contains(&k.pod_uid));
    }

    /// How many containers have a cached tail (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
