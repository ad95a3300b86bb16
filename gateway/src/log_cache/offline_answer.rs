//! What `kubectl logs` gets while a pod's device is offline (pure): a first line that
//! says since when and that this is the cached tail, then the tail with the request's
//! options as far as the cache can honour them:
//!
//! - `tailLines`: the last lines of the tail;
//! - `limitBytes`: the first bytes of what is selected (as the kubelet), the notice line
//!   not counted;
//! - `sinceSeconds` / `sinceTime`: the cache knows the time of its last line only, so
//!   the whole tail is served when that line is at or after the requested time, and
//!   none of it when it is older;
//! - `timestamps`: the cache holds no per-line times; lines are served without them and
//!   the notice says so;
//! - `follow`: the answer ends after the tail (the live log follows once the device is
//!   back);
//! - `previous`: the cache holds the current instance only: an error.

use edge_protocol::UnixMillis;
use jiff::Timestamp;

use super::CachedTail;
use crate::kubelet_api::log_query::LogQuery;

/// Why there is no cached answer; the message says the device is offline since when.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfflineLogError {
    #[error(
        "node {device} is offline{since}; pod {pod} opted out of the gateway's log cache \
         (annotation edge-kube.io/log-cache: off), so its logs can be read once the device \
         is back"
    )]
    OptedOut {
        device: String,
        since: OfflineSince,
        pod: String,
    },
    #[error(
        "node {device} is offline{since}; the gateway holds no output of container \
         {container:?} of pod {pod} (the device reported none before it went offline, or \
         the cache is off), so its logs can be read once the device is back"
    )]
    NoCachedOutput {
        device: String,
        since: OfflineSince,
        pod: String,
        container: String,
    },
    #[error(
        "node {device} is offline{since}; the gateway caches the output of the current \
         container only, so the previous one can be read once the device is back"
    )]
    NoPrevious { device: String, since: OfflineSince },
}

/// Since when a device is offline: when it was last heard from, or unknown (it was
/// already offline when the gateway started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineSince(pub Option<Timestamp>);

impl std::fmt::Display for OfflineSince {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => write!(f, " since {}", t.round(jiff::Unit::Second).unwrap_or(t)),
            None => f.write_str(" since before this gateway started"),
        }
    }
}

/// The pod a request is about, while its device is offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflinePod {
    pub device: String,
    pub since: OfflineSince,
    /// `namespace/name`.
    pub pod: String,
    pub container: String,
    pub opted_out: bool,
}

fn last_lines(data: &[u8], n: u64) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0u64;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

/// The body of the answer, or why there is none. `now` is for `sinceSeconds`.
pub fn offline_answer(
    pod: &OfflinePod,
    tail: Option<&CachedTail>,
    query: &LogQuery,
    now: UnixMillis,
) -> Result<Vec<u8>, OfflineLogError> {
    if query.previous {
        return Err(OfflineLogError::NoPrevious {
            device: pod.device.clone(),
            since: pod.since,
        });
    }
    if pod.opted_out {
        return Err(OfflineLogError::OptedOut {
            device: pod.device.clone(),
            since: pod.since,
            pod: pod.pod.clone(),
        });
    }
    let Some(tail) = tail.filter(|t| !t.data.0.is_empty()) else {
        return Err(OfflineLogError::NoCachedOutput {
            device: pod.device.clone(),
            since: pod.since,
            pod: pod.pod.clone(),
            container: pod.container.clone(),
        });
    };
    let since = query
        .since_time
        .or_else(|| query.since_seconds.map(|s| now.saturating_sub(s * 1000)));
    let mut data: &[u8] = if since.is_some_and(|s| tail.until < s) {
        &[]
    } else {
        &tail.data.0
    };
    if let Some(n) = query.tail_lines {
        data = last_lines(data, n);
    }
    if let Some(limit) = query.limit_bytes {
        data = &data[..data.len().min(usize::try_from(limit).unwrap_or(usize::MAX))];
    }
    let mut notice = format!(
        "# edge-gateway: device {} is offline{}; this is the last {} bytes of output the \
         gateway holds (cached tail, not the live log)",
        pod.device,
        pod.since,
        data.len()
    );
    if query.timestamps {
        notice.push_str("; the cache keeps no per-line timestamps");
    }
    notice.push('\n');
    let mut body = notice.into_bytes();
    body.extend_from_slice(data);
    Ok(body)
}
