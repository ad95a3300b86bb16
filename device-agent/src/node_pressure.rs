//! The eviction manager's decisions, pure: hard eviction thresholds in the kubelet's
//! syntax (`memory.available<100Mi,nodefs.available<10%`), measurements against them,
//! the node's pressure conditions with their transition times, and which pod to evict
//! (the kubelet's ranking). Measuring and evicting are done by [`crate::pressure_monitor`].

use std::collections::BTreeMap;
use std::time::Duration;

use edge_protocol::{NodeConditionKind, NodePressureCondition, PodSpec, UnixMillis};

/// The kubelet's default hard eviction thresholds on Linux.
pub const DEFAULT_EVICTION_HARD: &str =
    "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%";

/// The kubelet's `evictionPressureTransitionPeriod`: how long a condition stays True
/// after its threshold is no longer crossed.
pub const DEFAULT_PRESSURE_TRANSITION_PERIOD: Duration = Duration::from_secs(300);

/// What the kubelet's eviction manager watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    MemoryAvailable,
    NodeFsAvailable,
    NodeFsInodesFree,
    ImageFsAvailable,
    ImageFsInodesFree,
    PidAvailable,
}

impl Signal {
    const ALL: [Signal; 6] = [
        Signal::MemoryAvailable,
        Signal::NodeFsAvailable,
        Signal::NodeFsInodesFree,
        Signal::ImageFsAvailable,
        Signal::ImageFsInodesFree,
        Signal::PidAvailable,
    ];

    /// The name in `--eviction-hard`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory.available",
            Signal::NodeFsAvailable => "nodefs.available",
            Signal::NodeFsInodesFree => "nodefs.inodesFree",
            Signal::ImageFsAvailable => "imagefs.available",
            Signal::ImageFsInodesFree => "imagefs.inodesFree",
            Signal::PidAvailable => "pid.available",
        }
    }

    /// The node condition a crossed threshold of this signal sets.
    pub fn condition(self) -> NodeConditionKind {
        match self {
            Signal::MemoryAvailable => NodeConditionKind::MemoryPressure,
            Signal::PidAvailable => NodeConditionKind::PidPressure,
            _ => NodeConditionKind::DiskPressure,
        }
    }

    /// The resource an eviction message names (`The node was low on resource: ...`).
    pub fn resource(self) -> &'static str {
        match self {
            Signal::MemoryAvailable => "memory",
            Signal::NodeFsAvailable | Signal::ImageFsAvailable => "ephemeral-storage",
            Signal::NodeFsInodesFree | Signal::ImageFsInodesFree => "inodes",
            Signal::PidAvailable => "pids",
        }
    }
}

/// A threshold: an absolute amount or a percentage of capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdValue {
    Quantity(u64),
    Percent(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub signal: Signal,
    pub value: ThresholdValue,
}

/// Why an `eviction_hard` setting is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error(
        "eviction threshold {0:?} is not of the form signal<value (e.g. memory.available<100Mi)"
    )]
    Form(String),
    #[error(
        "unknown eviction signal {0:?} (known: memory.available, nodefs.available, nodefs.inodesFree, imagefs.available, imagefs.inodesFree, pid.available)"
    )]
    UnknownSignal(String),
    #[error(
        "eviction threshold value {0:?} is not a quantity (100Mi, 1G, 5000) or a percentage (10%) below 100%"
    )]
    Value(String),
}

/// The hard eviction thresholds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EvictionThresholds(pub Vec<Threshold>);

impl EvictionThresholds {
    /// Parses the kubelet's `--eviction-hard` syntax; an empty string means none.
    pub fn parse(raw: &str) -> Result<Self, ThresholdError> {
        let mut out = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part
                .split_once('<')
                .ok_or_else(|| ThresholdError::Form(part.to_owned()))?;
            let signal = Signal::ALL
                .into_iter()
                .find(|s| s.name() == name.trim())
                .ok_or_else(|| ThresholdError::UnknownSignal(name.trim().to_owned()))?;
            let value = parse_threshold_value(value.trim())
                .ok_or_else(|| ThresholdError::Value(value.trim().to_owned()))?;
            out.retain(|t: &Threshold| t.signal != signal);
            out.push(Threshold { signal, value });
        }
        Ok(Self(out))
    }

    pub fn kubelet_defaults() -> Self {
        Self::parse(DEFAULT_EVICTION_HARD).unwrap_or_default()
    }

    /// The thresholds the measurements cross, in signal order.
    pub fn crossed(&self, m: &Measurements) -> Vec<Crossed> {
        let mut out: Vec<Crossed> = self
            .0
            .iter()
            .filter_map(|t| {
                let level = m.get(t.signal)?;
                let threshold = match t.value {
                    ThresholdValue::Quantity(q) => q,
                    // f64 is exact enough for a percentage of a capacity in bytes
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        clippy::cast_precision_loss
                    )]
                    ThresholdValue::Percent(p) => (level.capacity as f64 * p / 100.0) as u64,
                };
                (level.available < threshold).then_some(Crossed {
                    signal: t.signal,
                    available: level.available,
                    threshold,
                })
            })
            .collect();
        out.sort_by_key(|c| c.signal);
        out
    }
}

fn parse_threshold_value(raw: &str) -> Option<ThresholdValue> {
    if let Some(p) = raw.strip_suffix('%') {
        let p: f64 = p.trim().parse().ok()?;
        return (p.is_finite() && (0.0..100.0).contains(&p)).then_some(ThresholdValue::Percent(p));
    }
    parse_quantity(raw).map(ThresholdValue::Quantity)
}

/// A Kubernetes quantity in plain units: `100Mi`, `1G`, `5000`, `1.5Gi`.
pub fn parse_quantity(raw: &str) -> Option<u64> {
    const SUFFIXES: [(&str, u64); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(s, f)| raw.strip_suffix(s).map(|n| (n, *f)))
        .unwrap_or((raw, 1));
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    if let Ok(n) = number.parse::<u64>() {
        return n.checked_mul(factor);
    }
    let n: f64 = number.parse().ok()?;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let bytes = (n * factor as f64) as u64;
    n.is_finite().then_some(bytes)
}

/// An amount still available out of a capacity (bytes, inodes, PIDs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Level {
    pub available: u64,
    pub capacity: u64,
}

/// What was measured; `None` where a figure could not be read (never crosses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Measurements {
    pub memory: Option<Level>,
    pub nodefs: Option<Level>,
    pub nodefs_inodes: Option<Level>,
    pub imagefs: Option<Level>,
    pub imagefs_inodes: Option<Level>,
    pub pids: Option<Level>,
}

impl Measurements {
    pub fn get(&self, signal: Signal) -> Option<Level> {
        match signal {
            Signal::MemoryAvailable => self.memory,
            Signal::NodeFsAvailable => self.nodefs,
            Signal::NodeFsInodesFree => self.nodefs_inodes,
            Signal::ImageFsAvailable => self.imagefs,
            Signal::ImageFsInodesFree => self.imagefs_inodes,
            Signal::PidAvailable => self.pids,
        }
    }
}

/// A threshold the measurements crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossed {
    pub signal: Signal,
    pub available: u64,
    pub threshold: u64,
}

impl Crossed {
    /// For the condition's message, e.g. `nodefs.available 1048576 < 6710886`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} < {}",
            self.signal.name(),
            self.available,
            self.threshold
        )
    }

    /// The kubelet's eviction message.
    pub fn eviction_message(&self) -> String {
        format!(
            "The node was low on resource: {}. Threshold quantity: {}, available: {}. ",
            self.signal.resource(),
            self.threshold,
            self.available
        )
    }
}

/// The node's pressure conditions over time: True as soon as a threshold is crossed,
/// False again only after the transition period without one (the kubelet's
/// `evictionPressureTransitionPeriod`).
#[derive(Debug, Clone)]
pub struct PressureConditions {
    transition_period_ms: u64,
    /// Per condition: pressure now, since when, last time a threshold was crossed, message.
    state: BTreeMap<NodeConditionKind, ConditionState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ConditionState {
    pressure: bool,
    since: UnixMillis,
    last_crossed: Option<UnixMillis>,
    message: String,
}

impl PressureConditions {
    pub fn new(transition_period: Duration, now: UnixMillis) -> Self {
        let state = [
            NodeConditionKind::MemoryPressure,
            NodeConditionKind::DiskPressure,
            NodeConditionKind::PidPressure,
        ]
        .into_iter()
        .map(|k| {
            (
                k,
                ConditionState {
                    pressure: false,
                    since: now,
                    last_crossed: None,
                    message: String::new(),
                },
            )
        })
        .collect();
        Self {
            transition_period_ms: u64::try_from(transition_period.as_millis()).unwrap_or(u64::MAX),
            state,
        }
    }

    /// Takes in one observation; true when a condition changed.
    pub fn observe(&mut self, crossed: &[Crossed], now: UnixMillis) -> bool {
        let mut changed = false;
        for (kind, s) in &mut self.state {
            let mine: Vec<String> = crossed
                .iter()
                .filter(|c| c.signal.condition() == *kind)
                .map(Crossed::describe)
                .collect();
            if !mine.is_empty() {
                s.last_crossed = Some(now);
                let message = mine.join(", ");
                if !s.pressure {
                    s.pressure = true;
                    s.since = now;
                    changed = true;
                }
                if s.message != message {
                    s.message = message;
                    changed = true;
                }
            } else if s.pressure
                && s.last_crossed
                    .is_none_or(|t| now.saturating_sub(t) >= self.transition_period_ms)
            {
                s.pressure = false;
                s.since = now;
                s.message.clear();
                changed = true;
            }
        }
        changed
    }

    pub fn under_pressure(&self, kind: NodeConditionKind) -> bool {
        self.state.get(&kind).is_some_and(|s| s.pressure)
    }

    /// The conditions for the node report.
    pub fn conditions(&self) -> Vec<NodePressureCondition> {
        self.state
            .iter()
            .map(|(kind, s)| NodePressureCondition {
                kind: *kind,
                pressure: s.pressure,
                since: s.since,
                message: s.message.clone(),
            })
            .collect()
    }
}

/// A pod's QoS class, by the rules of Kubernetes over its containers' resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QosClass {
    BestEffort,
    Burstable,
    Guaranteed,
}

pub fn qos_class(spec: &PodSpec) -> QosClass {
    let all = |f: &dyn Fn(&edge_protocol::ResourceRequirements) -> bool| {
        !spec.containers.is_empty() && spec.containers.iter().all(|c| f(&c.resources))
    };
    let none = spec.containers.iter().all(|c| {
        let r = &c.resources;
        r.cpu_request_millis.is_none()
            && r.cpu_limit_millis.is_none()
            && r.memory_request_bytes.is_none()
            && r.memory_limit_bytes.is_none()
    });
    if none {
        return QosClass::BestEffort;
    }
    // A limit without a request defaults the request to the limit.
    let guaranteed = all(&|r| {
        r.cpu_limit_millis.is_some()
            && r.memory_limit_bytes.is_some()
            && r.cpu_request_millis
                .is_none_or(|q| Some(q) == r.cpu_limit_millis)
            && r.memory_request_bytes
                .is_none_or(|q| Some(q) == r.memory_limit_bytes)
    });
    if guaranteed {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// A running pod the eviction manager may choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictionCandidate {
    pub uid: String,
    pub qos: QosClass,
    /// Usage of the starved resource, when measured (memory working set).
    pub usage: Option<u64>,
    /// The pod's request of it (sum of its containers'; 0 when none).
    pub request: u64,
}

/// The pod to evict for a crossed threshold, as the kubelet ranks them: pods using more
/// than they requested first, then by usage above the request (largest first); ties go
/// to the lower QoS class (BestEffort, Burstable, Guaranteed), then the uid. Where usage
/// is not measured (disk on this agent), a pod without a request counts as over it, so
/// BestEffort pods go first.
pub fn choose_victim(candidates: &[EvictionCandidate]) -> Option<&EvictionCandidate> {
    candidates.iter().min_by(|a, b| {
        let key = |c: &EvictionCandidate| {
            let over = match c.usage {
                Some(u) => u > c.request,
                None => c.request == 0,
            };
            let above = c.usage.map_or(0, |u| u.saturating_sub(c.request));
            (!over, std::cmp::Reverse(above), c.qos)
        };
        key(a).cmp(&key(b)).then_with(|| a.uid.cmp(&b.uid))
    })
}

#[cfg(test)]
mod tests;
