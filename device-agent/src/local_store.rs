//! The agent's local store under `<state_dir>/store`: the desired set, the per-device
//! report sequence, and the outbox of reliable uplink messages (status reports and
//! events) not yet acknowledged by the broker.
//!
//! Plain files, each written atomically (temporary file, fsync, rename, fsync of the
//! directory) before anything that depends on it is acknowledged or published, readable
//! by the agent's user only (mode 0600: desired and pre-pull sets carry registry
//! credentials). (sled,
//! the first choice, allocates about 21 MiB of static metric histograms at open, twice
//! the agent's whole memory budget.) An exclusive lock keeps a second agent off the
//! same state directory.
//!
//! ```text
//! store/lock                    flock()ed while the agent runs
//! store/desired.json            the last desired set
//! store/prepull.json            the last image pre-pull set
//! store/sequence                the last report sequence
//! store/outbox/<20 digits>.json one message each, sent in key order
//! ```

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use edge_protocol::{
    DesiredSet, ImagePrepullSet, Message, PodEventReport, PodStatus, PodStatusReport, UpChannel,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "local store {path} is in use by another edge-agent (two agents must not share a state dir)"
    )]
    Locked { path: PathBuf },
    #[error("local store holds an unreadable {what}: {message}")]
    Corrupt { what: &'static str, message: String },
    #[error("encoding {0}")]
    Encode(String),
    #[error(
        "the local store's {what} reached {value} and cannot grow further; stop the agent, \
         move {path} away (pods are adopted again on start) and start it again"
    )]
    Exhausted {
        what: &'static str,
        value: u64,
        path: PathBuf,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The outbox keeps at most this many messages; the oldest events go first.
const OUTBOX_LIMIT: usize = 20_000;

/// A reliable uplink message waiting for the broker's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// `status` or `events`.
    pub channel: String,
    #[serde(with = "payload_text")]
    pub payload: Vec<u8>,
}

/// Payloads are JSON envelopes: store them as text, not as arrays of numbers.
mod payload_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(String::deserialize(d)?.into_bytes())
    }
}

impl OutboxItem {
    pub fn up_channel(&self) -> UpChannel {
        match self.channel.as_str() {
            "events" => UpChannel::Events,
            _ => UpChannel::Status,
        }
    }
}

#[derive(Debug)]
struct Inner {
    sequence: u64,
    keys: BTreeSet<u64>,
    next_key: u64,
}

/// Cheap to clone; all clones share the same files and counters.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    outbox: PathBuf,
    inner: Arc<Mutex<Inner>>,
    _lock: Arc<File>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `bytes` to `path` atomically and durably, mode 0600.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    // a temporary file left by a crash may have another mode: start afresh
    let _ = fs::remove_file(&tmp);
    {
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    #[cfg(test)]
    tests::SYNCED_DIRS.with(|s| s.borrow_mut().push(dir.to_owned()));
    Ok(())
}

fn key_path(outbox: &Path, key: u64) -> PathBuf {
    outbox.join(format!("{key:020}.json"))
}

impl LocalStore {
    pub fn open(dir: &Path) -> Result<Self> {
        let outbox = dir.join("outbox");
        fs::create_dir_all(&outbox).map_err(io(&outbox))?;
        let lock_path = dir.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| StoreError::Locked {
                path: dir.to_owned(),
            },
        )?;
        let seq_path = dir.join("sequence");
        let mut sequence = match fs::read_to_string(&seq_path) {
            Ok(text) => text.trim().parse().map_err(|_| StoreError::Corrupt {
                what: "report sequence",
                message: format!("{text:?} in {}", seq_path.display()),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&seq_path)(e)),
        };
        let mut keys = BTreeSet::new();
        for entry in fs::read_dir(&outbox).map_err(io(&outbox))? {
            let path = entry.map_err(io(&outbox))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(key) = name
                .strip_suffix(".json")
                .and_then(|k| k.parse::<u64>().ok())
            {
                // A report queued just before a crash may be newer than the counter.
                if let Ok(bytes) = fs::read(&path)
                    && let Ok(item) = serde_json::from_slice::<OutboxItem>(&bytes)
                    && let Ok(Message::PodStatusReport(r)) = Message::decode(&item.payload)
                {
                    sequence = sequence.max(r.sequence);
                }
                keys.insert(key);
            } else if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
            }
        }
        // u64::MAX (only from a damaged or hostile file name) is refused on the next push.
        let next_key = keys.last().map_or(0, |k| k.saturating_add(1));
        Ok(Self {
            dir: dir.to_owned(),
            outbox,
            inner: Arc::new(Mutex::new(Inner {
                sequence,
                keys,
                next_key,
            })),
            _lock: Arc::new(lock),
        })
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The desired set last received (empty when none).
    pub fn desired(&self) -> Result<DesiredSet> {
        let path = self.dir.join("desired.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                what: "desired set",
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DesiredSet::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Saves a desired set durably (before the MQTT message is acknowledged).
    pub fn save_desired(&self, set: &DesiredSet) -> Result<()> {
        let bytes = serde_json::to_vec(set).map_err(|e| StoreError::Encode(e.to_string()))?;
        write_atomic(&self.dir.join("desired.json"), &bytes)
    }

    /// The image pre-pull set last accepted (`None` when none ever was).
    pub fn prepull_set(&self) -> Result<Option<ImagePrepullSet>> {
        let path = self.dir.join("prepull.json");
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        what: "image pre-pull set",
                        message: e.to_string(),
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Saves an image pre-pull set durably (it replaces the previous one).
    pub fn save_prepull_set(&self, set: &ImagePrepullSet) -> Result<()> {
        let bytes = serde_json::to_vec(set).map_err(|e| StoreError::Encode(e.to_string()))?;
        write_atomic(&self.dir.join("prepull.json"), &bytes)
    }

    /// Assigns the next report sequence and queues the report durably.
    pub fn queue_status(
        &self,
        observed_generation: u64,
        full: bool,
        pods: Vec<PodStatus>,
    ) -> Result<u64> {
        let mut inner = self.inner();
        let sequence = inner
            .sequence
            .checked_add(1)
            .ok_or_else(|| StoreError::Exhausted {
                what: "report sequence",
                value: inner.sequence,
                path: self.dir.clone(),
            })?;
        let payload = Message::from(PodStatusReport {
            sequence,
            observed_generation,
            full,
            pods,
        })
        .encode()
        .map_err(|e| StoreError::Encode(e.to_string()))?;
        self.push(
            &mut inner,
            OutboxItem {
                channel: "status".to_owned(),
                payload,
            },
        )?;
        inner.sequence = sequence;
        write_atomic(&self.dir.join("sequence"), sequence.to_string().as_bytes())?;
        Ok(sequence)
    }

    pub fn queue_events(&self, report: PodEventReport) -> Result<()> {
        let payload = Message::from(report)
            .encode()
            .map_err(|e| StoreError::Encode(e.to_string()))?;
        let mut inner = self.inner();
        self.push(
            &mut inner,
            OutboxItem {
                channel: "events".to_owned(),
                payload,
            },
        )
    }

    fn push(&self, inner: &mut Inner, item: OutboxItem) -> Result<()> {
        let key = inner.next_key;
        let next_key = key.checked_add(1).ok_or_else(|| StoreError::Exhausted {
            what: "outbox key",
            value: key,
            path: self.dir.clone(),
        })?;
        let bytes = serde_json::to_vec(&item).map_err(|e| StoreError::Encode(e.to_string()))?;
        write_atomic(&key_path(&self.outbox, key), &bytes)?;
        inner.next_key = next_key;
        inner.keys.insert(key);
        if inner.keys.len() > OUTBOX_LIMIT {
            self.drop_oldest_event(inner)?;
        }
        Ok(())
    }

    fn drop_oldest_event(&self, inner: &mut Inner) -> Result<()> {
        let found = inner.keys.iter().copied().find(|k| {
            fs::read(key_path(&self.outbox, *k))
                .ok()
                .and_then(|b| serde_json::from_slice::<OutboxItem>(&b).ok())
                .is_some_and(|i| i.channel == "events")
        });
        if let Some(key) = found {
            tracing::warn!("outbox full: dropped the oldest event batch");
            self.remove(inner, key)?;
        }
        Ok(())
    }

    fn remove(&self, inner: &mut Inner, key: u64) -> Result<()> {
        let path = key_path(&self.outbox, key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&path)(e)),
            _ => {}
        }
        inner.keys.remove(&key);
        // Durably gone: an acknowledged entry must not come back after a power cut.
        sync_dir(&self.outbox)
    }

    /// The oldest unacknowledged message.
    pub fn outbox_head(&self) -> Result<Option<(u64, OutboxItem)>> {
        let mut inner = self.inner();
        while let Some(key) = inner.keys.first().copied() {
            let path = key_path(&self.outbox, key);
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<OutboxItem>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(item) => return Ok(Some((key, item))),
                Err(e) => {
                    tracing::error!(key, error = %e, "dropping unreadable outbox entry");
                    self.remove(&mut inner, key)?;
                }
            }
        }
        Ok(None)
    }

    pub fn outbox_len(&self) -> usize {
        self.inner().keys.len()
    }

    /// Removes a message the broker acknowledged.
    pub fn ack(&self, key: u64) -> Result<()> {
        let mut inner = self.inner();
        self.remove(&mut inner, key)
    }
}

#[cfg(test)]
mod tests;
