//! The node-level resource settings, validated: container log rotation, hard eviction
//! thresholds and how often they are checked, the file systems measured, and image
//! garbage collection (the kubelet's `containerLogMaxSize`, `--eviction-hard`,
//! `imageGCHighThresholdPercent`, ...).

use std::path::PathBuf;
use std::time::Duration;

use crate::image_gc::GcPolicy;
use crate::node_pressure::{
    DEFAULT_EVICTION_HARD, DEFAULT_PRESSURE_TRANSITION_PERIOD, EvictionThresholds, ThresholdError,
    parse_quantity,
};

/// The kubelet's `containerLogMaxSize` (10Mi) and `containerLogMaxFiles` (5).
pub const DEFAULT_CONTAINER_LOG_MAX_BYTES: u64 = 10 << 20;
pub const DEFAULT_CONTAINER_LOG_MAX_FILES: u32 = 5;
/// How often the eviction manager measures (the kubelet's housekeeping interval, 10 s).
pub const DEFAULT_EVICTION_MONITORING_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
    #[error("container_log_max_size {0:?} is not a quantity like 10Mi")]
    LogSize(String),
    #[error("container_log_max_files must be at least 1 (got {0})")]
    LogFiles(u32),
    #[error("image GC thresholds must satisfy 0 <= low ({low}) <= high ({high}) <= 100")]
    GcThresholds { low: u8, high: u8 },
    #[error("{what} must be a positive number of seconds")]
    Seconds { what: &'static str },
}

/// Container log rotation through the runtime's log driver options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    pub max_size_bytes: u64,
    pub max_files: u32,
}

impl LogRotation {
    /// The Engine API's `HostConfig.LogConfig`: the `json-file` driver (Podman's
    /// `k8s-file`) with `max-size` and `max-file`. Podman 4 takes `max-size` only: it
    /// keeps one file and truncates it at that size.
    pub fn engine_log_config(&self) -> bollard::models::HostConfigLogConfig {
        bollard::models::HostConfigLogConfig {
            typ: Some("json-file".to_owned()),
            config: Some(std::collections::HashMap::from([
                ("max-size".to_owned(), self.max_size_bytes.to_string()),
                ("max-file".to_owned(), self.max_files.to_string()),
            ])),
        }
    }
}

/// The validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourcePolicy {
    /// `None`: the runtime's own log settings.
    pub log_rotation: Option<LogRotation>,
    pub eviction_hard: EvictionThresholds,
    /// `None`: nothing measured, no conditions, no eviction, no image GC.
    pub monitoring_interval: Option<Duration>,
    pub pressure_transition_period: Duration,
    /// The node filesystem measured for `nodefs.*` (default: the state directory).
    pub nodefs_path: Option<PathBuf>,
    /// The image filesystem measured for `imagefs.*` and image GC (default: the
    /// runtime's data root).
    pub imagefs_path: Option<PathBuf>,
    pub image_gc: GcPolicy,
}

/// The raw settings: the `[resources]` table of the file, flags and environment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResourcePolicy {
    pub container_log_max_size: Option<String>,
    pub container_log_max_files: Option<u32>,
    pub eviction_hard: Option<String>,
    pub eviction_monitoring_interval_seconds: Option<f64>,
    pub eviction_pressure_transition_period_seconds: Option<f64>,
    pub nodefs_path: Option<PathBuf>,
    pub imagefs_path: Option<PathBuf>,
    pub image_gc_high_threshold_percent: Option<u8>,
    pub image_gc_low_threshold_percent: Option<u8>,
    pub image_minimum_gc_age_seconds: Option<f64>,
}

impl ResourcePolicy {
    pub fn from_raw(raw: &RawResourcePolicy) -> Result<Self, PolicyError> {
        let log_rotation = match raw.container_log_max_size.as_deref().map(str::trim) {
            Some("0") => None,
            size => {
                let max_size_bytes = match size {
                    None => DEFAULT_CONTAINER_LOG_MAX_BYTES,
                    Some(s) => parse_quantity(s)
                        .filter(|b| *b > 0)
                        .ok_or_else(|| PolicyError::LogSize(s.to_owned()))?,
                };
                let max_files = raw
                    .container_log_max_files
                    .unwrap_or(DEFAULT_CONTAINER_LOG_MAX_FILES);
                if max_files == 0 {
                    return Err(PolicyError::LogFiles(max_files));
                }
                Some(LogRotation {
                    max_size_bytes,
                    max_files,
                })
            }
        };
        let eviction_hard = EvictionThresholds::parse(
            raw.eviction_hard
                .as_deref()
                .unwrap_or(DEFAULT_EVICTION_HARD),
        )?;
        let monitoring_interval = match raw.eviction_monitoring_interval_seconds {
            None => Some(DEFAULT_EVICTION_MONITORING_INTERVAL),
            Some(0.0) => None,
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
            Some(_) => {
                return Err(PolicyError::Seconds {
                    what: "eviction_monitoring_interval_seconds",
                });
            }
        };
        let seconds = |v: Option<f64>, default: Duration, what| match v {
            None => Ok(default),
            Some(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
            Some(_) => Err(PolicyError::Seconds { what }),
        };
        let defaults = GcPolicy::default();
        let high = raw
            .image_gc_high_threshold_percent
            .unwrap_or(defaults.high_percent);
        let low = raw
            .image_gc_low_threshold_percent
            .unwrap_or(defaults.low_percent);
        if low > high || high > 100 {
            return Err(PolicyError::GcThresholds { low, high });
        }
        Ok(Self {
            log_rotation,
            eviction_hard,
            monitoring_interval,
            pressure_transition_period: seconds(
                raw.eviction_pressure_transition_period_seconds,
                DEFAULT_PRESSURE_TRANSITION_PERIOD,
                "eviction_pressure_transition_period_seconds",
            )?,
            nodefs_path: raw.nodefs_path.clone(),
            imagefs_path: raw.imagefs_path.clone(),
            image_gc: GcPolicy {
                high_percent: high,
                low_percent: low,
                minimum_age: seconds(
                    raw.image_minimum_gc_age_seconds,
                    defaults.minimum_age,
                    "image_minimum_gc_age_seconds",
                )?,
            },
        })
    }
}

impl Default for ResourcePolicy {
    fn default() -> Self {
        Self::from_raw(&RawResourcePolicy::default()).unwrap_or(Self {
            log_rotation: None,
            eviction_hard: EvictionThresholds::default(),
            monitoring_interval: None,
            pressure_transition_period: DEFAULT_PRESSURE_TRANSITION_PERIOD,
            nodefs_path: None,
            imagefs_path: None,
            image_gc: GcPolicy::default(),
        })
    }
}

#[cfg(test)]
mod tests;
