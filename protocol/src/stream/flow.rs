//! Credit-based flow control and sequence checking of one stream, both directions:
//! the bookkeeping the gateway and the agent share, so both enforce the same rules.

use crate::stream::{
    MAX_STREAM_DATA_BYTES, MAX_STREAM_WINDOW_BYTES, StreamChannel, StreamCredit, StreamData,
};

/// Why a received [`StreamData`] breaks the stream's rules. The receiver ends the stream
/// with [`crate::StreamErrorCode::Protocol`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("stream data carries {size} bytes; the limit is {MAX_STREAM_DATA_BYTES}")]
    TooLarge { size: usize },
    #[error("stream data {found} arrived where {expected} was expected (a message was lost)")]
    Gap { expected: u64, found: u64 },
    #[error("stream data of {size} bytes exceeds the {available} bytes of window granted")]
    OverWindow { size: usize, available: u64 },
}

/// The sending side of one direction: numbers the frames and spends the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    next_sequence: u64,
    available: u64,
}

impl SendWindow {
    /// A sender granted `window_bytes` (clamped to [`MAX_STREAM_WINDOW_BYTES`]).
    pub fn new(window_bytes: u64) -> Self {
        Self {
            next_sequence: 0,
            available: window_bytes.min(MAX_STREAM_WINDOW_BYTES),
        }
    }

    /// Data bytes that may be sent now.
    pub fn available(&self) -> u64 {
        self.available
    }

    /// The most bytes the next frame may carry: the window, and the frame limit.
    pub fn next_frame_limit(&self) -> usize {
        usize::try_from(self.available)
            .unwrap_or(usize::MAX)
            .min(MAX_STREAM_DATA_BYTES)
    }

    /// The next frame of `channel` with `data`, spending its size from the window.
    /// The caller splits data by [`SendWindow::next_frame_limit`]; a frame over it is
    /// refused (nothing is spent) so that a bug cannot break the peer's window.
    pub fn frame(
        &mut self,
        channel: StreamChannel,
        data: Vec<u8>,
        end: bool,
    ) -> Result<StreamData, FlowError> {
        if data.len() > MAX_STREAM_DATA_BYTES {
            return Err(FlowError::TooLarge { size: data.len() });
        }
        if data.len() as u64 > self.available {
            return Err(FlowError::OverWindow {
                size: data.len(),
                available: self.available,
            });
        }
        self.available -= data.len() as u64;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        Ok(StreamData {
            sequence,
            channel,
            data: data.into(),
            end,
        })
    }

    /// The peer handed data on: the window grows (never beyond the maximum).
    pub fn credit(&mut self, credit: StreamCredit) {
        self.available = self
            .available
            .saturating_add(credit.bytes)
            .min(MAX_STREAM_WINDOW_BYTES);
    }
}

/// What [`ReceiveWindow::accept`] decided about a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// The next frame: hand its data on, then call [`ReceiveWindow::consumed`].
    New,
    /// A repeat of a frame already accepted (a QoS 1 redelivery): drop it.
    Duplicate,
}

/// The receiving side of one direction: checks order and window, and returns credit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveWindow {
    expected_sequence: u64,
    granted: u64,
    /// Granted and not yet received.
    outstanding: u64,
    /// Received, handed on, and not yet returned as credit.
    consumed: u64,
}

impl ReceiveWindow {
    /// A receiver that granted `window_bytes` (clamped to [`MAX_STREAM_WINDOW_BYTES`]).
    pub fn new(window_bytes: u64) -> Self {
        let granted = window_bytes.min(MAX_STREAM_WINDOW_BYTES);
        Self {
            expected_sequence: 0,
            granted,
            outstanding: granted,
            consumed: 0,
        }
    }

    /// Checks a received frame: the next in sequence, within the limit and the window.
    pub fn accept(&mut self, data: &StreamData) -> Result<Received, FlowError> {
        if data.sequence < self.expected_sequence {
            return Ok(Received::Duplicate);
        }
        if data.sequence > self.expected_sequence {
            return Err(FlowError::Gap {
                expected: self.expected_sequence,
                found: data.sequence,
            });
        }
        let size = data.data.as_slice().len();
        if size > MAX_STREAM_DATA_BYTES {
            return Err(FlowError::TooLarge { size });
        }
        if size as u64 > self.outstanding {
            return Err(FlowError::OverWindow {
                size,
                available: self.outstanding,
            });
        }
        self.outstanding -= size as u64;
        self.expected_sequence += 1;
        Ok(Received::New)
    }

    /// `bytes` of accepted data were handed on. Returns the credit to send once half the
    /// window is consumed, so credit messages stay few while the sender never stalls.
    pub fn consumed(&mut self, bytes: usize) -> Option<StreamCredit> {
        self.consumed += bytes as u64;
        if self.consumed == 0 || self.consumed < self.granted.div_ceil(2) {
            return None;
        }
        let credit = StreamCredit {
            bytes: self.consumed,
        };
        self.outstanding += self.consumed;
        self.consumed = 0;
        Some(credit)
    }
}
