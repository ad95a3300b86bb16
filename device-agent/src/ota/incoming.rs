//! `incoming/` under the OTA directory: the binary of an ordered version as it is
//! downloaded (`<version>.part`, appended in order, kept across agent restarts so a
//! download resumes), and its verification and staging once complete. The signature is
//! checked by [`SlotDir::stage`] on the copy that will run, as for `edge-agent ota stage`.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use edge_protocol::AgentUpdateOrder;

use super::download::health_deadline_seconds;
use super::signature::{self, SignatureError};
use super::slots::{SlotDir, SlotError, Trial};

#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the downloaded binary has {got} bytes, the order says {ordered}")]
    Size { got: u64, ordered: u64 },
    #[error(
        "the downloaded binary's SHA-256 is {got}, the order says {ordered} (corrupted in transit or a wrong order)"
    )]
    Digest { got: String, ordered: String },
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    Slots(#[from] SlotError),
}

/// The `incoming/` directory.
#[derive(Debug, Clone)]
pub struct Incoming {
    dir: PathBuf,
}

impl Incoming {
    /// `incoming/` under the OTA directory `ota_dir`.
    pub fn new(ota_dir: &Path) -> Self {
        Self {
            dir: ota_dir.join("incoming"),
        }
    }

    /// The part file of `version` (a version that passed
    /// [`signature::check_version`], so a plain file name).
    pub fn part(&self, version: &str) -> PathBuf {
        self.dir.join(format!("{version}.part"))
    }

    /// Bytes already downloaded of `version` (0 without a part file, or for a version
    /// that is not a valid file name).
    pub fn part_len(&self, version: &str) -> u64 {
        if signature::check_version(version).is_err() {
            return 0;
        }
        std::fs::metadata(self.part(version)).map_or(0, |m| m.len())
    }

    /// Writes `data` at `offset` of the part file of `version`, cutting it there first.
    pub fn write_at(&self, version: &str, offset: u64, data: &[u8]) -> Result<(), IncomingError> {
        signature::check_version(version)?;
        let path = self.part(version);
        let io = |source| IncomingError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        file.set_len(offset).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        file.write_all(data).map_err(io)
    }

    /// Removes the part files but the one of `keep`; failures are logged.
    pub fn clear(&self, keep: Option<&str>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let keep = keep.map(|v| format!("{v}.part"));
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.ends_with(".part") || keep.as_deref() == Some(name.as_ref()) {
                continue;
            }
            if let Err(e) = std::fs::remove_file(entry.path()) {
                tracing::warn!(error = %e, file = %entry.path().display(), "cannot remove a partial agent download");
            }
        }
    }

    /// Checks the complete part file of `order` (size, SHA-256) and stages it: copied into
    /// the inactive slot, the copy's signature verified with the pinned key at
    /// `public_key`, recorded as the trial the supervisor starts next.
    pub fn verify_and_stage(
        &self,
        slots: &SlotDir,
        public_key: &Path,
        order: &AgentUpdateOrder,
    ) -> Result<Trial, IncomingError> {
        signature::check_version(&order.version)?;
        let part = self.part(&order.version);
        let got = std::fs::metadata(&part)
            .map_err(|source| IncomingError::Io {
                path: part.display().to_string(),
                source,
            })?
            .len();
        if got != order.size_bytes {
            return Err(IncomingError::Size {
                got,
                ordered: order.size_bytes,
            });
        }
        let digest = signature::sha256_file(&part)?;
        if digest != order.sha256 {
            return Err(IncomingError::Digest {
                got: digest,
                ordered: order.sha256.clone(),
            });
        }
        Ok(slots.stage(
            public_key,
            &order.version,
            &part,
            order.signature.as_slice(),
            health_deadline_seconds(order),
        )?)
    }
}

#[cfg(test)]
mod tests;
