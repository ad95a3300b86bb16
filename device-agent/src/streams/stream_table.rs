//! The streams the device serves, by id: admits a new one only under the limit, ignores a
//! repeated open (a QoS 1 redelivery), and gives every stream up when the MQTT session is
//! lost (the gateway no longer knows them). Pure; `H` is whatever drives one stream.

use std::collections::HashMap;

/// What [`StreamTable::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// A stream with this id runs already: the open was redelivered.
    AlreadyOpen,
    /// As many streams run as the device accepts.
    TooMany {
        limit: usize,
    },
}

#[derive(Debug)]
pub struct StreamTable<H> {
    limit: usize,
    streams: HashMap<String, H>,
}

impl<H> StreamTable<H> {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            streams: HashMap::new(),
        }
    }

    /// Admits stream `id` with the handle `make` builds, if it is new and under the limit.
    pub fn admit(&mut self, id: &str, make: impl FnOnce() -> H) -> Admission {
        if self.streams.contains_key(id) {
            return Admission::AlreadyOpen;
        }
        if self.streams.len() >= self.limit {
            return Admission::TooMany { limit: self.limit };
        }
        self.streams.insert(id.to_owned(), make());
        Admission::Admitted
    }

    pub fn get(&self, id: &str) -> Option<&H> {
        self.streams.get(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<H> {
        self.streams.remove(id)
    }

    /// Forgets the streams that ended (`running` false).
    pub fn prune(&mut self, running: impl Fn(&H) -> bool) {
        self.streams.retain(|_, h| running(h));
    }

    /// The MQTT session is gone: every stream ends; returns their handles.
    pub fn session_lost(&mut self) -> Vec<H> {
        self.streams.drain().map(|(_, h)| h).collect()
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests;
