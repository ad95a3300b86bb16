//! Port-forward over SPDY, relayed to the device: each forwarded connection (a data and
//! an error stream paired by `requestID`) becomes one MQTT stream to the device, so
//! several ports and several connections per port share one SPDY connection. Bytes move
//! under each stream's flow control ([`StreamFlow`]); the client is read only while no
//! stream's input is over its backlog. A failure (connection refused, the device going
//! away) is written to that connection's error stream in the kubelet's words.

use std::collections::HashMap;
use std::time::Duration;

use edge_protocol::{
    RequestId, STREAM_PROTOCOL_VERSION, StreamChannel, StreamErrorCode, StreamOpen, StreamTarget,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::spdy_io::{SpdyConnection, Step};
use super::streaming::{CheckedTarget, StreamSettings};
use crate::device_streams::{
    CONNECTION_EVENT_BUFFER, DeviceStreamMessage, DeviceStreams, EndReason, StreamEvent,
    StreamFlow, StreamKind, gateway_close,
};
use crate::stream_protocols::port_forward::{
    PortForwardPair, SpdyPortForwardPairer, forward_error_message,
};
use crate::stream_protocols::spdy_frame::GoAwayStatus;
use crate::stream_protocols::spdy_headers::HeaderBlock;
use crate::stream_protocols::spdy_session::SessionEvent;

const LINGER: Duration = Duration::from_secs(1);

/// One port-forward connection.
pub(super) struct PortForwardSession {
    pub streams: std::sync::Arc<DeviceStreams>,
    pub target: CheckedTarget,
    pub settings: StreamSettings,
    pub shutdown: CancellationToken,
}

/// One forwarded connection.
struct Forward {
    pair: PortForwardPair,
    flow: StreamFlow,
    unflushed: usize,
    opened: bool,
    /// When the device must have answered the open.
    open_deadline: Instant,
}

struct ForwardState {
    pairer: SpdyPortForwardPairer,
    forwards: HashMap<RequestId, Forward>,
    /// Stream id of each data stream → the MQTT stream.
    by_data: HashMap<u32, RequestId>,
    tx: mpsc::Sender<StreamEvent>,
    broken: CancellationToken,
    idle_deadline: Instant,
}

impl PortForwardSession {
    /// Serves the upgraded connection until the client or the gateway ends it.
    pub async fn run<IO: AsyncRead + AsyncWrite + Send>(self, io: IO) {
        let mut conn = match SpdyConnection::new(io) {
            Ok(c) => c,
            Err(e) => return debug!(error = %e, "cannot start a SPDY session"),
        };
        let (tx, mut rx) = mpsc::channel(CONNECTION_EVENT_BUFFER);
        let mut st = ForwardState {
            pairer: SpdyPortForwardPairer::default(),
            forwards: HashMap::new(),
            by_data: HashMap::new(),
            tx,
            broken: CancellationToken::new(),
            idle_deadline: Instant::now() + self.settings.idle_timeout,
        };
        let reason = loop {
            if conn.flush().await.is_err() {
                break EndReason::Client;
            }
            for (id, f) in st.forwards.iter_mut() {
                if let Some(credit) = f.flow.delivered(std::mem::take(&mut f.unflushed)) {
                    self.streams.send(&self.target.device, id, credit);
                }
            }
            let may_read = st.forwards.values().all(|f| !f.flow.input_full());
            let deadline = st
                .forwards
                .values()
                .filter(|f| !f.opened)
                .map(|f| f.open_deadline)
                .min()
                .unwrap_or(st.idle_deadline)
                .min(st.idle_deadline);
            let broken = st.broken.clone();
            let step = tokio::select! {
                r = conn.read(), if may_read => Step::Client(r),
                e = rx.recv() => Step::Device(e),
                _ = tokio::time::sleep_until(deadline) => Step::Timer,
                _ = broken.cancelled() => Step::Broken,
                _ = self.shutdown.cancelled() => Step::Shutdown,
            };
            match step {
                Step::Client(Err(e)) => {
                    debug!(error = %e, "port-forward client went away");
                    break EndReason::Client;
                }
                Step::Client(Ok(())) => {
                    st.idle_deadline = Instant::now() + self.settings.idle_timeout;
                    while let Some(event) = conn.session.poll_event() {
                        self.on_client(event, &mut conn, &mut st);
                    }
                }
                Step::Device(None) => {}
                Step::Device(Some(event)) => {
                    st.idle_deadline = Instant::now() + self.settings.idle_timeout;
                    self.on_device(event, &mut conn, &mut st);
                }
                Step::Timer => {
                    if Instant::now() >= st.idle_deadline {
                        break EndReason::Idle;
                    }
                    self.open_timeouts(&mut conn, &mut st);
                }
                Step::Broken => break EndReason::Protocol,
                Step::Shutdown => {
                    conn.session.go_away(GoAwayStatus::OK);
                    break EndReason::Shutdown;
                }
            }
        };
        let (code, message) = match reason {
            EndReason::Idle => (StreamErrorCode::IdleTimeout, "idle timeout"),
            EndReason::Protocol => (StreamErrorCode::Protocol, "too many messages in flight"),
            _ => (StreamErrorCode::Cancelled, "the client went away"),
        };
        for (id, f) in st.forwards.drain() {
            self.streams
                .send(&self.target.device, &id, gateway_close(code, message));
            self.streams.finish(&id, StreamKind::PortForward, reason);
            if reason != EndReason::Client {
                let text = self.error_text(f.pair.port, message);
                let _ = conn
                    .session
                    .send_data(f.pair.error_stream, text.as_bytes(), true);
                let _ = conn.session.close_stream(f.pair.data_stream);
            }
        }
        debug!(device = %self.target.device, reason = reason.as_str(), "port-forward connection ended");
        conn.linger(LINGER).await;
    }

    fn error_text(&self, port: u16, error: &str) -> String {
        let pod = &self.target.pod;
        forward_error_message(port, &pod.pod_name, &pod.pod_uid, error)
    }

    fn on_client<IO: AsyncRead + AsyncWrite>(
        &self,
        event: SessionEvent,
        conn: &mut SpdyConnection<IO>,
        st: &mut ForwardState,
    ) {
        let device = &self.target.device;
        match event {
            SessionEvent::StreamOpened { stream_id, headers } => {
                if conn
                    .session
                    .reply(stream_id, &HeaderBlock::new(), false)
                    .is_err()
                {
                    return;
                }
                match st.pairer.accept(stream_id, &headers) {
                    Ok(Some(pair)) => self.open_forward(pair, st),
                    Ok(None) => {}
                    Err(e) => {
                        debug!(error = %e, "port-forward client opened a wrong stream");
                        conn.session.reset(
                            stream_id,
                            crate::stream_protocols::spdy_frame::RstStatus::PROTOCOL_ERROR,
                        );
                    }
                }
            }
            SessionEvent::Data { stream_id, data } => {
                let Some(id) = st.by_data.get(&stream_id) else {
                    return;
                };
                if let Some(f) = st.forwards.get_mut(id) {
                    for frame in f.flow.push_input(&data) {
                        self.streams.send(device, id, frame);
                    }
                }
            }
            SessionEvent::RemoteFinished { stream_id } => {
                let Some(id) = st.by_data.get(&stream_id) else {
                    return;
                };
                if let Some(f) = st.forwards.get_mut(id) {
                    for frame in f.flow.end_input() {
                        self.streams.send(device, id, frame);
                    }
                }
            }
            SessionEvent::StreamReset { stream_id, .. } => {
                st.pairer.forget_stream(stream_id);
                let id = st.forwards.iter().find_map(|(id, f)| {
                    (f.pair.data_stream == stream_id || f.pair.error_stream == stream_id)
                        .then(|| id.clone())
                });
                if let Some(id) = id {
                    self.streams.send(
                        device,
                        &id,
                        gateway_close(StreamErrorCode::Cancelled, "the client reset the stream"),
                    );
                    self.end_forward(&id, EndReason::Client, conn, st, None);
                }
            }
            _ => {}
        }
    }

    fn open_forward(&self, pair: PortForwardPair, st: &mut ForwardState) {
        let device = &self.target.device;
        let id = self.streams.open(
            device,
            StreamKind::PortForward,
            st.tx.clone(),
            st.broken.clone(),
        );
        self.streams.send(
            device,
            &id,
            StreamOpen {
                version: STREAM_PROTOCOL_VERSION,
                target: StreamTarget::PortForward {
                    pod: self.target.pod.clone(),
                    port: pair.port,
                },
                terminal_size: None,
                window_bytes: StreamFlow::granted_window(),
            },
        );
        st.by_data.insert(pair.data_stream, id.clone());
        st.forwards.insert(
            id,
            Forward {
                pair,
                flow: StreamFlow::new(StreamChannel::Data),
                unflushed: 0,
                opened: false,
                open_deadline: Instant::now() + self.settings.open_timeout,
            },
        );
    }

    /// Ends one forwarded connection: its error (if any) on the error stream, both
    /// streams closed.
    fn end_forward<IO: AsyncRead + AsyncWrite>(
        &self,
        id: &RequestId,
        reason: EndReason,
        conn: &mut SpdyConnection<IO>,
        st: &mut ForwardState,
        error: Option<&str>,
    ) {
        let Some(f) = st.forwards.remove(id) else {
            return;
        };
        st.by_data.remove(&f.pair.data_stream);
        self.streams.finish(id, StreamKind::PortForward, reason);
        if let Some(error) = error {
            let text = self.error_text(f.pair.port, error);
            let _ = conn
                .session
                .send_data(f.pair.error_stream, text.as_bytes(), false);
        }
        let _ = conn.session.close_stream(f.pair.error_stream);
        let _ = conn.session.close_stream(f.pair.data_stream);
    }

    fn open_timeouts<IO: AsyncRead + AsyncWrite>(
        &self,
        conn: &mut SpdyConnection<IO>,
        st: &mut ForwardState,
    ) {
        let now = Instant::now();
        let late: Vec<RequestId> = st
            .forwards
            .iter()
            .filter(|(_, f)| !f.opened && f.open_deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        let device = &self.target.device;
        for id in late {
            self.streams.send(
                device,
                &id,
                gateway_close(StreamErrorCode::Cancelled, "no answer in time"),
            );
            let error = format!(
                "node {device} did not answer within {:?}",
                self.settings.open_timeout
            );
            self.end_forward(&id, EndReason::OpenTimeout, conn, st, Some(&error));
        }
    }

    fn on_device<IO: AsyncRead + AsyncWrite>(
        &self,
        event: StreamEvent,
        conn: &mut SpdyConnection<IO>,
        st: &mut ForwardState,
    ) {
        let device = &self.target.device;
        let (id, message) = match event {
            StreamEvent::DeviceGone { id, reason } => {
                return self.end_forward(&id, EndReason::DeviceGone, conn, st, Some(&reason));
            }
            StreamEvent::Device { id, message } => (id, message),
        };
        let Some(f) = st.forwards.get_mut(&id) else {
            return;
        };
        match message {
            DeviceStreamMessage::Opened(o) => {
                f.opened = true;
                for frame in f.flow.opened(o.window_bytes) {
                    self.streams.send(device, &id, frame);
                }
            }
            DeviceStreamMessage::Credit(c) => {
                for frame in f.flow.credit(c) {
                    self.streams.send(device, &id, frame);
                }
            }
            DeviceStreamMessage::Data(d) => match f.flow.receive(&d) {
                Ok(true) => {
                    let bytes = d.data.as_slice();
                    f.unflushed += bytes.len();
                    if !bytes.is_empty() {
                        let _ = conn.session.send_data(f.pair.data_stream, bytes, false);
                    }
                    if d.end {
                        let _ = conn.session.close_stream(f.pair.data_stream);
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    let message = e.to_string();
                    self.streams.send(
                        device,
                        &id,
                        gateway_close(StreamErrorCode::Protocol, &message),
                    );
                    self.end_forward(&id, EndReason::Protocol, conn, st, Some(&message));
                }
            },
            DeviceStreamMessage::Close(close) => {
                let reason = if f.opened {
                    EndReason::Device
                } else {
                    EndReason::Refused
                };
                let error = close.error.map(|e| e.message);
                self.end_forward(&id, reason, conn, st, error.as_deref());
            }
        }
    }
}
