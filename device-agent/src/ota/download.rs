//! An agent update ordered over MQTT, pure: what the agent does with an order, a chunk,
//! a quiet minute or a reconnect, and what it reports. The thin async part
//! (`agent/agent_update_handling.rs`) feeds it and carries out its [`Effect`]s; the
//! files are in [`super::incoming`].
//!
//! - An order is answered from what the device already knows first: the version on trial
//!   (or staged) → `staged`; the running version → `committed`; the version the
//!   supervisor last rolled back → `rolledBack` with its reason (the device never retries
//!   by itself: the gateway decides); an agent that cannot update itself (no supervisor,
//!   no pinned key) or an order that is not valid → `failed` with why.
//! - Otherwise the binary is fetched [`WINDOW`] chunks of [`AGENT_UPDATE_CHUNK_BYTES`] at
//!   a time and appended in order to `incoming/<version>.part`, resuming from the part
//!   file's length. Only a chunk of the ordered version at the next offset, with at most
//!   the bytes asked for, is taken; everything else is refused. No chunk for
//!   [`STALL_MS`], or a reconnect: fetched again from the current offset.
//! - Complete: verified (size, SHA-256, signature) and staged by the driver, then
//!   `staged`; a verification or write failure, or a chunk with an `error`, ends the
//!   update as `failed` and removes the part file.
//! - A new order for another version replaces the download; the same order again only
//!   repeats the status.
//!
//! Progress (`downloading`) is reported when the download starts and then at most every
//! [`PROGRESS_INTERVAL_MS`] unless another [`PROGRESS_STEP_PERCENT`] of the binary came.

use std::collections::BTreeMap;

use edge_protocol::{
    AGENT_UPDATE_CHUNK_BYTES, AgentUpdateChunk, AgentUpdateFetch, AgentUpdateOrder,
    AgentUpdatePhase, AgentUpdateStatus, MAX_AGENT_BINARY_BYTES,
};

use super::signature::check_version;
use super::slots::{OtaState, Outcome, Slot};

/// Fetches outstanding at once.
pub const WINDOW: usize = 2;
/// With no chunk for this long, the fetches are sent again from the current offset.
pub const STALL_MS: u64 = 30_000;
/// Progress reports at most this often...
pub const PROGRESS_INTERVAL_MS: u64 = 5_000;
/// ...unless this much more of the binary came.
pub const PROGRESS_STEP_PERCENT: u64 = 10;
/// The health deadline of an order that names none.
pub const DEFAULT_HEALTH_DEADLINE_SECONDS: u64 = 120;
/// The length of an ed25519 signature.
const SIGNATURE_BYTES: usize = 64;
/// Longest version echoed back in a status about an order that is not valid.
const MAX_ECHOED_VERSION: usize = 64;

/// What the device knows when an order arrives (the driver reads it from the environment,
/// `state.json` and the incoming directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderContext {
    /// The version this agent reports (the slot's signed version, else the build's).
    pub running_version: String,
    /// `Err(why)` when this agent cannot update itself.
    pub capable: Result<(), String>,
    /// The version `state.json` has staged or on trial.
    pub trial_version: Option<String>,
    pub last_outcome: Option<Outcome>,
    /// Bytes already in `incoming/<version>.part` (0 without one).
    pub part_len: u64,
}

/// What the driver does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Publish on `up/agent-update`; it is also the node report's `agentUpdate` now
    /// ([`Downloader::status`]); `phase_changed`: send the node report again too.
    Status {
        status: AgentUpdateStatus,
        phase_changed: bool,
    },
    /// Publish on `up/agent-update`.
    Fetch(AgentUpdateFetch),
    /// Write `data` at `offset` of `incoming/<version>.part` (cut there first).
    Write {
        version: String,
        offset: u64,
        data: Vec<u8>,
    },
    /// The part file is complete: verify its size, SHA-256 and signature, stage it, and
    /// answer with [`Downloader::staged`] or [`Downloader::local_failure`].
    Stage(AgentUpdateOrder),
    /// Remove the part files in `incoming/`, but the one of `keep`.
    ClearIncoming { keep: Option<String> },
}

/// Why a chunk was not taken (logged by the driver; nothing else changes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkRefused {
    #[error("no agent update is being downloaded (chunk of version {version:?})")]
    NoDownload { version: String },
    #[error("chunk of version {got:?} while downloading {downloading:?}")]
    OtherVersion { got: String, downloading: String },
    #[error("chunk of version {version} after the download was complete")]
    Complete { version: String },
    #[error("chunk at offset {got}, expected {expected}")]
    UnexpectedOffset { got: u64, expected: u64 },
    #[error("empty chunk at offset {offset}")]
    Empty { offset: u64 },
    #[error("chunk of {got} bytes at offset {offset}: at most {allowed} were asked for")]
    Oversized { got: u64, allowed: u64, offset: u64 },
}

/// The download under way.
#[derive(Debug, Clone)]
struct Active {
    order: AgentUpdateOrder,
    /// Bytes written to the part file (all of `0..received`).
    received: u64,
    /// The offset the next fetch asks for.
    next_fetch: u64,
    /// Fetches sent and not answered: offset → length.
    in_flight: BTreeMap<u64, u64>,
    /// The last chunk taken, or the last time fetching (re)started.
    last_chunk_ms: u64,
    /// When the download started (the status's `since`).
    started_ms: u64,
    last_report_ms: u64,
    last_report_bytes: u64,
    /// Complete and handed to the driver for verification.
    verifying: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Downloader {
    status: Option<AgentUpdateStatus>,
    active: Option<Active>,
}

impl Downloader {
    /// A downloader whose last status is `status` (see [`status_from_state`]).
    pub fn new(status: Option<AgentUpdateStatus>) -> Self {
        Self {
            status,
            active: None,
        }
    }

    /// The last status: the node report's `agentUpdate`.
    pub fn status(&self) -> Option<&AgentUpdateStatus> {
        self.status.as_ref()
    }

    /// The version being downloaded or verified.
    pub fn downloading(&self) -> Option<&str> {
        self.active.as_ref().map(|a| a.order.version.as_str())
    }

    pub fn order(
        &mut self,
        order: AgentUpdateOrder,
        ctx: OrderContext,
        now_ms: u64,
    ) -> Vec<Effect> {
        if let Some(active) = &self.active
            && active.order == order
        {
            // the gateway asks again: tell it where the download is
            return self.status.clone().map_or_else(Vec::new, |status| {
                vec![Effect::Status {
                    status,
                    phase_changed: false,
                }]
            });
        }
        let version = order.version.clone();
        let replaced = self.active.take();
        // the same version with another digest or size: what was written is not its part
        let restart = replaced
            .as_ref()
            .is_some_and(|a| a.order.version == version);
        let replaced = replaced.is_some();
        let mut effects = Vec::new();
        let answer = if let Err(why) = validate(&order) {
            let mut echoed: String = version.chars().take(MAX_ECHOED_VERSION).collect();
            if echoed.len() < version.len() {
                echoed.push('…');
            }
            Some((echoed, AgentUpdatePhase::Failed, why))
        } else if ctx.trial_version.as_deref() == Some(version.as_str()) {
            Some((version.clone(), AgentUpdatePhase::Staged, String::new()))
        } else if ctx.running_version == version {
            Some((version.clone(), AgentUpdatePhase::Committed, String::new()))
        } else if let Some(Outcome::RolledBack {
            version: rolled_back,
            reason,
            ..
        }) = &ctx.last_outcome
            && *rolled_back == version
        {
            Some((
                version.clone(),
                AgentUpdatePhase::RolledBack,
                reason.clone(),
            ))
        } else if let Err(why) = &ctx.capable {
            Some((version.clone(), AgentUpdatePhase::Failed, why.clone()))
        } else {
            None
        };
        if let Some((version, phase, message)) = answer {
            if replaced {
                effects.push(Effect::ClearIncoming { keep: None });
            }
            let bytes = if phase == AgentUpdatePhase::Failed {
                0
            } else {
                order.size_bytes
            };
            effects.push(self.report(AgentUpdateStatus {
                version,
                phase,
                bytes_received: bytes,
                total_bytes: order.size_bytes,
                message,
                since: now_ms,
            }));
            return effects;
        }
        // a part file longer than the binary is not this binary's beginning
        let received = if ctx.part_len <= order.size_bytes && !restart {
            ctx.part_len
        } else {
            0
        };
        let total = order.size_bytes;
        effects.push(Effect::ClearIncoming {
            keep: Some(version.clone()),
        });
        self.active = Some(Active {
            order,
            received,
            next_fetch: received,
            in_flight: BTreeMap::new(),
            last_chunk_ms: now_ms,
            started_ms: now_ms,
            last_report_ms: now_ms,
            last_report_bytes: received,
            verifying: false,
        });
        effects.push(self.report(AgentUpdateStatus {
            version,
            phase: AgentUpdatePhase::Downloading,
            bytes_received: received,
            total_bytes: total,
            message: String::new(),
            since: now_ms,
        }));
        effects.extend(self.advance());
        effects
    }

    /// A chunk from the gateway.
    pub fn chunk(
        &mut self,
        chunk: AgentUpdateChunk,
        now_ms: u64,
    ) -> Result<Vec<Effect>, ChunkRefused> {
        let Some(active) = self.active.as_mut() else {
            return Err(ChunkRefused::NoDownload {
                version: chunk.version,
            });
        };
        if chunk.version != active.order.version {
            return Err(ChunkRefused::OtherVersion {
                got: chunk.version,
                downloading: active.order.version.clone(),
            });
        }
        if active.verifying {
            return Err(ChunkRefused::Complete {
                version: chunk.version,
            });
        }
        if let Some(error) = chunk.error {
            return Ok(self.fail(
                format!("the gateway does not serve the binary: {error}"),
                now_ms,
            ));
        }
        if chunk.offset != active.received {
            return Err(ChunkRefused::UnexpectedOffset {
                got: chunk.offset,
                expected: active.received,
            });
        }
        let got = chunk.data.0.len() as u64;
        let allowed = AGENT_UPDATE_CHUNK_BYTES.min(active.order.size_bytes - active.received);
        if got == 0 {
            return Err(ChunkRefused::Empty {
                offset: chunk.offset,
            });
        }
        if got > allowed {
            return Err(ChunkRefused::Oversized {
                got,
                allowed,
                offset: chunk.offset,
            });
        }
        let mut effects = vec![Effect::Write {
            version: chunk.version,
            offset: chunk.offset,
            data: chunk.data.0,
        }];
        active.received += got;
        active.last_chunk_ms = now_ms;
        let received = active.received;
        active.in_flight.retain(|offset, _| *offset >= received);
        if !active.in_flight.contains_key(&received) {
            // a shorter chunk than asked for: the fetches under way no longer line up
            active.in_flight.clear();
            active.next_fetch = received;
        }
        let total = active.order.size_bytes;
        let step = total.saturating_mul(PROGRESS_STEP_PERCENT) / 100;
        let due = now_ms.saturating_sub(active.last_report_ms) >= PROGRESS_INTERVAL_MS
            || received - active.last_report_bytes >= step.max(1);
        if due && received < total {
            active.last_report_ms = now_ms;
            active.last_report_bytes = received;
            let status = AgentUpdateStatus {
                version: active.order.version.clone(),
                phase: AgentUpdatePhase::Downloading,
                bytes_received: received,
                total_bytes: total,
                message: String::new(),
                since: active.started_ms,
            };
            effects.push(self.report(status));
        }
        effects.extend(self.advance());
        Ok(effects)
    }

    /// Time passes: a download with no chunk for [`STALL_MS`] fetches again.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        match &self.active {
            Some(a) if !a.verifying && now_ms.saturating_sub(a.last_chunk_ms) >= STALL_MS => {
                self.refetch(now_ms)
            }
            _ => Vec::new(),
        }
    }

    /// The broker connection is back: what was asked for may be lost.
    pub fn reconnected(&mut self, now_ms: u64) -> Vec<Effect> {
        self.refetch(now_ms)
    }

    /// The driver staged `version`.
    pub fn staged(&mut self, version: &str, now_ms: u64) -> Vec<Effect> {
        let Some(active) = self
            .active
            .take_if(|a| a.verifying && a.order.version == version)
        else {
            return Vec::new();
        };
        let total = active.order.size_bytes;
        vec![
            Effect::ClearIncoming { keep: None },
            self.report(AgentUpdateStatus {
                version: version.to_owned(),
                phase: AgentUpdatePhase::Staged,
                bytes_received: total,
                total_bytes: total,
                message: String::new(),
                since: now_ms,
            }),
        ]
    }

    /// Writing, verifying or staging `version` failed (why).
    pub fn local_failure(&mut self, version: &str, why: String, now_ms: u64) -> Vec<Effect> {
        if self.downloading() != Some(version) {
            return Vec::new();
        }
        self.fail(why, now_ms)
    }

    /// What `state.json` says now (see [`status_from_state`]): a version this agent
    /// reported `staged` for (it runs on trial) was committed or rolled back.
    pub fn settled(&mut self, from_state: Option<AgentUpdateStatus>) -> Vec<Effect> {
        let Some(now) = from_state else {
            return Vec::new();
        };
        // (while a download is under way, the status is that download's)
        let ours = self
            .status
            .as_ref()
            .is_some_and(|s| s.phase == AgentUpdatePhase::Staged && s.version == now.version);
        if !ours || !now.phase.is_final() {
            return Vec::new();
        }
        vec![self.report(now)]
    }

    /// The download ends as `failed`; the part file goes.
    fn fail(&mut self, message: String, now_ms: u64) -> Vec<Effect> {
        let Some(active) = self.active.take() else {
            return Vec::new();
        };
        vec![
            Effect::ClearIncoming { keep: None },
            self.report(AgentUpdateStatus {
                version: active.order.version,
                phase: AgentUpdatePhase::Failed,
                bytes_received: active.received,
                total_bytes: active.order.size_bytes,
                message,
                since: now_ms,
            }),
        ]
    }

    fn refetch(&mut self, now_ms: u64) -> Vec<Effect> {
        match self.active.as_mut() {
            Some(a) if !a.verifying => {
                a.in_flight.clear();
                a.next_fetch = a.received;
                a.last_chunk_ms = now_ms;
            }
            _ => return Vec::new(),
        }
        self.advance()
    }

    /// Fills the window of fetches, or hands a complete binary over for verification.
    fn advance(&mut self) -> Vec<Effect> {
        let Some(a) = self.active.as_mut() else {
            return Vec::new();
        };
        let total = a.order.size_bytes;
        if a.received >= total {
            a.verifying = true;
            a.in_flight.clear();
            return vec![Effect::Stage(a.order.clone())];
        }
        let mut effects = Vec::new();
        while a.in_flight.len() < WINDOW && a.next_fetch < total {
            let length = AGENT_UPDATE_CHUNK_BYTES.min(total - a.next_fetch);
            a.in_flight.insert(a.next_fetch, length);
            effects.push(Effect::Fetch(AgentUpdateFetch {
                version: a.order.version.clone(),
                offset: a.next_fetch,
                length,
            }));
            a.next_fetch += length;
        }
        effects
    }

    fn report(&mut self, status: AgentUpdateStatus) -> Effect {
        let phase_changed = self
            .status
            .as_ref()
            .is_none_or(|s| s.phase != status.phase || s.version != status.version);
        self.status = Some(status.clone());
        Effect::Status {
            status,
            phase_changed,
        }
    }
}

/// An order the device can act on: a version that may be a file name, a SHA-256 in
/// lowercase hex, a size within [`MAX_AGENT_BINARY_BYTES`], a 64-byte signature.
fn validate(order: &AgentUpdateOrder) -> Result<(), String> {
    check_version(&order.version).map_err(|e| format!("the order is not valid: {e}"))?;
    let hex = order.sha256.len() == 64
        && order
            .sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err("the order is not valid: its sha256 is not 64 lowercase hex digits".into());
    }
    if order.size_bytes == 0 || order.size_bytes > MAX_AGENT_BINARY_BYTES {
        return Err(format!(
            "the order is not valid: a binary of {} bytes (1 to {MAX_AGENT_BINARY_BYTES} allowed)",
            order.size_bytes
        ));
    }
    if order.signature.0.len() != SIGNATURE_BYTES {
        return Err(format!(
            "the order is not valid: its signature has {} bytes, not {SIGNATURE_BYTES}",
            order.signature.0.len()
        ));
    }
    Ok(())
}

/// The health deadline an order asks for (0: the default).
pub fn health_deadline_seconds(order: &AgentUpdateOrder) -> u64 {
    match order.health_deadline_seconds {
        0 => DEFAULT_HEALTH_DEADLINE_SECONDS,
        s => u64::from(s),
    }
}

/// The status `state.json` implies, for an agent that starts or watches it: a trial
/// staged or running → `staged`; else the last outcome → `committed` or `rolledBack`
/// (with the supervisor's reason); nothing recorded → none. The byte counts are the size
/// of the slot holding the version (`slot_bytes`), 0 for a rolled back one.
pub fn status_from_state(
    state: &OtaState,
    now_ms: u64,
    slot_bytes: impl Fn(Slot) -> Option<u64>,
) -> Option<AgentUpdateStatus> {
    let (version, phase, message, since, bytes) = match (&state.trial, &state.last_outcome) {
        (Some(trial), _) => (
            trial.version.clone(),
            AgentUpdatePhase::Staged,
            String::new(),
            trial.started_at_ms.unwrap_or(now_ms),
            slot_bytes(trial.slot),
        ),
        (None, Some(Outcome::Committed { version, at_ms })) => (
            version.clone(),
            AgentUpdatePhase::Committed,
            String::new(),
            *at_ms,
            (state.current_version.as_ref() == Some(version))
                .then(|| slot_bytes(state.current))
                .flatten(),
        ),
        (
            None,
            Some(Outcome::RolledBack {
                version,
                reason,
                at_ms,
            }),
        ) => (
            version.clone(),
            AgentUpdatePhase::RolledBack,
            reason.clone(),
            *at_ms,
            None,
        ),
        (None, None) => return None,
    };
    let bytes = bytes.unwrap_or(0);
    Some(AgentUpdateStatus {
        version,
        phase,
        bytes_received: bytes,
        total_bytes: bytes,
        message,
        since,
    })
}

#[cfg(test)]
mod tests;
