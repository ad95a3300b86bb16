//! One stream's rules, as a pure state machine: the order and window of what the
//! gateway sends ([`ReceiveWindow`]), the window of what the device sends
//! ([`SendWindow`]) with at most one read of output held back, the half-close of the
//! input channel, and the idle deadline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use edge_protocol::stream::{FlowError, ReceiveWindow, Received, SendWindow};
use edge_protocol::{
    StreamChannel, StreamClose, StreamCredit, StreamData, StreamError, StreamErrorCode,
};

/// What to do with a frame from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Write `data` to the container's stdin or the socket, then report
    /// [`StreamState::written`]; `end`: close the write half after it.
    Write { data: Vec<u8>, end: bool },
    /// A redelivered frame: nothing to do.
    Duplicate,
}

/// The flow state of one stream.
#[derive(Debug)]
pub struct StreamState {
    receive: ReceiveWindow,
    send: SendWindow,
    /// The channel the gateway may send on (stdin or port-forward data), if any.
    input: Option<StreamChannel>,
    input_ended: bool,
    /// Output read from the container and not yet sent for want of window.
    held: VecDeque<(StreamChannel, Vec<u8>)>,
    idle_timeout: Duration,
    last_activity: Instant,
}

fn protocol_error(message: String) -> StreamClose {
    StreamClose {
        exit_code: None,
        error: Some(StreamError {
            code: StreamErrorCode::Protocol,
            message,
        }),
    }
}

impl StreamState {
    /// A stream whose gateway granted `send_window` bytes and to which the device grants
    /// `receive_window`; `input` is the channel the gateway writes on, if any.
    pub fn new(
        send_window: u64,
        receive_window: u64,
        input: Option<StreamChannel>,
        idle_timeout: Duration,
        now: Instant,
    ) -> Self {
        Self {
            receive: ReceiveWindow::new(receive_window),
            send: SendWindow::new(send_window),
            input,
            input_ended: false,
            held: VecDeque::new(),
            idle_timeout,
            last_activity: now,
        }
    }

    /// Checks a frame from the gateway: its channel, order and window.
    pub fn on_data(&mut self, data: StreamData, now: Instant) -> Result<Inbound, StreamClose> {
        if Some(data.channel) != self.input {
            return Err(protocol_error(format!(
                "data on channel {:?}, which this stream does not take",
                data.channel
            )));
        }
        match self.receive.accept(&data) {
            Ok(Received::Duplicate) => return Ok(Inbound::Duplicate),
            Ok(Received::New) => {}
            Err(e @ (FlowError::Gap { .. } | FlowError::OverWindow { .. })) => {
                return Err(protocol_error(e.to_string()));
            }
            Err(e @ FlowError::TooLarge { .. }) => return Err(protocol_error(e.to_string())),
        }
        if self.input_ended {
            return Err(protocol_error(
                "data after the end of the input channel".to_owned(),
            ));
        }
        self.input_ended = data.end;
        self.last_activity = now;
        Ok(Inbound::Write {
            data: data.data.as_slice().to_vec(),
            end: data.end,
        })
    }

    /// `bytes` of the gateway's data reached the container: credit to return, if due.
    pub fn written(&mut self, bytes: usize) -> Option<StreamCredit> {
        self.receive.consumed(bytes)
    }

    /// The gateway handed data on.
    pub fn on_credit(&mut self, credit: StreamCredit) {
        self.send.credit(credit);
    }

    /// Whether more output may be read from the container now: nothing is held back
    /// and the window is open. A slow gateway thus stops the reading, not the memory.
    pub fn wants_output(&self) -> bool {
        self.held.is_empty() && self.send.available() > 0
    }

    /// Output read from the container (one read; empty reads are ignored).
    pub fn push_output(&mut self, channel: StreamChannel, data: Vec<u8>, now: Instant) {
        if !data.is_empty() {
            self.last_activity = now;
            self.held.push_back((channel, data));
        }
    }

    /// The next frame the window allows, if any.
    pub fn next_frame(&mut self) -> Option<StreamData> {
        let limit = self.send.next_frame_limit();
        if limit == 0 {
            return None;
        }
        let (channel, mut data) = self.held.pop_front()?;
        if data.len() > limit {
            let rest = data.split_off(limit);
            self.held.push_front((channel, rest));
        }
        // Cannot fail: the frame is within the limit just read.
        self.send.frame(channel, data, false).ok()
    }

    /// Whether all output read was sent.
    pub fn output_flushed(&self) -> bool {
        self.held.is_empty()
    }

    /// The frame that ends `channel` (no data, so no window needed).
    pub fn end_of(&mut self, channel: StreamChannel) -> Option<StreamData> {
        self.send.frame(channel, Vec::new(), true).ok()
    }

    /// When the stream times out if nothing moves.
    pub fn idle_deadline(&self) -> Instant {
        self.last_activity + self.idle_timeout
    }

    /// The close to send when the idle deadline passed.
    pub fn idle_close(&self) -> StreamClose {
        StreamClose {
            exit_code: None,
            error: Some(StreamError {
                code: StreamErrorCode::IdleTimeout,
                message: format!(
                    "no data either way for {}s (streaming connection idle timeout)",
                    self.idle_timeout.as_secs()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
