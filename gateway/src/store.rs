//! The gateway's sled store: per-device desired sets and acknowledged generations.
//!
//! Layout: tree `devices`, key = device id, value = JSON [`PersistedDevice`]. Writes
//! are applied in order under the fleet lock and flushed (group commit) before anything
//! that depends on them is sent to a device.

use std::path::Path;

use edge_protocol::{DeviceId, NodeReport};

use crate::device_sync::PersistedDevice;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the store at {path}: {source} (is another gateway using this --store-dir?)"
    )]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error("store I/O failed: {0}")]
    Io(#[from] sled::Error),
    #[error("stored record of device {device} is corrupt: {error}")]
    Corrupt { device: String, error: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    devices: sled::Tree,
    reports: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store under `<store_dir>/state`.
    pub fn open(store_dir: &Path) -> Result<Self> {
        let path = store_dir.join("state");
        let db = sled::open(&path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        let devices = db.open_tree("devices")?;
        let reports = db.open_tree("node_reports")?;
        Ok(Self {
            db,
            devices,
            reports,
        })
    }

    /// Every stored device. Corrupt records are returned as errors next to the good ones.
    pub fn load_devices(&self) -> Vec<Result<(DeviceId, PersistedDevice)>> {
        self.devices
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                let key = String::from_utf8_lossy(&k).into_owned();
                let device = DeviceId::new(key.clone()).map_err(|e| StoreError::Corrupt {
                    device: key.clone(),
                    error: e.to_string(),
                })?;
                let record = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    device: key,
                    error: e.to_string(),
                })?;
                Ok((device, record))
            })
            .collect()
    }

    /// Writes a record (not yet flushed: call [`Store::flush`] before relying on it).
    pub fn put_device(&self, device: &DeviceId, record: &PersistedDevice) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(|e| StoreError::Corrupt {
            device: device.to_string(),
            error: e.to_string(),
        })?;
        self.devices.insert(device.as_str().as_bytes(), bytes)?;
        Ok(())
    }

    /// The last hello of every device (so a restarted gateway can keep nodes fresh
    /// before devices reconnect). Corrupt entries are skipped.
    pub fn load_reports(&self) -> std::collections::HashMap<DeviceId, NodeReport> {
        self.reports
            .iter()
            .filter_map(|e| e.ok())
            .filter_map(|(k, v)| {
                let id = DeviceId::new(String::from_utf8_lossy(&k).into_owned()).ok()?;
                Some((id, serde_json::from_slice(&v).ok()?))
            })
            .collect()
    }

    pub fn put_report(&self, device: &DeviceId, report: &NodeReport) -> Result<()> {
        let bytes = serde_json::to_vec(report).map_err(|e| StoreError::Corrupt {
            device: device.to_string(),
            error: e.to_string(),
        })?;
        self.reports.insert(device.as_str().as_bytes(), bytes)?;
        Ok(())
    }

    /// Durably writes everything written so far.
    pub async fn flush(&self) -> Result<()> {
        self.db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_protocol::{DesiredSet, PodSpec};

    #[tokio::test]
    async fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = DeviceId::new("pi-01").unwrap();
        let rec = PersistedDevice {
            desired: DesiredSet {
                generation: 4,
                pods: vec![PodSpec {
                    uid: "u".into(),
                    ..Default::default()
                }],
            },
            acked_generation: 3,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_device(&id, &rec).unwrap();
            store.flush().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let loaded: Vec<_> = store
            .load_devices()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(loaded, vec![(id, rec)]);
    }
}
