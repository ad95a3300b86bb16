//! Exec and attach relayed to the device, whatever the client speaks ([`ExecClient`]:
//! SPDY in `spdy_exec.rs`, WebSocket in `ws_exec.rs`): a thin loop that waits until the
//! client is ready (its SPDY stream set is complete) and, for a TTY, has sent its
//! terminal size (at most [`TTY_SIZE_WAIT`]: the size then goes with the open, so the
//! process starts with it), opens one MQTT stream to the device, and then moves bytes
//! both ways under the stream's flow control
//! ([`StreamFlow`]): stdin is read from the client only while the device has credit to
//! take it, and the device's output is credited once written to the client. The device's
//! [`StreamClose`] becomes the error stream's Status (the exit code `kubectl exec`
//! returns); the client going away, the device going away, the idle timeout and the
//! gateway's shutdown each end the stream on both sides.

use edge_protocol::{
    RequestId, STREAM_PROTOCOL_VERSION, StdioSelection, StreamChannel, StreamClose,
    StreamErrorCode, StreamOpen, StreamResize, StreamTarget, TerminalSize,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::spdy_io::{ConnectionError, Step};
use super::streaming::{CheckedTarget, RemoteCommand, StreamSettings};
use crate::device_streams::{
    CONNECTION_EVENT_BUFFER, DeviceStreamMessage, DeviceStreams, EndReason, StreamEvent,
    StreamFlow, StreamKind, gateway_close,
};
use crate::stream_protocols::remote_command::{ExecOptions, ExitStatus};

/// How long the device stream of a TTY waits for the client's first terminal size
/// (kubectl sends it at once); stdin that arrives meanwhile is held.
pub(super) const TTY_SIZE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// What an exec client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ClientEvent {
    /// Every stream the client asked for is there: the device can be asked to start.
    Ready,
    Stdin(Vec<u8>),
    /// stdin reached EOF.
    StdinEnd,
    Resize(TerminalSize),
    /// The client broke the protocol or went away.
    Gone(String),
}

/// The client side of an exec or attach: the protocol's framing over the upgraded
/// connection.
pub(super) trait ExecClient: Send {
    /// Waits for the client's next events (cancel-safe: nothing is lost if dropped).
    fn read(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Vec<ClientEvent>, ConnectionError>> + Send;
    /// Writes what was queued; returns once the client has it.
    fn flush(&mut self) -> impl std::future::Future<Output = Result<(), ConnectionError>> + Send;
    /// Queues output of the process; `end`: nothing more follows on that channel.
    fn output(&mut self, channel: StreamChannel, data: &[u8], end: bool);
    /// Queues the final status (the exit code) and the end of every stream.
    fn finish(&mut self, status: &ExitStatus);
    /// The gateway shuts down (SPDY: GOAWAY).
    fn go_away(&mut self);
    /// Flushes, waits a little for the client to close, closes.
    fn linger(self) -> impl std::future::Future<Output = ()> + Send;
}

/// One exec or attach connection.
pub(super) struct ExecSession {
    pub streams: std::sync::Arc<DeviceStreams>,
    pub target: CheckedTarget,
    pub container: String,
    pub kind: RemoteCommand,
    pub options: ExecOptions,
    pub settings: StreamSettings,
    pub shutdown: CancellationToken,
}

/// How the relay ended: why, and the status for the error stream (none when the client
/// is gone).
struct Ending {
    reason: EndReason,
    status: Option<ExitStatus>,
    /// What to tell the device, if it still runs the stream.
    tell_device: Option<StreamClose>,
}

/// The error stream's status for the device's close.
pub(super) fn exit_status(close: &StreamClose) -> ExitStatus {
    match (&close.error, close.exit_code) {
        (Some(e), _) => ExitStatus::Failed(e.message.clone()),
        (None, Some(code)) => ExitStatus::Exited(u8::try_from(code.rem_euclid(256)).unwrap_or(1)),
        (None, None) => ExitStatus::Exited(0),
    }
}

/// The relay's state once the device stream is open.
struct Relay {
    id: RequestId,
    flow: StreamFlow,
    /// Device output queued to the client and not yet credited.
    unflushed: usize,
    /// The device answered the open.
    opened: bool,
}

/// What one connection knows as it goes.
struct ExecState {
    relay: Option<Relay>,
    /// A terminal size not yet sent to the device.
    size: Option<TerminalSize>,
    /// The client is ready but the TTY's size has not come yet: open at the latest then.
    open_after: Option<Instant>,
    /// Stdin that came while waiting for the size, and whether it ended.
    early_input: Vec<u8>,
    early_end: bool,
    tx: mpsc::Sender<StreamEvent>,
    broken: CancellationToken,
    deadline: Instant,
}

impl ExecSession {
    fn stream_kind(&self) -> StreamKind {
        match self.kind {
            RemoteCommand::Exec { .. } => StreamKind::Exec,
            RemoteCommand::Attach => StreamKind::Attach,
        }
    }

    fn target(&self) -> StreamTarget {
        let stdio = StdioSelection {
            stdin: self.options.stdin,
            stdout: self.options.stdout,
            stderr: self.options.stderr,
            tty: self.options.tty,
        };
        let pod = self.target.pod.clone();
        let container = self.container.clone();
        match &self.kind {
            RemoteCommand::Exec { command } => StreamTarget::Exec {
                pod,
                container,
                command: command.clone(),
                stdio,
            },
            RemoteCommand::Attach => StreamTarget::Attach {
                pod,
                container,
                stdio,
            },
        }
    }

    /// Serves the client until the stream ends.
    pub async fn run<C: ExecClient>(self, mut conn: C) {
        let (tx, mut rx) = mpsc::channel(CONNECTION_EVENT_BUFFER);
        let device = self.target.device.clone();
        let mut st = ExecState {
            relay: None,
            size: None,
            open_after: None,
            early_input: Vec::new(),
            early_end: false,
            tx,
            broken: CancellationToken::new(),
            deadline: Instant::now() + self.settings.open_timeout,
        };
        let ending = loop {
            // what the last step queued for the client, then credit for what it got
            if let Err(e) = conn.flush().await {
                break self.client_gone(&e);
            }
            if let Some(r) = st.relay.as_mut() {
                if let Some(credit) = r.flow.delivered(std::mem::take(&mut r.unflushed)) {
                    self.streams.send(&device, &r.id, credit);
                }
            }
            let may_read = match st.relay.as_ref() {
                Some(r) => !r.flow.input_full(),
                None => st.early_input.len() < crate::device_streams::MAX_INPUT_BACKLOG,
            };
            let broken = st.broken.clone();
            let wake = st.open_after.map_or(st.deadline, |t| t.min(st.deadline));
            let step = tokio::select! {
                r = conn.read(), if may_read => Step::Client(r),
                e = rx.recv() => Step::Device(e),
                _ = tokio::time::sleep_until(wake) => Step::Timer,
                _ = broken.cancelled() => Step::Broken,
                _ = self.shutdown.cancelled() => Step::Shutdown,
            };
            let ended = match step {
                Step::Client(Err(e)) => Some(self.client_gone(&e)),
                Step::Client(Ok(events)) => {
                    let mut out = None;
                    for event in events {
                        if out.is_none() {
                            out = self.on_client(event, &mut st);
                        }
                    }
                    if st.relay.as_ref().is_some_and(|r| r.opened) {
                        st.deadline = Instant::now() + self.settings.idle_timeout;
                    }
                    out
                }
                Step::Device(None) => None,
                Step::Device(Some(event)) => {
                    let out = self.on_device(event, &mut conn, &mut st);
                    if st.relay.as_ref().is_some_and(|r| r.opened) {
                        st.deadline = Instant::now() + self.settings.idle_timeout;
                    }
                    out
                }
                Step::Timer if st.open_after.is_some_and(|t| t <= Instant::now()) => {
                    self.open_device_stream(&mut st);
                    None
                }
                Step::Timer => Some(self.timed_out(st.relay.as_ref())),
                Step::Broken => Some(Ending {
                    reason: EndReason::Protocol,
                    status: Some(ExitStatus::Failed(format!(
                        "node {device} sent more stream messages than the client read"
                    ))),
                    tell_device: Some(gateway_close(
                        StreamErrorCode::Protocol,
                        "too many messages in flight",
                    )),
                }),
                Step::Shutdown => Some(Ending {
                    reason: EndReason::Shutdown,
                    status: Some(ExitStatus::Failed(
                        "the edge gateway is shutting down".into(),
                    )),
                    tell_device: Some(gateway_close(
                        StreamErrorCode::Cancelled,
                        "the edge gateway is shutting down",
                    )),
                }),
            };
            if let Some(ending) = ended {
                break ending;
            }
        };
        if let Some(r) = &st.relay {
            if let Some(close) = ending.tell_device.clone() {
                self.streams.send(&device, &r.id, close);
            }
            self.streams
                .finish(&r.id, self.stream_kind(), ending.reason);
        }
        if let Some(status) = &ending.status {
            conn.finish(status);
        }
        if ending.reason == EndReason::Shutdown {
            conn.go_away();
        }
        debug!(%device, reason = ending.reason.as_str(), "exec stream ended");
        conn.linger().await;
    }

    /// Every stream of the client is there (and a TTY's size, or its wait is over): the
    /// device is asked to start.
    fn open_device_stream(&self, st: &mut ExecState) {
        st.open_after = None;
        let device = &self.target.device;
        let id = self
            .streams
            .open(device, self.stream_kind(), st.tx.clone(), st.broken.clone());
        self.streams.send(
            device,
            &id,
            StreamOpen {
                version: STREAM_PROTOCOL_VERSION,
                target: self.target(),
                terminal_size: st.size.take(),
                window_bytes: StreamFlow::granted_window(),
            },
        );
        let mut flow = StreamFlow::new(StreamChannel::Stdin);
        // held until the device answers the open: no frames yet
        let _ = flow.push_input(&std::mem::take(&mut st.early_input));
        if std::mem::take(&mut st.early_end) {
            let _ = flow.end_input();
        }
        st.relay = Some(Relay {
            id,
            flow,
            unflushed: 0,
            opened: false,
        });
        st.deadline = Instant::now() + self.settings.open_timeout;
    }

    fn client_gone(&self, e: &ConnectionError) -> Ending {
        debug!(error = %e, "exec client went away");
        Ending {
            reason: EndReason::Client,
            status: None,
            tell_device: Some(gateway_close(
                StreamErrorCode::Cancelled,
                "the client went away",
            )),
        }
    }

    fn timed_out(&self, relay: Option<&Relay>) -> Ending {
        let device = &self.target.device;
        if relay.is_some_and(|r| r.opened) {
            return Ending {
                reason: EndReason::Idle,
                status: Some(ExitStatus::Failed(format!(
                    "no data for {:?} (--streaming-connection-idle-timeout)",
                    self.settings.idle_timeout
                ))),
                tell_device: Some(gateway_close(
                    StreamErrorCode::IdleTimeout,
                    "idle for longer than the streaming connection idle timeout",
                )),
            };
        }
        let message = if relay.is_some() {
            format!(
                "node {device} did not answer within {:?}: its edge-agent may be busy or disconnecting",
                self.settings.open_timeout
            )
        } else {
            "timed out waiting for the client to create its streams".to_owned()
        };
        Ending {
            reason: EndReason::OpenTimeout,
            status: Some(ExitStatus::Failed(message)),
            tell_device: Some(gateway_close(
                StreamErrorCode::Cancelled,
                "no answer in time",
            )),
        }
    }

    /// One event of the client; an ending if it ends the stream.
    fn on_client(&self, event: ClientEvent, st: &mut ExecState) -> Option<Ending> {
        let device = &self.target.device;
        match event {
            ClientEvent::Ready => {
                if st.relay.is_none() && st.open_after.is_none() {
                    if self.options.tty && st.size.is_none() {
                        st.open_after = Some(Instant::now() + TTY_SIZE_WAIT);
                    } else {
                        self.open_device_stream(st);
                    }
                }
            }
            ClientEvent::Stdin(data) => match st.relay.as_mut() {
                Some(r) => {
                    for frame in r.flow.push_input(&data) {
                        self.streams.send(device, &r.id, frame);
                    }
                }
                None if st.open_after.is_some() => st.early_input.extend_from_slice(&data),
                None => {}
            },
            ClientEvent::StdinEnd => match st.relay.as_mut() {
                Some(r) => {
                    for frame in r.flow.end_input() {
                        self.streams.send(device, &r.id, frame);
                    }
                }
                None => st.early_end = st.open_after.is_some(),
            },
            ClientEvent::Resize(size) => match st.relay.as_ref().filter(|r| r.opened) {
                Some(r) => self.streams.send(device, &r.id, StreamResize { size }),
                None => {
                    st.size = Some(size);
                    if st.open_after.is_some() {
                        self.open_device_stream(st);
                    }
                }
            },
            ClientEvent::Gone(why) => {
                debug!(why, "exec client broke the protocol");
                return Some(Ending {
                    reason: EndReason::Client,
                    status: None,
                    tell_device: Some(gateway_close(StreamErrorCode::Cancelled, why)),
                });
            }
        }
        None
    }

    /// One message of the device; an ending if it ends the stream.
    fn on_device<C: ExecClient>(
        &self,
        event: StreamEvent,
        conn: &mut C,
        st: &mut ExecState,
    ) -> Option<Ending> {
        let device = &self.target.device;
        let r = st.relay.as_mut()?;
        let message = match event {
            StreamEvent::DeviceGone { reason, .. } => {
                return Some(Ending {
                    reason: EndReason::DeviceGone,
                    status: Some(ExitStatus::Failed(reason)),
                    tell_device: None,
                });
            }
            StreamEvent::Device { message, .. } => message,
        };
        match message {
            DeviceStreamMessage::Opened(o) => {
                r.opened = true;
                for frame in r.flow.opened(o.window_bytes) {
                    self.streams.send(device, &r.id, frame);
                }
                if let Some(size) = st.size.take() {
                    self.streams.send(device, &r.id, StreamResize { size });
                }
            }
            DeviceStreamMessage::Credit(c) => {
                for frame in r.flow.credit(c) {
                    self.streams.send(device, &r.id, frame);
                }
            }
            DeviceStreamMessage::Data(d) => {
                match r.flow.receive(&d) {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => {
                        return Some(Ending {
                            reason: EndReason::Protocol,
                            status: Some(ExitStatus::Failed(format!(
                                "node {device} broke the stream protocol: {e}"
                            ))),
                            tell_device: Some(gateway_close(
                                StreamErrorCode::Protocol,
                                e.to_string(),
                            )),
                        });
                    }
                }
                let bytes = d.data.as_slice();
                r.unflushed += bytes.len();
                conn.output(d.channel, bytes, d.end);
            }
            DeviceStreamMessage::Close(close) => {
                let reason = if r.opened {
                    EndReason::Device
                } else {
                    EndReason::Refused
                };
                return Some(Ending {
                    reason,
                    status: Some(exit_status(&close)),
                    tell_device: None,
                });
            }
        }
        None
    }
}
