//! The device side of the gateway's offline log cache: every `log_tail_interval` while
//! connected, the new output of each running container of the pods that did not opt
//! out, cut to its last [`MAX_LOG_TAIL_BYTES`] at a line start, goes out as one
//! [`LogTailReport`] on `up/logtail` (QoS 0). Selecting and cutting are pure; the
//! [`run`] task only reads the runtime's log and publishes.
//!
//! Where a container's shipped output ends is the time of its last shipped line and how
//! many shipped lines carry that time (Podman stamps lines to the second): the next read
//! asks the runtime for the output since that second (with timestamps) and keeps the
//! lines not shipped yet. A container that was already running when this agent process
//! started is reported from the process start, so an agent restart sends no output twice
//! (output written while the agent was stopped is not in the cache; it stays in the
//! runtime's log); one started later is reported from its first line.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use edge_protocol::{
    ContainerLogTail, DeviceId, LogTailReport, MAX_LOG_TAIL_BYTES, Message, Topic, UpChannel,
    cut_to_line_start,
};
use futures::StreamExt;
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::container_runtime::{ContainerRuntime, ContainerSnapshot, LogReadOptions, RunState};

/// The default time between reports (`log_tail_interval_seconds`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// A container whose new output is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailTarget {
    pub container_id: String,
    pub pod_uid: String,
    pub namespace: String,
    pub pod_name: String,
    pub container: String,
    /// When the container started (Unix milliseconds; 0 if unknown).
    pub started_at: u64,
}

impl From<&ContainerSnapshot> for TailTarget {
    fn from(c: &ContainerSnapshot) -> Self {
        Self {
            container_id: c.id.clone(),
            pod_uid: c.identity.pod_uid.clone(),
            namespace: c.identity.pod_namespace.clone(),
            pod_name: c.identity.pod_name.clone(),
            container: c.identity.container_name.clone(),
            started_at: match c.state {
                RunState::Running { started_at } => started_at,
                _ => 0,
            },
        }
    }
}

/// Where a container's shipped output ends: the time of its last shipped line (Unix
/// nanoseconds) and how many shipped lines carry that very time (Podman stamps lines to
/// the second only, so several lines share one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shipped {
    pub at: u128,
    pub lines_at: usize,
}

/// New output read with timestamps: the bytes `kubectl logs` shows (timestamps
/// removed) and where it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewOutput {
    pub data: Vec<u8>,
    /// `None` when nothing is new.
    pub shipped: Option<Shipped>,
    /// Older new output was dropped while reading (more than fits a report).
    pub dropped: bool,
}

fn parse_timestamp(raw: &[u8]) -> Option<u128> {
    let text = std::str::from_utf8(raw).ok()?;
    let at = humantime::parse_rfc3339(text).ok()?;
    at.duration_since(UNIX_EPOCH).ok().map(|d| d.as_nanos())
}

/// Splits the runtime's timestamped output (`<RFC 3339 time> <line>` per line, read
/// from at most the second of `after.at`) into the lines not shipped yet, without their
/// timestamps: those after `after.at`, and of the lines at `after.at` all but the first
/// `after.lines_at`. A line without a readable timestamp counts as written at the time
/// of the line before it.
pub fn new_output(raw: &[u8], after: Shipped) -> NewOutput {
    let mut out = NewOutput::default();
    let mut last: Option<Shipped> = None;
    let mut seen_at_cursor = 0usize;
    for line in raw.split_inclusive(|b| *b == b'\n') {
        let stamped = line
            .iter()
            .position(|b| *b == b' ')
            .and_then(|space| Some((parse_timestamp(&line[..space])?, &line[space + 1..])));
        let (at, text) = match stamped {
            Some((at, text)) => (at, text),
            None => match last {
                Some(l) => (l.at, line),
                None => continue,
            },
        };
        last = Some(match last {
            Some(l) if l.at == at => Shipped {
                at,
                lines_at: l.lines_at + 1,
            },
            _ => Shipped { at, lines_at: 1 },
        });
        let new = match at.cmp(&after.at) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                seen_at_cursor += 1;
                seen_at_cursor > after.lines_at
            }
            std::cmp::Ordering::Greater => true,
        };
        if new {
            out.data.extend_from_slice(text);
            out.shipped = last;
        }
    }
    out
}

/// The report entry of one container, or `None` when it wrote nothing new.
pub fn container_tail(target: &TailTarget, output: NewOutput) -> Option<ContainerLogTail> {
    let last = output.shipped?.at;
    if output.data.is_empty() {
        return None;
    }
    let (data, cut) = cut_to_line_start(&output.data, MAX_LOG_TAIL_BYTES);
    Some(ContainerLogTail {
        pod_uid: target.pod_uid.clone(),
        namespace: target.namespace.clone(),
        pod_name: target.pod_name.clone(),
        container: target.container.clone(),
        data: data.to_vec().into(),
        truncated: cut || output.dropped,
        until: u64::try_from(last / 1_000_000).unwrap_or(u64::MAX),
    })
}

/// Where each container's shipped output ends.
#[derive(Debug, Clone)]
pub struct TailCursors {
    shipped: HashMap<String, Shipped>,
    start_nanos: u128,
}

impl TailCursors {
    /// Containers not seen before start at `start_nanos` (the agent's start), or from
    /// their first line if they started after it.
    pub fn new(start_nanos: u128) -> Self {
        Self {
            shipped: HashMap::new(),
            start_nanos,
        }
    }

    /// Where the shipped output of a container ends. A container that started after the
    /// agent has all its output new (its first lines may be stamped with a second that
    /// began before the agent did).
    pub fn after(&self, target: &TailTarget) -> Shipped {
        let started_after_agent = u128::from(target.started_at) * 1_000_000 >= self.start_nanos;
        self.shipped
            .get(&target.container_id)
            .copied()
            .unwrap_or(Shipped {
                at: if started_after_agent {
                    0
                } else {
                    self.start_nanos
                },
                lines_at: 0,
            })
    }

    /// The runtime's `since` (whole seconds, inclusive) for the next read: the second of
    /// the last shipped line, so every line carrying its time is read again and counted.
    pub fn since_seconds(&self, target: &TailTarget) -> i64 {
        i64::try_from(self.after(target).at / 1_000_000_000).unwrap_or(i64::MAX)
    }

    pub fn shipped(&mut self, container_id: &str, shipped: Shipped) {
        self.shipped.insert(container_id.to_owned(), shipped);
    }

    /// Forgets containers no longer reported on.
    pub fn retain(&mut self, targets: &[TailTarget]) {
        let live: HashSet<&str> = targets.iter().map(|t| t.container_id.as_str()).collect();
        self.shipped.retain(|id, _| live.contains(id.as_str()));
    }
}

/// Full container entries (16 KiB, about 22 KiB base64) that fit one 1 MiB message.
const CONTAINERS_PER_REPORT: usize = 32;

/// Raw output kept while reading one container: a little more than a report holds
/// (timestamps take room), older lines dropped.
const READ_KEEP_BYTES: usize = 2 * MAX_LOG_TAIL_BYTES + 64 * 1024;

/// The raw output since `since`, and whether older lines of it were dropped.
async fn read_new(runtime: &dyn ContainerRuntime, id: &str, since: i64) -> (Vec<u8>, bool) {
    let options = LogReadOptions {
        follow: false,
        tail_lines: None,
        since: Some(since),
        timestamps: true,
    };
    let mut logs = runtime.logs(id, options);
    let mut raw = Vec::new();
    let mut dropped = false;
    while let Some(piece) = logs.next().await {
        match piece {
            Ok(bytes) => raw.extend_from_slice(&bytes),
            Err(e) => {
                tracing::debug!(container = id, error = %e, "cannot read output for the log tail");
                break;
            }
        }
        if raw.len() > 2 * READ_KEEP_BYTES {
            let (kept, _) = cut_to_line_start(&raw, READ_KEEP_BYTES);
            raw = kept.to_vec();
            dropped = true;
        }
    }
    (raw, dropped)
}

/// Reads the new output of `targets` and advances `cursors` to what the report holds.
pub async fn collect(
    runtime: &dyn ContainerRuntime,
    cursors: &mut TailCursors,
    targets: &[TailTarget],
) -> LogTailReport {
    cursors.retain(targets);
    let mut report = LogTailReport::default();
    for target in targets {
        let id = &target.container_id;
        let (raw, dropped) = read_new(runtime, id, cursors.since_seconds(target)).await;
        let mut output = new_output(&raw, cursors.after(target));
        output.dropped = dropped;
        let last = output.shipped;
        if let Some(tail) = container_tail(target, output) {
            report.containers.push(tail);
        }
        if let Some(last) = last {
            cursors.shipped(id, last);
        }
    }
    report
}

/// The reporter task: for each list of targets the agent loop sends (every interval,
/// while connected), one report with the containers that wrote something.
pub async fn run(
    runtime: Arc<dyn ContainerRuntime>,
    client: AsyncClient,
    device: DeviceId,
    mut targets_rx: mpsc::Receiver<Vec<TailTarget>>,
    start_nanos: u128,
    stop: CancellationToken,
) {
    let topic = Topic::up(&device, UpChannel::LogTail).to_string();
    let mut cursors = TailCursors::new(start_nanos);
    loop {
        let targets = tokio::select! {
            _ = stop.cancelled() => return,
            t = targets_rx.recv() => match t {
                Some(t) => t,
                None => return,
            },
        };
        let report = collect(runtime.as_ref(), &mut cursors, &targets).await;
        for c in &report.containers {
            tracing::debug!(pod = %c.pod_name, container = %c.container, bytes = c.data.0.len(),
                until = c.until, truncated = c.truncated, "log tail");
        }
        // one report, unless so many containers wrote so much that it would not fit
        // one message
        for batch in report.containers.chunks(CONTAINERS_PER_REPORT) {
            let report = LogTailReport {
                containers: batch.to_vec(),
            };
            match Message::from(report).encode() {
                Ok(payload) => {
                    if let Err(e) = client
                        .publish(topic.clone(), QoS::AtMostOnce, false, payload)
                        .await
                    {
                        tracing::debug!(error = %e, "log tail report not sent");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot encode the log tail report"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
