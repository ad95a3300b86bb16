//! The binary form of [`StreamData`] (stream protocol 2): what exec, attach and
//! port-forward bytes travel in when both sides speak it, instead of a JSON envelope
//! with the bytes in base64 (a third larger, and most of the CPU a stream costs).
//!
//! ```text
//! 0      4          12        13      14
//! | magic | sequence | channel | flags | data ...
//!   00 'E' 'S' 'D'   u64 BE     u8       u8     at most MAX_STREAM_DATA_BYTES
//! ```
//!
//! `channel`: 0 stdin, 1 stdout, 2 stderr, 3 data; `flags`: bit 0 is [`StreamData::end`],
//! the others must be 0. A JSON envelope never starts with a NUL byte, so a receiver
//! tells the two forms apart by the first byte. A sender uses this form only once the
//! other side said it reads it: the device when [`super::StreamOpen::version`] is 2 or
//! more, the gateway when [`super::StreamOpened::version`] is.

use super::{MAX_STREAM_DATA_BYTES, StreamChannel, StreamData};

/// The first bytes of a binary data frame.
pub const DATA_FRAME_MAGIC: [u8; 4] = [0x00, b'E', b'S', b'D'];
/// The stream protocol version that introduced binary data frames.
pub const BINARY_DATA_FRAMES_SINCE: u32 = 2;
const HEADER_BYTES: usize = DATA_FRAME_MAGIC.len() + 8 + 1 + 1;
const END: u8 = 0b1;

/// Why a payload is not a binary data frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataFrameError {
    #[error("binary stream frame of {0} bytes is shorter than its {HEADER_BYTES}-byte header")]
    Truncated(usize),
    #[error("binary stream frame has an unknown channel {0}")]
    UnknownChannel(u8),
    #[error("binary stream frame has unknown flags {0:#010b}")]
    UnknownFlags(u8),
    #[error(
        "binary stream frame carries {0} data bytes; at most {MAX_STREAM_DATA_BYTES} are allowed"
    )]
    TooMuchData(usize),
}

/// Whether `payload` is in the binary form (it may still be invalid).
pub fn is_data_frame(payload: &[u8]) -> bool {
    payload.starts_with(&DATA_FRAME_MAGIC)
}

fn channel_code(channel: StreamChannel) -> u8 {
    match channel {
        StreamChannel::Stdin => 0,
        StreamChannel::Stdout => 1,
        StreamChannel::Stderr => 2,
        StreamChannel::Data => 3,
    }
}

/// `data` in the binary form.
pub fn encode_data_frame(data: &StreamData) -> Vec<u8> {
    let bytes = data.data.as_slice();
    let mut out = Vec::with_capacity(HEADER_BYTES + bytes.len());
    out.extend_from_slice(&DATA_FRAME_MAGIC);
    out.extend_from_slice(&data.sequence.to_be_bytes());
    out.push(channel_code(data.channel));
    out.push(if data.end { END } else { 0 });
    out.extend_from_slice(bytes);
    out
}

/// A payload in the binary form (checked with [`is_data_frame`] first).
pub fn decode_data_frame(payload: &[u8]) -> Result<StreamData, DataFrameError> {
    if payload.len() < HEADER_BYTES || !is_data_frame(payload) {
        return Err(DataFrameError::Truncated(payload.len()));
    }
    let (header, data) = payload.split_at(HEADER_BYTES);
    let mut sequence = [0u8; 8];
    sequence.copy_from_slice(&header[4..12]);
    let channel = match header[12] {
        0 => StreamChannel::Stdin,
        1 => StreamChannel::Stdout,
        2 => StreamChannel::Stderr,
        3 => StreamChannel::Data,
        other => return Err(DataFrameError::UnknownChannel(other)),
    };
    let flags = header[13];
    if flags & !END != 0 {
        return Err(DataFrameError::UnknownFlags(flags));
    }
    if data.len() > MAX_STREAM_DATA_BYTES {
        return Err(DataFrameError::TooMuchData(data.len()));
    }
    Ok(StreamData {
        sequence: u64::from_be_bytes(sequence),
        channel,
        data: data.to_vec().into(),
        end: flags & END != 0,
    })
}
