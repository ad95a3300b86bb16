//! SPDY/3.1 frame layout: encode and incremental decode of control frames (SYN_STREAM,
//! SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE) and data
//! frames, under hard size limits. Header blocks stay compressed here; see
//! [`super::spdy_headers`] for their contents.

use bytes::{Buf, BytesMut};

/// The only protocol version spoken: SPDY/3 (3.1 adds session flow control only).
pub const SPDY_VERSION: u16 = 3;
/// Bytes of the common frame header (control and data frames alike).
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest payload the 24-bit length field can carry.
pub const MAX_WIRE_PAYLOAD: usize = (1 << 24) - 1;
/// Stream ids and window deltas are 31-bit values.
pub const MAX_31_BIT: u32 = 0x7fff_ffff;

const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
const FLAG_CLEAR_SETTINGS: u8 = 0x01;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status code (SPDY/3 section 2.6.3); unknown codes are kept as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RstStatus(pub u32);

impl RstStatus {
    pub const PROTOCOL_ERROR: Self = Self(1);
    pub const INVALID_STREAM: Self = Self(2);
    pub const REFUSED_STREAM: Self = Self(3);
    pub const UNSUPPORTED_VERSION: Self = Self(4);
    pub const CANCEL: Self = Self(5);
    pub const INTERNAL_ERROR: Self = Self(6);
    pub const FLOW_CONTROL_ERROR: Self = Self(7);
    pub const STREAM_IN_USE: Self = Self(8);
    pub const STREAM_ALREADY_CLOSED: Self = Self(9);
    pub const FRAME_TOO_LARGE: Self = Self(11);
}

/// GOAWAY status code (SPDY/3 section 2.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAwayStatus(pub u32);

impl GoAwayStatus {
    pub const OK: Self = Self(0);
    pub const PROTOCOL_ERROR: Self = Self(1);
    pub const INTERNAL_ERROR: Self = Self(2);
}

/// Well-known SETTINGS ids.
pub mod setting_id {
    pub const MAX_CONCURRENT_STREAMS: u32 = 4;
    pub const INITIAL_WINDOW_SIZE: u32 = 7;
}

/// One SETTINGS entry: 8-bit flags, 24-bit id, 32-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub flags: u8,
    pub id: u32,
    pub value: u32,
}

/// A decoded frame. `header_block` fields hold the zlib-compressed name/value block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        slot: u8,
        fin: bool,
        unidirectional: bool,
        header_block: Vec<u8>,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        header_block: Vec<u8>,
    },
    RstStream {
        stream_id: u32,
        status: RstStatus,
    },
    Settings {
        clear_persisted: bool,
        entries: Vec<Setting>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: GoAwayStatus,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        header_block: Vec<u8>,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    /// A control frame of a type this implementation does not know (NOOP, CREDENTIAL);
    /// SPDY says to ignore those. The payload was skipped.
    UnknownControl {
        frame_type: u16,
    },
}

/// Size limits applied before any payload byte is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest accepted data frame payload.
    pub max_data_payload: usize,
    /// Largest accepted control frame payload (bounds compressed header blocks).
    pub max_control_payload: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_data_payload: 1 << 20,
            max_control_payload: 64 * 1024,
        }
    }
}

/// Why a frame could not be decoded or encoded. Decode errors are fatal for the
/// connection: framing is lost.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("unsupported SPDY version {0}")]
    UnsupportedVersion(u16),
    #[error("frame payload of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("control frame type {frame_type} has invalid length {len}")]
    InvalidLength { frame_type: u16, len: usize },
    #[error("frame type {frame_type} carries stream id 0")]
    ZeroStreamId { frame_type: u16 },
    #[error("stream id or value {0} does not fit in 31 bits")]
    Not31Bit(u32),
}

impl Frame {
    /// Appends the wire form of `self` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), FrameError> {
        match self {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                check_stream_id(*stream_id, 0)?;
                check_payload(data.len())?;
                out.extend_from_slice(&stream_id.to_be_bytes());
                out.push(if *fin { FLAG_FIN } else { 0 });
                out.extend_from_slice(&length_bytes(data.len()));
                out.extend_from_slice(data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                slot,
                fin,
                unidirectional,
                header_block,
            } => {
                check_stream_id(*stream_id, TYPE_SYN_STREAM)?;
                check_31_bit(*associated_to)?;
                let flags = fin_flag(*fin)
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control_header(out, TYPE_SYN_STREAM, flags, 10 + header_block.len())?;
                out.extend_from_slice(&stream_id.to_be_bytes());
                out.extend_from_slice(&associated_to.to_be_bytes());
                out.push((priority & 0x07) << 5);
                out.push(*slot);
                out.extend_from_slice(header_block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                header_block,
            } => stream_and_block(out, TYPE_SYN_REPLY, *stream_id, *fin, header_block)?,
            Frame::Headers {
                stream_id,
                fin,
                header_block,
            } => stream_and_block(out, TYPE_HEADERS, *stream_id, *fin, header_block)?,
            Frame::RstStream { stream_id, status } => {
                check_stream_id(*stream_id, TYPE_RST_STREAM)?;
                two_words(out, TYPE_RST_STREAM, *stream_id, status.0)?;
            }
            Frame::Settings {
                clear_persisted,
                entries,
            } => {
                let flags = if *clear_persisted {
                    FLAG_CLEAR_SETTINGS
                } else {
                    0
                };
                control_header(out, TYPE_SETTINGS, flags, 4 + 8 * entries.len())?;
                out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for entry in entries {
                    out.push(entry.flags);
                    out.extend_from_slice(&entry.id.to_be_bytes()[1..]);
                    out.extend_from_slice(&entry.value.to_be_bytes());
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4)?;
                out.extend_from_slice(&id.to_be_bytes());
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                check_31_bit(*last_good_stream_id)?;
                two_words(out, TYPE_GOAWAY, *last_good_stream_id, status.0)?;
            }
            Frame::WindowUpdate { stream_id, delta } => {
                check_31_bit(*stream_id)?;
                check_31_bit(*delta)?;
                two_words(out, TYPE_WINDOW_UPDATE, *stream_id, *delta)?;
            }
            Frame::UnknownControl { frame_type } => control_header(out, *frame_type, 0, 0)?,
        }
        Ok(())
    }
}

fn fin_flag(fin: bool) -> u8 {
    if fin { FLAG_FIN } else { 0 }
}

fn length_bytes(len: usize) -> [u8; 3] {
    let b = (len as u32).to_be_bytes();
    [b[1], b[2], b[3]]
}

fn check_payload(len: usize) -> Result<(), FrameError> {
    if len > MAX_WIRE_PAYLOAD {
        return Err(FrameError::FrameTooLarge {
            len,
            max: MAX_WIRE_PAYLOAD,
        });
    }
    Ok(())
}

fn check_31_bit(value: u32) -> Result<(), FrameError> {
    if value > MAX_31_BIT {
        return Err(FrameError::Not31Bit(value));
    }
    Ok(())
}

fn check_stream_id(stream_id: u32, frame_type: u16) -> Result<(), FrameError> {
    if stream_id == 0 {
        return Err(FrameError::ZeroStreamId { frame_type });
    }
    check_31_bit(stream_id)
}

fn control_header(
    out: &mut Vec<u8>,
    frame_type: u16,
    flags: u8,
    len: usize,
) -> Result<(), FrameError> {
    check_payload(len)?;
    out.extend_from_slice(&(0x8000 | SPDY_VERSION).to_be_bytes());
    out.extend_from_slice(&frame_type.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&length_bytes(len));
    Ok(())
}

fn stream_and_block(
    out: &mut Vec<u8>,
    frame_type: u16,
    stream_id: u32,
    fin: bool,
    block: &[u8],
) -> Result<(), FrameError> {
    check_stream_id(stream_id, frame_type)?;
    control_header(out, frame_type, fin_flag(fin), 4 + block.len())?;
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(block);
    Ok(())
}

fn two_words(
    out: &mut Vec<u8>,
    frame_type: u16,
    first: u32,
    second: u32,
) -> Result<(), FrameError> {
    control_header(out, frame_type, 0, 8)?;
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&second.to_be_bytes());
    Ok(())
}

/// Incremental decoder: feed bytes as they arrive, take frames as they complete.
///
/// The length field is checked against [`FrameLimits`] as soon as the 8-byte header is
/// in, so an oversized frame fails before its payload is buffered.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    limits: FrameLimits,
    buf: BytesMut,
}

impl FrameDecoder {
    pub fn new(limits: FrameLimits) -> Self {
        Self {
            limits,
            buf: BytesMut::new(),
        }
    }

    /// Appends received bytes. Call [`FrameDecoder::next_frame`] until it returns
    /// `Ok(None)` after each push.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let head: [u8; FRAME_HEADER_LEN] =
            self.buf[..FRAME_HEADER_LEN].try_into().expect("8 bytes");
        let control = head[0] & 0x80 != 0;
        let flags = head[4];
        let len = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        let word = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let (version, frame_type) = ((word >> 16) as u16 & 0x7fff, word as u16);
        if control && version != SPDY_VERSION {
            return Err(FrameError::UnsupportedVersion(version));
        }
        let max = if control {
            self.limits.max_control_payload
        } else {
            self.limits.max_data_payload
        };
        if len > max {
            return Err(FrameError::FrameTooLarge { len, max });
        }
        if self.buf.len() < FRAME_HEADER_LEN + len {
            self.buf.reserve(FRAME_HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(FRAME_HEADER_LEN);
        let payload = self.buf.split_to(len);
        if !control {
            let stream_id = word & MAX_31_BIT;
            check_stream_id(stream_id, 0)?;
            return Ok(Some(Frame::Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: payload.to_vec(),
            }));
        }
        decode_control(frame_type, flags, &payload).map(Some)
    }
}

fn word_at(payload: &[u8], index: usize) -> u32 {
    let at = index * 4;
    u32::from_be_bytes(payload[at..at + 4].try_into().expect("4 bytes"))
}

fn decode_control(frame_type: u16, flags: u8, payload: &[u8]) -> Result<Frame, FrameError> {
    let len = payload.len();
    let invalid = || FrameError::InvalidLength { frame_type, len };
    let fin = flags & FLAG_FIN != 0;
    let frame = match frame_type {
        TYPE_SYN_STREAM => {
            if len < 10 {
                return Err(invalid());
            }
            let stream_id = word_at(payload, 0) & MAX_31_BIT;
            check_stream_id(stream_id, frame_type)?;
            Frame::SynStream {
                stream_id,
                associated_to: word_at(payload, 1) & MAX_31_BIT,
                priority: payload[8] >> 5,
                slot: payload[9],
                fin,
                unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                header_block: payload[10..].to_vec(),
            }
        }
        TYPE_SYN_REPLY | TYPE_HEADERS => {
            if len < 4 {
                return Err(invalid());
            }
            let stream_id = word_at(payload, 0) & MAX_31_BIT;
            check_stream_id(stream_id, frame_type)?;
            let header_block = payload[4..].to_vec();
            if frame_type == TYPE_SYN_REPLY {
                Frame::SynReply {
                    stream_id,
                    fin,
                    header_block,
                }
            } else {
                Frame::Headers {
                    stream_id,
                    fin,
                    header_block,
                }
            }
        }
        TYPE_RST_STREAM | TYPE_GOAWAY | TYPE_WINDOW_UPDATE => {
            if len != 8 {
                return Err(invalid());
            }
            let first = word_at(payload, 0) & MAX_31_BIT;
            let second = word_at(payload, 1);
            match frame_type {
                TYPE_RST_STREAM => {
                    check_stream_id(first, frame_type)?;
                    Frame::RstStream {
                        stream_id: first,
                        status: RstStatus(second),
                    }
                }
                TYPE_GOAWAY => Frame::GoAway {
                    last_good_stream_id: first,
                    status: GoAwayStatus(second),
                },
                _ => Frame::WindowUpdate {
                    stream_id: first,
                    delta: second & MAX_31_BIT,
                },
            }
        }
        TYPE_SETTINGS => {
            if len < 4 {
                return Err(invalid());
            }
            let count = word_at(payload, 0) as usize;
            if count.checked_mul(8).and_then(|n| n.checked_add(4)) != Some(len) {
                return Err(invalid());
            }
            let entries = (0..count)
                .map(|i| {
                    let id_word = word_at(payload, 1 + 2 * i);
                    Setting {
                        flags: (id_word >> 24) as u8,
                        id: id_word & 0x00ff_ffff,
                        value: word_at(payload, 2 + 2 * i),
                    }
                })
                .collect();
            Frame::Settings {
                clear_persisted: flags & FLAG_CLEAR_SETTINGS != 0,
                entries,
            }
        }
        TYPE_PING => {
            if len != 4 {
                return Err(invalid());
            }
            Frame::Ping {
                id: word_at(payload, 0),
            }
        }
        _ => Frame::UnknownControl { frame_type },
    };
    Ok(frame)
}

#[cfg(test)]
mod tests;
