//! The kubelet's `/run/{namespace}/{pod}[/{uid}]/{container}` (POST, `cmd=<command>`):
//! runs a command in the container to its end and answers with what it wrote (stdout,
//! then stderr, as the kubelet's `RunInContainer` joins them), `200 text/plain`; a
//! command that exits non-zero or cannot run is `500` with the reason, as the kubelet
//! answers. No upgrade: it is the same exec relayed to the device ([`ExecSession`]),
//! with a client that collects the output ([`OutputCollector`]). The command is split
//! on whitespace like the kubelet's (`strings.Fields`), so it takes no quoting.
//! Bounded: at most [`MAX_RUN_OUTPUT_BYTES`] of output and [`RUN_TIMEOUT`] (the kubelet's
//! default runtime request timeout), so a request cannot hold the gateway forever.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use edge_protocol::StreamChannel;
use tokio::sync::oneshot;

use super::exec_relay::{ClientEvent, ExecClient, ExecSession};
use super::spdy_io::ConnectionError;
use super::streaming::{RemoteCommand, RemoteCommandPath, StreamSettings, check_request};
use super::{ApiState, plain};
use crate::device_streams::StreamRequestTarget;
use crate::stream_protocols::remote_command::{ExecOptions, ExitStatus};

/// The most output a `/run` returns (the CRI's ExecSync limit).
pub const MAX_RUN_OUTPUT_BYTES: usize = 16 * 1024 * 1024;
/// How long a `/run` may take, from the request to the command's end.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// What a finished run gives back.
#[derive(Debug, Default)]
struct RunResult {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<ExitStatus>,
    /// The output passed [`MAX_RUN_OUTPUT_BYTES`]; the rest was dropped.
    truncated: bool,
}

/// An exec client with no connection: asks for stdout and stderr, keeps them, and hands
/// them over when the relay lets it go.
pub(super) struct OutputCollector {
    ready_sent: bool,
    result: Arc<Mutex<RunResult>>,
    done: Option<oneshot::Sender<()>>,
}

impl OutputCollector {
    fn result(&self) -> std::sync::MutexGuard<'_, RunResult> {
        self.result.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ExecClient for OutputCollector {
    async fn read(&mut self) -> Result<Vec<ClientEvent>, ConnectionError> {
        if !self.ready_sent {
            self.ready_sent = true;
            return Ok(vec![ClientEvent::Ready]);
        }
        // nothing more ever comes from this client: the device's end ends the run
        std::future::pending().await
    }

    async fn flush(&mut self) -> Result<(), ConnectionError> {
        Ok(())
    }

    fn output(&mut self, channel: StreamChannel, data: &[u8], _end: bool) {
        let mut result = self.result();
        let room = MAX_RUN_OUTPUT_BYTES.saturating_sub(result.stdout.len() + result.stderr.len());
        if data.len() > room {
            result.truncated = true;
        }
        let kept = &data[..data.len().min(room)];
        match channel {
            StreamChannel::Stderr => result.stderr.extend_from_slice(kept),
            _ => result.stdout.extend_from_slice(kept),
        }
    }

    fn finish(&mut self, status: &ExitStatus) {
        self.result().status = Some(status.clone());
    }

    fn go_away(&mut self) {}

    async fn linger(mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// The `cmd` query value split on whitespace.
fn command_of(query: &str) -> Vec<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "cmd")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// `POST /run/{namespace}/{pod}[/{uid}]/{container}?cmd=...`.
pub(super) async fn run(
    State(state): State<ApiState>,
    Path(path): Path<RemoteCommandPath>,
    RawQuery(query): RawQuery,
) -> Response {
    let command = command_of(query.as_deref().unwrap_or_default());
    if command.is_empty() {
        return plain(
            StatusCode::BAD_REQUEST,
            "you must specify a command in the cmd query parameter",
        );
    }
    let target = match check_request(
        &state,
        StreamRequestTarget {
            namespace: &path.namespace,
            pod: &path.pod,
            uid: path.uid.as_deref(),
            container: Some(&path.container),
            what: "run",
        },
    )
    .await
    {
        Ok(t) => t,
        Err(response) => return response,
    };
    let session = ExecSession {
        streams: state.fleet.streams().clone(),
        target,
        container: path.container,
        kind: RemoteCommand::Exec { command },
        options: ExecOptions {
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false,
        },
        settings: StreamSettings {
            idle_timeout: RUN_TIMEOUT,
            ..state.streaming
        },
        shutdown: state.shutdown.clone(),
    };
    let result = Arc::new(Mutex::new(RunResult::default()));
    let (done_tx, done_rx) = oneshot::channel();
    let collector = OutputCollector {
        ready_sent: false,
        result: result.clone(),
        done: Some(done_tx),
    };
    let relay = tokio::spawn(session.run(collector));
    if tokio::time::timeout(RUN_TIMEOUT, done_rx).await.is_err() {
        relay.abort();
        return plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the command did not end within {} s", RUN_TIMEOUT.as_secs()),
        );
    }
    let result = std::mem::take(&mut *result.lock().unwrap_or_else(|e| e.into_inner()));
    answer(result)
}

/// The HTTP answer for a finished run.
fn answer(result: RunResult) -> Response {
    let mut output = result.stdout;
    output.extend_from_slice(&result.stderr);
    match result.status {
        _ if result.truncated => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the command wrote more than {MAX_RUN_OUTPUT_BYTES} bytes"),
        ),
        Some(ExitStatus::Exited(0)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            output,
        )
            .into_response(),
        Some(ExitStatus::Exited(code)) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "command terminated with exit code {code}; output: {}",
                String::from_utf8_lossy(&output)
            ),
        ),
        Some(ExitStatus::Failed(message)) => plain(StatusCode::INTERNAL_SERVER_ERROR, message),
        None => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stream to the device ended before the command did",
        ),
    }
}

#[cfg(test)]
mod tests;
