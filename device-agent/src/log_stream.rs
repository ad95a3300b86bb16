//! Answers a log request: reads the container's log from the runtime (tail, since,
//! timestamps, follow, limit bytes, previous instance) and publishes it as sequenced
//! chunks on `up/logs/{request}`. A follow stream ends when the gateway cancels, the
//! container ends, or the agent stops.

use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{
    DeviceId, LogChunk, LogError, LogErrorCode, LogRequest, Message, RequestId, Topic, UpChannel,
};
use futures::StreamExt;
use rumqttc::{AsyncClient, QoS};
use tokio_util::sync::CancellationToken;

use crate::container_runtime::{ContainerRuntime, LogReadOptions};
use crate::wall_clock::now_millis;

/// Largest chunk payload (before base64).
pub const CHUNK_BYTES: usize = 64 * 1024;
/// A partial chunk is sent after this long without more output.
const FLUSH_AFTER: Duration = Duration::from_millis(200);

/// Runtime options for a request (pure).
pub fn read_options(req: &LogRequest, now_ms: u64) -> LogReadOptions {
    let since = match (req.since_time, req.since_seconds) {
        (Some(ms), _) => Some(i64::try_from(ms / 1000).unwrap_or(i64::MAX)),
        (None, Some(s)) => Some(i64::try_from((now_ms / 1000).saturating_sub(s)).unwrap_or(0)),
        _ => None,
    };
    LogReadOptions {
        follow: req.follow,
        tail_lines: req.tail_lines,
        since,
        timestamps: req.timestamps,
    }
}

struct ChunkSender {
    client: AsyncClient,
    topic: String,
    sequence: u64,
}

impl ChunkSender {
    async fn send(&mut self, data: Vec<u8>, end: bool, error: Option<LogError>) {
        let chunk = LogChunk {
            sequence: self.sequence,
            data: data.into(),
            end_of_stream: end,
            error,
        };
        self.sequence += 1;
        match Message::from(chunk).encode() {
            Ok(payload) => {
                if let Err(e) = self
                    .client
                    .publish(self.topic.clone(), QoS::AtMostOnce, false, payload)
                    .await
                {
                    tracing::debug!(error = %e, "log chunk not sent");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode log chunk"),
        }
    }
}

/// Streams one request to the end. `target` is the container id, or why there is none.
pub async fn stream(
    runtime: Arc<dyn ContainerRuntime>,
    client: AsyncClient,
    device: DeviceId,
    request: RequestId,
    target: Result<String, (LogErrorCode, String)>,
    req: LogRequest,
    cancel: CancellationToken,
) {
    let mut out = ChunkSender {
        client,
        topic: Topic::up(&device, UpChannel::Logs(request)).to_string(),
        sequence: 0,
    };
    let id = match target {
        Ok(id) => id,
        Err((code, message)) => {
            out.send(Vec::new(), true, Some(LogError { code, message }))
                .await;
            return;
        }
    };
    let mut logs = runtime.logs(&id, read_options(&req, now_millis()));
    let limit = req
        .limit_bytes
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let mut sent = 0usize;
    let mut buf: Vec<u8> = Vec::new();
    let mut error = None;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            n = tokio::time::timeout(FLUSH_AFTER, logs.next()) => n,
        };
        match next {
            Err(_) => {
                if !buf.is_empty() {
                    out.send(std::mem::take(&mut buf), false, None).await;
                }
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                error = Some(LogError {
                    code: LogErrorCode::Runtime,
                    message: e.to_string(),
                });
                break;
            }
            Ok(Some(Ok(bytes))) => {
                let mut bytes = bytes;
                if let Some(limit) = limit {
                    let room = limit.saturating_sub(sent + buf.len());
                    bytes.truncate(room);
                }
                buf.extend_from_slice(&bytes);
                while buf.len() >= CHUNK_BYTES {
                    let rest = buf.split_off(CHUNK_BYTES);
                    sent += CHUNK_BYTES;
                    out.send(std::mem::replace(&mut buf, rest), false, None)
                        .await;
                }
                if limit.is_some_and(|l| sent + buf.len() >= l) {
                    break;
                }
            }
        }
    }
    out.send(buf, true, error).await;
}

#[cfg(test)]
mod tests;
