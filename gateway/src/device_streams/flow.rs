//! One stream's flow control on the gateway's side, with the protocol's shared
//! [`SendWindow`] and [`ReceiveWindow`]: the client's input (stdin, a forwarded
//! connection's bytes) waits here until the device grants credit, and the connection
//! stops reading its client while [`StreamFlow::input_waiting`] is over
//! [`MAX_INPUT_BACKLOG`] (TCP backpressure reaches the API server); the device's output
//! is checked against the window the gateway granted and credited only once it has been
//! written to the client.

use std::collections::VecDeque;

use edge_protocol::stream::{FlowError, ReceiveWindow, Received, SendWindow};
use edge_protocol::{
    DEFAULT_STREAM_WINDOW_BYTES, MAX_STREAM_DATA_BYTES, StreamChannel, StreamCredit, StreamData,
};

/// Input bytes held for one stream before the connection stops reading its client.
pub const MAX_INPUT_BACKLOG: usize = 2 * MAX_STREAM_DATA_BYTES;

/// Frames ready to publish and whether input still waits for credit.
pub type InputFrames = Vec<StreamData>;

/// The windows of one stream and the client's input that waits for credit.
#[derive(Debug)]
pub struct StreamFlow {
    /// None until the device answers the open with its window.
    send: Option<SendWindow>,
    receive: ReceiveWindow,
    channel: StreamChannel,
    input: VecDeque<u8>,
    /// The client ended its input: send `end` once everything before it is sent.
    input_ended: bool,
    end_sent: bool,
}

impl StreamFlow {
    /// A stream whose client input travels on `channel` (stdin or port-forward data);
    /// the gateway grants the device [`DEFAULT_STREAM_WINDOW_BYTES`].
    pub fn new(channel: StreamChannel) -> Self {
        Self {
            send: None,
            receive: ReceiveWindow::new(DEFAULT_STREAM_WINDOW_BYTES),
            channel,
            input: VecDeque::new(),
            input_ended: false,
            end_sent: false,
        }
    }

    /// The window the gateway grants the device (for the open).
    pub fn granted_window() -> u64 {
        DEFAULT_STREAM_WINDOW_BYTES
    }

    /// The device accepted the stream and granted `window_bytes`.
    pub fn opened(&mut self, window_bytes: u64) -> InputFrames {
        self.send = Some(SendWindow::new(window_bytes));
        self.frames()
    }

    pub fn is_open(&self) -> bool {
        self.send.is_some()
    }

    /// The client sent input bytes; returns the frames the window allows now.
    pub fn push_input(&mut self, data: &[u8]) -> InputFrames {
        if !self.input_ended {
            self.input.extend(data);
        }
        self.frames()
    }

    /// The client ended its input (stdin EOF, FIN).
    pub fn end_input(&mut self) -> InputFrames {
        self.input_ended = true;
        self.frames()
    }

    /// The device returned credit.
    pub fn credit(&mut self, credit: StreamCredit) -> InputFrames {
        if let Some(send) = self.send.as_mut() {
            send.credit(credit);
        }
        self.frames()
    }

    /// Input bytes waiting for credit: above [`MAX_INPUT_BACKLOG`] the connection stops
    /// reading its client.
    pub fn input_waiting(&self) -> usize {
        self.input.len()
    }

    pub fn input_full(&self) -> bool {
        self.input.len() >= MAX_INPUT_BACKLOG
    }

    fn frames(&mut self) -> InputFrames {
        let mut out = Vec::new();
        let Some(send) = self.send.as_mut() else {
            return out;
        };
        while !self.input.is_empty() {
            let take = send.next_frame_limit().min(self.input.len());
            if take == 0 {
                return out;
            }
            let data: Vec<u8> = self.input.drain(..take).collect();
            let end = self.input_ended && self.input.is_empty();
            match send.frame(self.channel, data, end) {
                Ok(frame) => {
                    self.end_sent |= end;
                    out.push(frame);
                }
                // cannot happen: the frame is cut to the limit
                Err(_) => return out,
            }
        }
        if self.input_ended && !self.end_sent {
            if let Ok(frame) = send.frame(self.channel, Vec::new(), true) {
                self.end_sent = true;
                out.push(frame);
            }
        }
        out
    }

    /// Checks data from the device; `Ok(true)`: new data to write to the client, then
    /// call [`StreamFlow::delivered`]; `Ok(false)`: a repeat, dropped.
    pub fn receive(&mut self, data: &StreamData) -> Result<bool, FlowError> {
        Ok(self.receive.accept(data)? == Received::New)
    }

    /// `bytes` of the device's data were written to the client: the credit to return,
    /// if due.
    pub fn delivered(&mut self, bytes: usize) -> Option<StreamCredit> {
        self.receive.consumed(bytes)
    }
}

#[cfg(test)]
mod tests;
