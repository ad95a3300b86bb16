//! The fake device's side of exec, attach and port-forward streams, scripted and
//! flow-controlled with the protocol's own windows:
//!
//! - exec of any command: `stdout` gets `ran <command>\n`, then stdin is echoed to stdout;
//!   at stdin EOF (at once without stdin) the exec exits with the code N of a command
//!   containing `exit N` (else 0);
//! - exec of `flood N`: N bytes of `x` on stdout, sent only as the gateway grants credit,
//!   then exit 0;
//! - a TTY's size, from the open or a resize, writes `resized to WxH` to stdout;
//! - port-forward to 8080-8089 echoes the connection (and closes it after the client's
//!   FIN); any other port is refused like a closed port;
//! - attach writes `attached`, then echoes stdin; it ends at stdin EOF (at once without
//!   stdin);
//! - a container not in the pod is `NotFound`.

use std::collections::{HashMap, VecDeque};

use edge_protocol::stream::{ReceiveWindow, Received, SendWindow};
use edge_protocol::{
    DEFAULT_STREAM_WINDOW_BYTES, Message, PodSpec, RequestId, StreamChannel, StreamClose,
    StreamData, StreamError, StreamErrorCode, StreamOpen, StreamOpened, StreamTarget, TerminalSize,
};

/// The ports the fake device echoes on; others refuse.
pub const ECHO_PORTS: std::ops::RangeInclusive<u16> = 8080..=8089;

/// What the device's streams saw, for tests.
#[derive(Debug, Clone, Default)]
pub struct FakeStreamsView {
    /// Every open the gateway sent.
    pub opens: Vec<StreamOpen>,
    /// Terminal sizes: from opens and resizes, in order.
    pub resizes: Vec<TerminalSize>,
    /// Stdin / port-forward bytes received, all streams.
    pub input: Vec<u8>,
    /// Ends of input received.
    pub input_ends: usize,
    /// Closes the gateway sent (client gone, idle, shutdown...).
    pub closes_from_gateway: Vec<StreamClose>,
    /// Streams open on the device now.
    pub open: usize,
    /// Output bytes the device still holds back for want of credit (all streams).
    pub output_waiting: usize,
    /// Output bytes sent in all.
    pub output_sent: u64,
}

#[derive(Debug)]
struct FakeStream {
    send: SendWindow,
    receive: ReceiveWindow,
    channel: StreamChannel,
    output: VecDeque<u8>,
    /// Close with this once the output is sent.
    exit_after_output: Option<StreamClose>,
    /// Close with this once stdin has ended.
    exit_at_input_end: Option<StreamClose>,
    /// A TTY exec waits for a terminal size before it exits (as a shell would print
    /// its prompt for it), so that the size is always seen.
    awaiting_size: bool,
    input_ended: bool,
}

/// Open streams of the fake device.
#[derive(Debug, Default)]
pub(super) struct FakeStreams {
    streams: HashMap<RequestId, FakeStream>,
    pub view: FakeStreamsView,
}

fn close_with(code: StreamErrorCode, message: String) -> StreamClose {
    StreamClose {
        exit_code: None,
        error: Some(StreamError { code, message }),
    }
}

fn exit_code_of(command: &[String]) -> i32 {
    let words: Vec<&str> = command.iter().flat_map(|c| c.split_whitespace()).collect();
    words
        .windows(2)
        .find(|w| w[0] == "exit")
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(0)
}

impl FakeStreams {
    /// Handles one message of the gateway on `down/stream/{id}`; returns what to publish
    /// on `up/stream/{id}`.
    pub fn handle(
        &mut self,
        id: &RequestId,
        message: Message,
        pods: &std::collections::BTreeMap<String, PodSpec>,
    ) -> Vec<Message> {
        let mut out = Vec::new();
        match message {
            Message::StreamOpen(open) => self.open(id, open, pods, &mut out),
            Message::StreamData(data) => self.input(id, data, &mut out),
            Message::StreamCredit(credit) => {
                if let Some(s) = self.streams.get_mut(id) {
                    s.send.credit(credit);
                }
                self.pump(id, &mut out);
            }
            Message::StreamResize(resize) => {
                self.view.resizes.push(resize.size);
                if let Some(s) = self.streams.get_mut(id) {
                    let line = format!("resized to {}x{}\n", resize.size.width, resize.size.height);
                    s.output.extend(line.as_bytes());
                    s.awaiting_size = false;
                    if s.input_ended {
                        s.exit_after_output =
                            s.exit_at_input_end.take().or(s.exit_after_output.take());
                    }
                }
                self.pump(id, &mut out);
            }
            Message::StreamClose(close) => {
                self.view.closes_from_gateway.push(close);
                self.streams.remove(id);
            }
            _ => {}
        }
        self.view.open = self.streams.len();
        self.view.output_waiting = self.streams.values().map(|s| s.output.len()).sum();
        out
    }

    fn open(
        &mut self,
        id: &RequestId,
        open: StreamOpen,
        pods: &std::collections::BTreeMap<String, PodSpec>,
        out: &mut Vec<Message>,
    ) {
        self.view.opens.push(open.clone());
        if let Some(size) = open.terminal_size {
            self.view.resizes.push(size);
        }
        let pod = pods.get(&open.target.pod().pod_uid);
        let mut stream = FakeStream {
            send: SendWindow::new(open.window_bytes),
            receive: ReceiveWindow::new(DEFAULT_STREAM_WINDOW_BYTES),
            channel: StreamChannel::Stdout,
            output: VecDeque::new(),
            exit_after_output: None,
            exit_at_input_end: None,
            awaiting_size: false,
            input_ended: false,
        };
        let Some(pod) = pod else {
            let message = format!("pod {} is not on this device", open.target.pod().pod_name);
            return out.push(close_with(StreamErrorCode::NotFound, message).into());
        };
        match &open.target {
            StreamTarget::Exec {
                container,
                command,
                stdio,
                ..
            } => {
                if !pod.containers.iter().any(|c| &c.name == container) {
                    let message = format!("container {container} not found");
                    return out.push(close_with(StreamErrorCode::NotFound, message).into());
                }
                stream.awaiting_size = stdio.tty && open.terminal_size.is_none();
                // a terminal that starts with its size (the gateway waits for the
                // client's first one) reports it as a resize would
                if let (true, Some(size)) = (stdio.tty, open.terminal_size) {
                    let line = format!("resized to {}x{}\n", size.width, size.height);
                    stream.output.extend(line.as_bytes());
                }
                if command.first().map(String::as_str) == Some("flood") {
                    let n: usize = command.get(1).and_then(|n| n.parse().ok()).unwrap_or(0);
                    stream.output.extend(std::iter::repeat_n(b'x', n));
                    stream.exit_after_output = Some(StreamClose {
                        exit_code: Some(0),
                        error: None,
                    });
                } else {
                    let line = format!("ran {}\n", command.join(" "));
                    stream.output.extend(line.as_bytes());
                    let exit = StreamClose {
                        exit_code: Some(exit_code_of(command)),
                        error: None,
                    };
                    if stdio.stdin {
                        stream.exit_at_input_end = Some(exit);
                    } else {
                        stream.exit_after_output = Some(exit);
                    }
                }
            }
            StreamTarget::Attach { stdio, .. } => {
                stream.output.extend(b"attached\n");
                let detach = StreamClose::default();
                if stdio.stdin {
                    stream.exit_at_input_end = Some(detach);
                } else {
                    stream.exit_after_output = Some(detach);
                }
            }
            StreamTarget::PortForward { port, .. } => {
                if !ECHO_PORTS.contains(port) {
                    let message = format!("dial tcp 127.0.0.1:{port}: connect: connection refused");
                    return out
                        .push(close_with(StreamErrorCode::ConnectionRefused, message).into());
                }
                stream.channel = StreamChannel::Data;
            }
        }
        out.push(
            // a stream protocol 1 device (no version): the gateway keeps JSON data
            // frames for it, so the tests on this fake device cover that path
            StreamOpened {
                window_bytes: DEFAULT_STREAM_WINDOW_BYTES,
                version: None,
            }
            .into(),
        );
        self.streams.insert(id.clone(), stream);
        self.pump(id, out);
    }

    fn input(&mut self, id: &RequestId, data: StreamData, out: &mut Vec<Message>) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        match s.receive.accept(&data) {
            Ok(Received::New) => {}
            Ok(Received::Duplicate) => return,
            Err(e) => {
                self.streams.remove(id);
                return out.push(close_with(StreamErrorCode::Protocol, e.to_string()).into());
            }
        }
        let bytes = data.data.as_slice();
        self.view.input.extend_from_slice(bytes);
        s.output.extend(bytes);
        if let Some(credit) = s.receive.consumed(bytes.len()) {
            out.push(credit.into());
        }
        if data.end {
            self.view.input_ends += 1;
            s.input_ended = true;
            if !s.awaiting_size {
                s.exit_after_output = s.exit_at_input_end.take().or(Some(StreamClose::default()));
            }
        }
        self.pump(id, out);
    }

    /// Sends what the window allows; closes once everything is out and an exit is due.
    fn pump(&mut self, id: &RequestId, out: &mut Vec<Message>) {
        let Some(s) = self.streams.get_mut(id) else {
            return;
        };
        while !s.output.is_empty() {
            let take = s.send.next_frame_limit().min(s.output.len());
            if take == 0 {
                return;
            }
            let data: Vec<u8> = s.output.drain(..take).collect();
            self.view.output_sent += take as u64;
            let channel = s.channel;
            match s.send.frame(channel, data, false) {
                Ok(frame) => out.push(frame.into()),
                Err(_) => return,
            }
        }
        if s.exit_after_output.is_some() && s.output.is_empty() {
            let mut close = s.exit_after_output.take().unwrap_or_default();
            if s.channel == StreamChannel::Data {
                // a port-forward peer's FIN, then the end of the stream
                if let Ok(frame) = s.send.frame(StreamChannel::Data, Vec::new(), true) {
                    out.push(frame.into());
                }
                close = StreamClose::default();
            }
            out.push(close.into());
            self.streams.remove(id);
        }
    }
}
