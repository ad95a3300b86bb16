//! A small bounded cache with per-entry expiry for TokenReview and SubjectAccessReview
//! answers, as the kubelet's webhook authenticator and authorizer keep them: the API
//! server is not asked again for every request, a full cache drops its oldest entries.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires: Instant,
    seq: u64,
}

#[derive(Debug)]
struct Inner<V> {
    entries: HashMap<String, Entry<V>>,
    /// Insertion order (sequence number, key); entries re-inserted later leave a stale
    /// element here that is skipped.
    order: VecDeque<(u64, String)>,
    next_seq: u64,
}

/// At most `capacity` entries, each valid until its own expiry.
#[derive(Debug)]
pub struct ReviewCache<V> {
    capacity: usize,
    inner: Mutex<Inner<V>>,
}

impl<V: Clone> ReviewCache<V> {
    /// An empty cache of at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                next_seq: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached value of `key`, if present and not expired at `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<V> {
        let mut inner = self.lock();
        match inner.entries.get(key) {
            Some(e) if e.expires > now => Some(e.value.clone()),
            Some(_) => {
                inner.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `key` until `now + ttl` (a zero TTL keeps nothing).
    pub fn insert(&self, key: String, value: V, ttl: Duration, now: Instant) {
        if ttl.is_zero() {
            return;
        }
        let capacity = self.capacity;
        let mut inner = self.lock();
        if !inner.entries.contains_key(&key) && inner.entries.len() >= capacity {
            inner.entries.retain(|_, e| e.expires > now);
            while inner.entries.len() >= capacity {
                let Some((seq, oldest)) = inner.order.pop_front() else {
                    break;
                };
                if inner.entries.get(&oldest).is_some_and(|e| e.seq == seq) {
                    inner.entries.remove(&oldest);
                }
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.push_back((seq, key.clone()));
        inner.entries.insert(
            key,
            Entry {
                value,
                expires: now + ttl,
                seq,
            },
        );
        // stale order elements never outnumber the live entries by much
        if inner.order.len() > 2 * capacity {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(seq, k)| entries.get(k).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Number of entries held (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
