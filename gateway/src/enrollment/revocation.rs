//! The revocation list: `<store-dir>/enrollment/revoked.txt`, one device id per line.
//!
//! The gateway refuses a revoked device at hello (through [`CachedRevocationList`], which
//! re-reads the file only when it changed), and `broker-config` puts the device's certificates on the broker's
//! CRL so it cannot even connect. Blank lines and `#` comments are allowed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use edge_protocol::DeviceId;

use super::error::{EnrollmentError, Result};
use super::layout::EnrollmentLayout;
use super::private_file::{create_dir, write_public};

/// The set of revoked device ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    ids: BTreeSet<DeviceId>,
}

impl RevocationList {
    /// Loads `<store_dir>/enrollment/revoked.txt`; a missing file is an empty list.
    /// A line that is not a valid device id is an error (never silently ignored).
    pub fn load(store_dir: impl AsRef<Path>) -> Result<Self> {
        let path = EnrollmentLayout::new(store_dir).revoked_list();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(EnrollmentError::io("read", &path)(e)),
        };
        let mut ids = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = DeviceId::new(line).map_err(|e| EnrollmentError::BadRevocationList {
                path: path.clone(),
                line: n + 1,
                reason: e.to_string(),
            })?;
            ids.insert(id);
        }
        Ok(Self { ids })
    }

    /// Whether `id` is revoked.
    pub fn contains(&self, id: &DeviceId) -> bool {
        self.ids.contains(id)
    }

    /// Adds `id`; returns false if it was already there.
    pub fn insert(&mut self, id: DeviceId) -> bool {
        self.ids.insert(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &DeviceId> {
        self.ids.iter()
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Writes the list back to `<store_dir>/enrollment/revoked.txt` (atomically).
    pub fn save(&self, store_dir: impl AsRef<Path>) -> Result<()> {
        let layout = EnrollmentLayout::new(store_dir);
        create_dir(layout.root(), 0o700)?;
        let mut text = String::from("# revoked device ids, one per line (edge-gateway revoke)\n");
        for id in &self.ids {
            text.push_str(id.as_str());
            text.push('\n');
        }
        write_public(&layout.revoked_list(), text.as_bytes())
    }
}

/// The revocation list as the gateway checks it at every hello: re-read only when the
/// file changed (modification time or length), so a fleet reconnecting at once costs
/// a `stat` per hello instead of a read and parse. `edge-gateway revoke` takes effect at
/// the next hello, as before.
#[derive(Debug)]
pub struct CachedRevocationList {
    store_dir: PathBuf,
    cached: Mutex<Option<(FileStamp, Arc<RevocationList>)>>,
}

/// Modification time and length of the list file; `None` when there is no file.
type FileStamp = Option<(SystemTime, u64)>;

impl CachedRevocationList {
    pub fn new(store_dir: impl Into<PathBuf>) -> Self {
        Self {
            store_dir: store_dir.into(),
            cached: Mutex::new(None),
        }
    }

    /// Whether `id` is revoked. An unreadable or invalid list is an error (never cached).
    pub fn contains(&self, id: &DeviceId) -> Result<bool> {
        Ok(self.current()?.contains(id))
    }

    /// The list as the file holds it now (re-read only when the file changed).
    pub fn current(&self) -> Result<Arc<RevocationList>> {
        let path = EnrollmentLayout::new(&self.store_dir).revoked_list();
        let stamp = match std::fs::metadata(&path) {
            Ok(m) => Some((
                m.modified().map_err(EnrollmentError::io("stat", &path))?,
                m.len(),
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(EnrollmentError::io("stat", &path)(e)),
        };
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, list)) = cached.as_ref()
            && *seen == stamp
        {
            return Ok(list.clone());
        }
        let list = Arc::new(RevocationList::load(&self.store_dir)?);
        *cached = Some((stamp, list.clone()));
        Ok(list)
    }
}

#[cfg(test)]
mod tests;
