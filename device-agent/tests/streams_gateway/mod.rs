//! The gateway's side of a stream, played by a test over MQTT: opens, sends input within
//! the window the agent grants, checks order and window of what comes back with the
//! protocol's own [`ReceiveWindow`], and returns credit (or not, to play a slow reader).
#![allow(dead_code, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use edge_protocol::stream::{ReceiveWindow, Received, SendWindow};
use edge_protocol::{
    DownChannel, MAX_STREAM_DATA_BYTES, Message, RequestId, StreamChannel, StreamClose, StreamOpen,
    StreamResize, StreamTarget, TerminalSize, Topic, UpChannel,
};

use crate::common::TestGateway;

/// What came back on a stream.
#[derive(Debug, Default)]
pub struct Outcome {
    pub opened: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub data: Vec<u8>,
    pub ended: Vec<StreamChannel>,
    pub close: Option<StreamClose>,
    /// Data frames that came as binary frames / as JSON envelopes.
    pub binary_data_frames: usize,
    pub json_data_frames: usize,
}

impl Outcome {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

pub struct GatewayStream<'a> {
    gw: &'a TestGateway,
    pub id: RequestId,
    seen: usize,
    receive: ReceiveWindow,
    send: Option<SendWindow>,
    /// Return credit for what arrives (false: a reader that never reads).
    pub give_credit: bool,
    pub outcome: Outcome,
    sent_sequence: u64,
    credited: u64,
}

impl<'a> GatewayStream<'a> {
    pub async fn open(
        gw: &'a TestGateway,
        id: &str,
        target: StreamTarget,
        terminal_size: Option<TerminalSize>,
        window_bytes: u64,
    ) -> Self {
        Self::open_as(
            gw,
            id,
            target,
            terminal_size,
            window_bytes,
            edge_protocol::STREAM_PROTOCOL_VERSION,
        )
        .await
    }

    /// Opens as a gateway speaking stream protocol `version`.
    pub async fn open_as(
        gw: &'a TestGateway,
        id: &str,
        target: StreamTarget,
        terminal_size: Option<TerminalSize>,
        window_bytes: u64,
        version: u32,
    ) -> Self {
        let id = RequestId::new(id).unwrap();
        let open = StreamOpen {
            version,
            target,
            terminal_size,
            window_bytes,
        };
        gw.publish(DownChannel::Stream(id.clone()), open.into())
            .await;
        Self {
            gw,
            id,
            seen: 0,
            receive: ReceiveWindow::new(window_bytes),
            send: None,
            give_credit: true,
            outcome: Outcome::default(),
            sent_sequence: 0,
            credited: 0,
        }
    }

    pub async fn publish(&self, message: Message) {
        self.gw
            .publish(DownChannel::Stream(self.id.clone()), message)
            .await;
    }

    /// The next message of this stream, if one arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let received = self.gw.received.lock().unwrap();
                while self.seen < received.len() {
                    let r = &received[self.seen];
                    self.seen += 1;
                    if let Topic::Up {
                        channel: UpChannel::Stream(id),
                        ..
                    } = &r.topic
                        && *id == self.id
                    {
                        if matches!(r.message, Message::StreamData(_)) {
                            if r.binary {
                                self.outcome.binary_data_frames += 1;
                            } else {
                                self.outcome.json_data_frames += 1;
                            }
                        }
                        return Some(r.message.clone());
                    }
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Handles one message from the agent: data checked and kept (credit returned),
    /// credit added to the window, the close kept.
    async fn handle(&mut self, message: Message) {
        match message {
            Message::StreamOpened(o) => {
                assert!(!self.outcome.opened, "opened twice");
                self.outcome.opened = true;
                self.send = Some(SendWindow::new(o.window_bytes));
            }
            Message::StreamData(d) => {
                assert!(self.outcome.close.is_none(), "data after the close");
                match self.receive.accept(&d) {
                    Ok(Received::New) => {}
                    other => panic!("agent broke the stream's rules: {other:?} for {d:?}"),
                }
                let bytes = d.data.as_slice();
                match d.channel {
                    StreamChannel::Stdout => self.outcome.stdout.extend_from_slice(bytes),
                    StreamChannel::Stderr => self.outcome.stderr.extend_from_slice(bytes),
                    StreamChannel::Data => self.outcome.data.extend_from_slice(bytes),
                    StreamChannel::Stdin => panic!("agent sent on stdin"),
                }
                if d.end {
                    self.outcome.ended.push(d.channel);
                }
                if self.give_credit
                    && let Some(credit) = self.receive.consumed(bytes.len())
                {
                    self.credited += credit.bytes;
                    self.publish(credit.into()).await;
                }
            }
            Message::StreamCredit(c) => self.send.as_mut().expect("credit before opened").credit(c),
            Message::StreamClose(c) => self.outcome.close = Some(c),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Handles what arrives for up to `timeout` or until the close.
    pub async fn pump(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.outcome.close.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(m) => self.handle(m).await,
                None => return,
            }
        }
    }

    /// Sends `input` on `channel` within the agent's window (handling what arrives
    /// meanwhile), with `end` on the last frame.
    pub async fn send_input(&mut self, channel: StreamChannel, input: &[u8], end: bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.outcome.opened {
            let m = self.next(Duration::from_secs(30)).await.expect("opened");
            self.handle(m).await;
            assert!(
                self.outcome.close.is_none(),
                "closed: {:?}",
                self.outcome.close
            );
        }
        let mut rest = input;
        loop {
            let limit = self.send.as_ref().unwrap().next_frame_limit();
            if limit > 0 || rest.is_empty() {
                let n = rest.len().min(limit).min(MAX_STREAM_DATA_BYTES);
                let (chunk, tail) = rest.split_at(n);
                let last = tail.is_empty();
                let frame = self
                    .send
                    .as_mut()
                    .unwrap()
                    .frame(channel, chunk.to_vec(), last && end)
                    .unwrap();
                self.sent_sequence = frame.sequence + 1;
                self.publish(frame.into()).await;
                rest = tail;
                if last {
                    return;
                }
                continue;
            }
            assert!(Instant::now() < deadline, "no credit from the agent");
            if let Some(m) = self.next(Duration::from_millis(50)).await {
                self.handle(m).await;
                assert!(
                    self.outcome.close.is_none(),
                    "closed: {:?}",
                    self.outcome.close
                );
            }
        }
    }

    pub async fn resize(&self, width: u16, height: u16) {
        self.publish(
            StreamResize {
                size: TerminalSize { width, height },
            }
            .into(),
        )
        .await;
    }

    /// Waits for the close (at most 60 s) and returns everything that came back.
    pub async fn finish(mut self) -> Outcome {
        self.pump(Duration::from_secs(60)).await;
        assert!(self.outcome.close.is_some(), "no close: {:?}", self.outcome);
        self.outcome
    }

    /// Ends the stream from the gateway's side.
    pub async fn close(&self) {
        self.publish(StreamClose::default().into()).await;
    }

    /// Returns credit for everything received so far (a slow reader catching up).
    pub async fn credit_received(&mut self) {
        let received = (self.outcome.stdout.len()
            + self.outcome.stderr.len()
            + self.outcome.data.len()) as u64;
        let uncredited = received - self.credited;
        if let Some(credit) = self.receive.consumed(uncredited as usize) {
            self.credited += credit.bytes;
            self.publish(credit.into()).await;
        }
    }
}

/// Opens a stream with the default window, no terminal and no input, and waits for its
/// close.
pub async fn run_to_close(gw: &TestGateway, id: &str, target: StreamTarget) -> Outcome {
    GatewayStream::open(
        gw,
        id,
        target,
        None,
        edge_protocol::DEFAULT_STREAM_WINDOW_BYTES,
    )
    .await
    .finish()
    .await
}
