//! The slot directory of agent updates: two slots `bin/a` and `bin/b` beside the
//! installed binary, and `state.json`, which names the current slot, the version on
//! trial and the last outcome. `current` only changes when a trial is committed, so a
//! device that loses power during a trial comes back on the previous agent.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::signature::{self, PinnedKey, SignatureError};

/// Where an agent binary lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    /// The binary the supervisor was started from (the package's or the image's).
    #[default]
    Installed,
    A,
    B,
}

impl Slot {
    /// The slot a new version goes to: the one not current.
    pub fn inactive(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::Installed | Slot::B => Slot::A,
        }
    }

    fn file_name(self) -> Option<&'static str> {
        match self {
            Slot::Installed => None,
            Slot::A => Some("a"),
            Slot::B => Some("b"),
        }
    }
}

/// A verified version waiting for, or on, its trial run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub slot: Slot,
    pub version: String,
    pub sha256: String,
    /// How long the new agent has to report healthy.
    pub deadline_seconds: u64,
    /// Set when the supervisor started it (Unix ms); `None` while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
}

/// How the last trial ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Outcome {
    Committed {
        version: String,
        at_ms: u64,
    },
    RolledBack {
        version: String,
        reason: String,
        at_ms: u64,
    },
}

/// The content of `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OtaState {
    pub current: Slot,
    /// The version in the current slot (`None` for the installed binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<Trial>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<Outcome>,
}

impl OtaState {
    /// The signed version in `slot`: the trial's in the trial's slot, the current one's
    /// in the current slot; `None` for the installed binary (no recorded version).
    pub fn slot_version(&self, slot: Slot) -> Option<&str> {
        if let Some(trial) = self.trial.as_ref().filter(|t| t.slot == slot) {
            return Some(&trial.version);
        }
        (slot == self.current && slot != Slot::Installed)
            .then_some(self.current_version.as_deref())
            .flatten()
    }

    /// A staged version the supervisor has not started yet.
    pub fn pending_trial(&self) -> Option<&Trial> {
        self.trial.as_ref().filter(|t| t.started_at_ms.is_none())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid OTA state file: {source}")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(
        "version {version} is on trial right now; stage another once it is committed or rolled back"
    )]
    TrialRunning { version: String },
    #[error(
        "no OTA public key is pinned on this device ({path} is missing): agent updates are refused; enroll again with a gateway that has an OTA signing key, or install the key"
    )]
    NoPinnedKey { path: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SlotError + '_ {
    move |source| SlotError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The slot directory (`/var/lib/edge-agent/ota` by default).
#[derive(Debug, Clone)]
pub struct SlotDir {
    root: PathBuf,
}

impl SlotDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// The file a healthy agent creates.
    pub fn health_file(&self) -> PathBuf {
        self.root.join("healthy")
    }

    /// The binary of a slot; `installed` is the supervisor's own executable.
    pub fn binary(&self, slot: Slot, installed: &Path) -> PathBuf {
        match slot.file_name() {
            Some(name) => self.root.join("bin").join(name),
            None => installed.to_owned(),
        }
    }

    /// The state; a directory without one is on the installed binary.
    pub fn load(&self) -> Result<OtaState, SlotError> {
        let path = self.state_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| SlotError::Corrupt {
                path: path.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OtaState::default()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Writes the state atomically (temporary file, fsync, rename, fsync of the directory).
    pub fn save(&self, state: &OtaState) -> Result<(), SlotError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let path = self.state_path();
        let tmp = self.root.join("state.json.tmp");
        let bytes = serde_json::to_vec_pretty(state).map_err(|source| SlotError::Corrupt {
            path: path.display().to_string(),
            source,
        })?;
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.root)
    }

    /// Copies `binary` into the inactive slot, verifies the copy (digest and signature
    /// with the pinned key), and records it as the trial the supervisor starts next.
    pub fn stage(
        &self,
        key_path: &Path,
        version: &str,
        binary: &Path,
        signature: &[u8],
        deadline_seconds: u64,
    ) -> Result<Trial, SlotError> {
        if !key_path.exists() {
            return Err(SlotError::NoPinnedKey {
                path: key_path.display().to_string(),
            });
        }
        let key = PinnedKey::read(key_path)?;
        signature::check_version(version)?;
        let mut state = self.load()?;
        if let Some(trial) = state.trial.as_ref().filter(|t| t.started_at_ms.is_some()) {
            return Err(SlotError::TrialRunning {
                version: trial.version.clone(),
            });
        }
        let slot = state.current.inactive();
        let bin_dir = self.root.join("bin");
        std::fs::create_dir_all(&bin_dir).map_err(io(&bin_dir))?;
        let target = self.binary(slot, binary);
        let staging = bin_dir.join("staging");
        std::fs::copy(binary, &staging).map_err(io(&staging))?;
        // what is verified is the copy that will run
        let sha256 = match signature::verify_file(&key, version, &staging, signature) {
            Ok(digest) => digest,
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                return Err(e.into());
            }
        };
        let file = std::fs::File::open(&staging).map_err(io(&staging))?;
        file.sync_all().map_err(io(&staging))?;
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o755))
            .map_err(io(&staging))?;
        std::fs::rename(&staging, &target).map_err(io(&target))?;
        sync_dir(&bin_dir)?;
        let trial = Trial {
            slot,
            version: version.to_owned(),
            sha256,
            deadline_seconds,
            started_at_ms: None,
        };
        state.trial = Some(trial.clone());
        self.save(&state)?;
        Ok(trial)
    }
}

fn sync_dir(dir: &Path) -> Result<(), SlotError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests;
