//! The rollout an operator declares: the data of the ConfigMap `edge-agent-rollout` in
//! the gateway's namespace (pure parsing, with errors that say what to write instead).
//!
//! ```yaml
//! data:
//!   version: "0.4.0"            # the signed version to run (required)
//!   nodeSelector: "ring=canary" # which Nodes (label selector; default: every device Node)
//!   maxUnavailable: "10%"       # devices updating at once (count or percent; default 1)
//!   maxFailures: "0"            # failed devices tolerated before the rollout pauses
//!   healthDeadline: "120s"      # the new agent must report healthy within this
//!   progressDeadline: "15m"     # an ordered device that does not finish in this fails
//!   paused: "false"             # true: order no more devices
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use crate::device_nodes::selector::{LabelSelector, SelectorError};

/// The ConfigMap's name.
pub const ROLLOUT_CONFIGMAP: &str = "edge-agent-rollout";

/// What the ConfigMap asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutSpec {
    pub version: String,
    pub selector: LabelSelector,
    pub max_unavailable: MaxUnavailable,
    pub max_failures: u32,
    pub health_deadline: Duration,
    pub progress_deadline: Duration,
    pub paused: bool,
}

/// `maxUnavailable`: a count, or a percentage of the selected Nodes (rounded down, at
/// least one, like a Deployment's with no surge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(u32),
    Percent(u32),
}

impl MaxUnavailable {
    /// How many of `selected` Nodes may update at once.
    pub fn of(self, selected: usize) -> usize {
        match self {
            MaxUnavailable::Count(n) => n as usize,
            MaxUnavailable::Percent(p) => (selected * p as usize / 100).max(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("data.version is missing: set it to the signed agent version to roll out (e.g. 0.4.0)")]
    MissingVersion,
    #[error("data.version {0:?} is not a version: letters, digits, '.' and '-', at most 40")]
    BadVersion(String),
    #[error("data.{key} {value:?} is not valid: {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("data.nodeSelector: {0}")]
    Selector(#[from] SelectorError),
}

/// A version a rollout can name: safe as a directory name, and shown unchanged in the
/// Nodes' `kubeletVersion` (`v1.32.0+edge-agent.<version>` keeps letters, digits, `.`
/// and `-` and at most 40 of them), so that two versions never look alike there.
pub fn is_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 40
        && v != "."
        && v != ".."
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
}

impl RolloutSpec {
    /// Parses the ConfigMap's data.
    pub fn parse(data: &BTreeMap<String, String>) -> Result<Self, SpecError> {
        let get = |k: &str| data.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let version = get("version").ok_or(SpecError::MissingVersion)?;
        if !is_version(version) {
            return Err(SpecError::BadVersion(version.to_owned()));
        }
        let selector = LabelSelector::parse(get("nodeSelector").unwrap_or(""))?;
        let max_unavailable = match get("maxUnavailable") {
            None => MaxUnavailable::Count(1),
            Some(v) => parse_max_unavailable(v)?,
        };
        let max_failures = match get("maxFailures") {
            None => 0,
            Some(v) => v.parse().map_err(|_| SpecError::BadValue {
                key: "maxFailures",
                value: v.to_owned(),
                expected: "a whole number (failed devices tolerated before the rollout pauses)",
            })?,
        };
        let duration = |key: &'static str, default: Duration| match get(key) {
            None => Ok(default),
            Some(v) => crate::config::parse_duration(v)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or(SpecError::BadValue {
                    key,
                    value: v.to_owned(),
                    expected: "a duration such as 120s, 15m or 1h",
                }),
        };
        let health_deadline = duration("healthDeadline", Duration::from_secs(120))?;
        let progress_deadline = duration("progressDeadline", Duration::from_secs(15 * 60))?;
        if !(Duration::from_secs(5)..=Duration::from_secs(3600)).contains(&health_deadline) {
            return Err(SpecError::BadValue {
                key: "healthDeadline",
                value: get("healthDeadline").unwrap_or_default().to_owned(),
                expected: "between 5s and 1h (the new agent must connect and adopt its containers)",
            });
        }
        let paused = match get("paused") {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(SpecError::BadValue {
                    key: "paused",
                    value: v.to_owned(),
                    expected: "true or false",
                });
            }
        };
        Ok(Self {
            version: version.to_owned(),
            selector,
            max_unavailable,
            max_failures,
            health_deadline,
            progress_deadline,
            paused,
        })
    }
}

fn parse_max_unavailable(v: &str) -> Result<MaxUnavailable, SpecError> {
    let bad = || SpecError::BadValue {
        key: "maxUnavailable",
        value: v.to_owned(),
        expected: "a count (3) or a percentage of the selected Nodes (10%), above zero",
    };
    let parsed = match v.strip_suffix('%') {
        Some(p) => MaxUnavailable::Percent(p.parse().map_err(|_| bad())?),
        None => MaxUnavailable::Count(v.parse().map_err(|_| bad())?),
    };
    match parsed {
        MaxUnavailable::Count(0) | MaxUnavailable::Percent(0) => Err(bad()),
        MaxUnavailable::Percent(p) if p > 100 => Err(bad()),
        ok => Ok(ok),
    }
}

#[cfg(test)]
mod tests;
