//! The agent's local store (sled under the state directory): the desired set, the
//! per-device report sequence, and the outbox of reliable uplink messages (status
//! reports and events) not yet acknowledged by the broker. Every write is flushed before
//! anything that depends on it is acknowledged or published.

use std::path::Path;

use edge_protocol::{DesiredSet, Message, PodEventReport, PodStatus, PodStatusReport, UpChannel};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local store at {path}: {source} (is another edge-agent running on this state dir?)")]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error("local store: {0}")]
    Sled(#[from] sled::Error),
    #[error("local store holds an unreadable {what}: {message}")]
    Corrupt { what: &'static str, message: String },
    #[error("encoding {0}")]
    Encode(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

const DESIRED: &[u8] = b"desired";
const REPORT_SEQUENCE: &[u8] = b"report-sequence";
const OUTBOX_NEXT: &[u8] = b"outbox-next";
/// The outbox keeps at most this many messages; the oldest events go first.
const OUTBOX_LIMIT: usize = 20_000;

/// A reliable uplink message waiting for the broker's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// `status` or `events`.
    pub channel: String,
    pub payload: Vec<u8>,
}

impl OutboxItem {
    pub fn up_channel(&self) -> UpChannel {
        match self.channel.as_str() {
            "events" => UpChannel::Events,
            _ => UpChannel::Status,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LocalStore {
    db: sled::Db,
    meta: sled::Tree,
    outbox: sled::Tree,
}

fn u64_of(v: Option<sled::IVec>) -> u64 {
    v.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl LocalStore {
    pub fn open(dir: &Path) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(4 * 1024 * 1024)
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.display().to_string(),
                source,
            })?;
        let meta = db.open_tree("meta")?;
        let outbox = db.open_tree("outbox")?;
        Ok(Self { db, meta, outbox })
    }

    /// The desired set last received (empty when none).
    pub fn desired(&self) -> Result<DesiredSet> {
        match self.meta.get(DESIRED)? {
            None => Ok(DesiredSet::default()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: "desired set",
                message: e.to_string(),
            }),
        }
    }

    /// Saves and flushes a desired set (before the MQTT message is acknowledged).
    pub fn save_desired(&self, set: &DesiredSet) -> Result<()> {
        let bytes = serde_json::to_vec(set).map_err(|e| StoreError::Encode(e.to_string()))?;
        self.meta.insert(DESIRED, bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// Assigns the next report sequence and queues the report, flushed.
    pub fn queue_status(
        &self,
        observed_generation: u64,
        full: bool,
        pods: Vec<PodStatus>,
    ) -> Result<u64> {
        let sequence = u64_of(self.meta.get(REPORT_SEQUENCE)?) + 1;
        let report = PodStatusReport {
            sequence,
            observed_generation,
            full,
            pods,
        };
        let payload = Message::from(report)
            .encode()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        self.meta.insert(REPORT_SEQUENCE, &sequence.to_be_bytes())?;
        self.push(OutboxItem {
            channel: "status".to_owned(),
            payload,
        })?;
        Ok(sequence)
    }

    pub fn queue_events(&self, report: PodEventReport) -> Result<()> {
        let payload = Message::from(report)
            .encode()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        self.push(OutboxItem {
            channel: "events".to_owned(),
            payload,
        })
    }

    fn push(&self, item: OutboxItem) -> Result<()> {
        let key = u64_of(self.meta.get(OUTBOX_NEXT)?);
        let bytes = serde_json::to_vec(&item).map_err(|e| StoreError::Encode(e.to_string()))?;
        self.outbox.insert(key.to_be_bytes(), bytes)?;
        self.meta.insert(OUTBOX_NEXT, &(key + 1).to_be_bytes())?;
        if self.outbox.len() > OUTBOX_LIMIT {
            self.drop_oldest_event()?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn drop_oldest_event(&self) -> Result<()> {
        for entry in self.outbox.iter() {
            let (k, v) = entry?;
            if let Ok(item) = serde_json::from_slice::<OutboxItem>(&v)
                && item.channel == "events"
            {
                self.outbox.remove(k)?;
                tracing::warn!("outbox full: dropped the oldest event batch");
                return Ok(());
            }
        }
        Ok(())
    }

    /// The oldest unacknowledged message.
    pub fn outbox_head(&self) -> Result<Option<(u64, OutboxItem)>> {
        while let Some((k, v)) = self.outbox.first()? {
            let key = u64_of(Some(k));
            match serde_json::from_slice(&v) {
                Ok(item) => return Ok(Some((key, item))),
                Err(e) => {
                    tracing::error!(key, error = %e, "dropping unreadable outbox entry");
                    self.outbox.remove(key.to_be_bytes())?;
                }
            }
        }
        Ok(None)
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Removes a message the broker acknowledged.
    pub fn ack(&self, key: u64) -> Result<()> {
        self.outbox.remove(key.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn survives_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LocalStore::open(dir.path()).unwrap();
            store
                .save_desired(&DesiredSet {
                    generation: 7,
                    pods: vec![],
                })
                .unwrap();
            assert_eq!(store.queue_status(7, false, vec![]).unwrap(), 1);
            store.queue_events(PodEventReport::default()).unwrap();
            assert_eq!(store.queue_status(7, true, vec![]).unwrap(), 2);
        }
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(store.desired().unwrap().generation, 7);
        let (k, first) = store.outbox_head().unwrap().unwrap();
        assert_eq!(first.channel, "status");
        store.ack(k).unwrap();
        let (k, second) = store.outbox_head().unwrap().unwrap();
        assert_eq!(second.channel, "events");
        store.ack(k).unwrap();
        let (_, third) = store.outbox_head().unwrap().unwrap();
        match Message::decode(&third.payload).unwrap() {
            Message::PodStatusReport(r) => assert_eq!((r.sequence, r.full), (2, true)),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.queue_status(7, false, vec![]).unwrap(), 3);
    }
}
