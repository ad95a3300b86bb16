//! The gateway's sled store: per-device desired sets and acknowledged generations.
//!
//! Layout: tree `devices`, key = device id, value = JSON [`PersistedDevice`]; tree
//! `log_tails`: the offline log cache ([`crate::log_cache`]), key =
//! `device/pod uid/container`, value = JSON of its cached tail. Writes
//! are applied in order by the fleet's runner and flushed (group commit) before anything
//! that depends on them is sent to a device.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    #[error("store writes are failing (injected fault)")]
    InjectedFault,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// `--store-dir`, the same flag in every `edge-gateway` command that reads or writes the
/// gateway's state (flattened into their clap arguments).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct StoreDirArg {
    /// Directory for the gateway's state: the sled store (state/), the generated kubelet
    /// TLS certificate (kubelet-tls/), and in <STORE_DIR>/enrollment/ the fleet CA
    /// (created there on first use), the enrollment records and the revocation list
    /// (revoked.txt).
    #[arg(
        long,
        value_name = "STORE_DIR",
        env = "EDGE_GATEWAY_STORE_DIR",
        default_value = "/var/lib/edge-gateway"
    )]
    pub store_dir: PathBuf,
}

/// Handle to the store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    devices: sled::Tree,
    reports: sled::Tree,
    log_tails: sled::Tree,
    /// Fault injection for tests of the failure paths: writes and flushes fail while set.
    failing: Arc<AtomicBool>,
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
        let log_tails = db.open_tree("log_tails")?;
        Ok(Self {
            db,
            devices,
            reports,
            log_tails,
            failing: Arc::new(AtomicBool::new(false)),
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
        self.check_fault()?;
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

    /// Makes every following write and flush fail (`true`) or work again (`false`), as a
    /// full or broken disk would: for tests of what the gateway does then.
    pub fn inject_write_failures(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check_fault(&self) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::InjectedFault);
        }
        Ok(())
    }

    /// Forgets a device (revoked, or its Node turned out not to be ours).
    pub fn remove_device(&self, device: &DeviceId) -> Result<()> {
        self.check_fault()?;
        self.devices.remove(device.as_str().as_bytes())?;
        self.reports.remove(device.as_str().as_bytes())?;
        Ok(())
    }

    pub fn put_report(&self, device: &DeviceId, report: &NodeReport) -> Result<()> {
        self.check_fault()?;
        let bytes = serde_json::to_vec(report).map_err(|e| StoreError::Corrupt {
            device: device.to_string(),
            error: e.to_string(),
        })?;
        self.reports.insert(device.as_str().as_bytes(), bytes)?;
        Ok(())
    }

    /// Writes one entry of the offline log cache (flushed with the next flush, or by
    /// sled within half a second).
    pub fn put_log_tail(&self, key: &str, value: &[u8]) -> Result<()> {
        self.check_fault()?;
        self.log_tails.insert(key.as_bytes(), value)?;
        Ok(())
    }

    pub fn remove_log_tail(&self, key: &str) -> Result<()> {
        self.check_fault()?;
        self.log_tails.remove(key.as_bytes())?;
        Ok(())
    }

    /// Every entry of the offline log cache (unreadable ones skipped).
    pub fn load_log_tails(&self) -> Vec<(String, Vec<u8>)> {
        self.log_tails
            .iter()
            .filter_map(|e| e.ok())
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            .collect()
    }

    /// Durably writes everything written so far.
    pub async fn flush(&self) -> Result<()> {
        self.check_fault()?;
        self.db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
