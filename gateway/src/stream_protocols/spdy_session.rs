//! The server side of one SPDY/3.1 connection as a pure state machine: bytes in,
//! frames to send and [`SessionEvent`]s for the application out. Owns stream ids
//! (client-initiated odd), SYN_REPLY, half-close, RST, PING replies, GOAWAY, the cap on
//! concurrent streams and per-stream flow-control windows.
//!
//! Kubernetes' SPDY stack (moby/spdystream) neither sends WINDOW_UPDATE nor honours it,
//! so window *enforcement* is off by default ([`SessionConfig::enforce_flow_control`]);
//! windows are still tracked and WINDOW_UPDATE still sent, which such peers ignore.

use std::collections::{BTreeMap, VecDeque};

use super::spdy_frame::{
    Frame, FrameDecoder, FrameError, FrameLimits, GoAwayStatus, MAX_31_BIT, RstStatus, setting_id,
};
use super::spdy_headers::{
    DEFAULT_MAX_HEADER_BLOCK, HeaderBlock, HeaderCompressor, HeaderDecompressor, HeaderError,
};

/// Initial per-stream window of SPDY/3 (64 KiB).
pub const DEFAULT_INITIAL_WINDOW: u32 = 64 * 1024;

/// Knobs of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub frame_limits: FrameLimits,
    /// Largest accepted decompressed header block.
    pub max_header_block: usize,
    /// Streams open at once; more are refused with RST_STREAM REFUSED_STREAM.
    pub max_concurrent_streams: usize,
    /// Our receive window per stream, announced implicitly (the SPDY default).
    pub initial_window: u32,
    /// Hold back data beyond the peer's window and reset streams that overrun ours.
    pub enforce_flow_control: bool,
    /// Largest data frame payload this side sends.
    pub max_send_frame: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            frame_limits: FrameLimits::default(),
            max_header_block: DEFAULT_MAX_HEADER_BLOCK,
            max_concurrent_streams: 100,
            initial_window: DEFAULT_INITIAL_WINDOW,
            enforce_flow_control: false,
            max_send_frame: 32 * 1024,
        }
    }
}

/// What the application learns from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// SYN_STREAM accepted; answer with [`Session::reply`].
    StreamOpened {
        stream_id: u32,
        headers: HeaderBlock,
    },
    /// A HEADERS frame on an open stream.
    Headers {
        stream_id: u32,
        headers: HeaderBlock,
    },
    Data {
        stream_id: u32,
        data: Vec<u8>,
    },
    /// The peer half-closed the stream (FIN): no more data from it.
    RemoteFinished {
        stream_id: u32,
    },
    /// Both directions finished; the stream is gone.
    StreamClosed {
        stream_id: u32,
    },
    /// RST_STREAM from the peer; the stream is gone.
    StreamReset {
        stream_id: u32,
        status: RstStatus,
    },
    /// The peer's send window of a stream opened up again (only with enforcement).
    WindowOpened {
        stream_id: u32,
    },
    /// The peer is going away: no new streams will come.
    GoAway {
        last_good_stream_id: u32,
        status: GoAwayStatus,
    },
}

/// Errors of the session. Errors from [`Session::receive`] are fatal: a GOAWAY has been
/// queued and the connection should be closed once the output is written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("frame error: {0}")]
    Frame(#[from] FrameError),
    #[error("header block error: {0}")]
    Header(#[from] HeaderError),
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("session has failed or gone away")]
    Closed,
    #[error("stream {0} is not open for sending")]
    NotWritable(u32),
    #[error("stream {0} is not open")]
    UnknownStream(u32),
}

#[derive(Debug)]
struct StreamState {
    replied: bool,
    local_closed: bool,
    remote_closed: bool,
    send_window: i64,
    recv_window: i64,
    recv_unreleased: u64,
}

/// Server side of one SPDY connection.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    decoder: FrameDecoder,
    compressor: HeaderCompressor,
    decompressor: HeaderDecompressor,
    streams: BTreeMap<u32, StreamState>,
    last_remote_stream_id: u32,
    peer_initial_window: u32,
    going_away: bool,
    failed: bool,
    output: VecDeque<Frame>,
    events: VecDeque<SessionEvent>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Result<Self, SessionError> {
        Ok(Self {
            config,
            decoder: FrameDecoder::new(config.frame_limits),
            compressor: HeaderCompressor::new()?,
            decompressor: HeaderDecompressor::new(config.max_header_block),
            streams: BTreeMap::new(),
            last_remote_stream_id: 0,
            peer_initial_window: DEFAULT_INITIAL_WINDOW,
            going_away: false,
            failed: false,
            output: VecDeque::new(),
            events: VecDeque::new(),
        })
    }

    /// Feeds received bytes; frames and events become available through
    /// [`Session::poll_output`] / [`Session::poll_event`].
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if self.failed {
            return Err(SessionError::Closed);
        }
        self.decoder.push(bytes);
        loop {
            let result = match self.decoder.next_frame() {
                Ok(Some(frame)) => self.handle(frame),
                Ok(None) => return Ok(()),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                self.fail();
                return Err(e);
            }
        }
    }

    /// The next frame to write, in order.
    pub fn poll_output(&mut self) -> Option<Frame> {
        self.output.pop_front()
    }

    /// Encodes every pending frame into `out`.
    pub fn write_output(&mut self, out: &mut Vec<u8>) -> Result<(), SessionError> {
        while let Some(frame) = self.output.pop_front() {
            frame.encode(out)?;
        }
        Ok(())
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Streams currently open (in either direction).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Answers a SYN_STREAM with SYN_REPLY; `fin` half-closes our side at once.
    pub fn reply(
        &mut self,
        stream_id: u32,
        headers: &HeaderBlock,
        fin: bool,
    ) -> Result<(), SessionError> {
        let stream = self
            .streams
            .get_mut(&stream_id)
            .ok_or(SessionError::UnknownStream(stream_id))?;
        if stream.replied {
            return Err(SessionError::Protocol("stream already replied to"));
        }
        stream.replied = true;
        let header_block = self.compressor.compress(headers)?;
        self.output.push_back(Frame::SynReply {
            stream_id,
            fin,
            header_block,
        });
        if fin {
            self.finish_local(stream_id);
        }
        Ok(())
    }

    /// Queues data (and FIN when `fin`). Returns how many bytes were accepted: all of
    /// them unless flow control is enforced and the peer's window is smaller; then FIN
    /// is only sent once the rest follows.
    pub fn send_data(
        &mut self,
        stream_id: u32,
        data: &[u8],
        fin: bool,
    ) -> Result<usize, SessionError> {
        if self.failed {
            return Err(SessionError::Closed);
        }
        let max_frame = self.config.max_send_frame.max(1);
        let enforce = self.config.enforce_flow_control;
        let stream = self
            .streams
            .get_mut(&stream_id)
            .ok_or(SessionError::NotWritable(stream_id))?;
        if stream.local_closed || !stream.replied {
            return Err(SessionError::NotWritable(stream_id));
        }
        let accepted = if enforce {
            data.len().min(stream.send_window.max(0) as usize)
        } else {
            data.len()
        };
        stream.send_window -= accepted as i64;
        let fin = fin && accepted == data.len();
        let chunks: Vec<&[u8]> = data[..accepted].chunks(max_frame).collect();
        let last = chunks.len().saturating_sub(1);
        for (i, chunk) in chunks.iter().enumerate() {
            self.output.push_back(Frame::Data {
                stream_id,
                fin: fin && i == last,
                data: chunk.to_vec(),
            });
        }
        if fin && chunks.is_empty() {
            self.output.push_back(Frame::Data {
                stream_id,
                fin: true,
                data: Vec::new(),
            });
        }
        if fin {
            self.finish_local(stream_id);
        }
        Ok(accepted)
    }

    /// Half-closes our side of a stream (empty data frame with FIN).
    pub fn close_stream(&mut self, stream_id: u32) -> Result<(), SessionError> {
        self.send_data(stream_id, &[], true).map(|_| ())
    }

    /// Aborts a stream with RST_STREAM.
    pub fn reset(&mut self, stream_id: u32, status: RstStatus) {
        if self.streams.remove(&stream_id).is_some() {
            self.output
                .push_back(Frame::RstStream { stream_id, status });
        }
    }

    /// Tells the session the application consumed `n` bytes of a stream; sends a
    /// WINDOW_UPDATE once half of the window has been consumed.
    pub fn release(&mut self, stream_id: u32, n: usize) {
        let half = u64::from(self.config.initial_window / 2).max(1);
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        stream.recv_unreleased += n as u64;
        if stream.recv_unreleased >= half && !stream.remote_closed {
            let delta = stream.recv_unreleased.min(u64::from(MAX_31_BIT)) as u32;
            stream.recv_unreleased -= u64::from(delta);
            stream.recv_window += i64::from(delta);
            self.output
                .push_back(Frame::WindowUpdate { stream_id, delta });
        }
    }

    /// Sends GOAWAY: streams already open continue, new ones are refused.
    pub fn go_away(&mut self, status: GoAwayStatus) {
        if !self.going_away {
            self.going_away = true;
            self.output.push_back(Frame::GoAway {
                last_good_stream_id: self.last_remote_stream_id,
                status,
            });
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.streams.clear();
        self.going_away = false;
        self.go_away(GoAwayStatus::PROTOCOL_ERROR);
    }

    fn finish_local(&mut self, stream_id: u32) {
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.local_closed = true;
        }
        self.close_if_done(stream_id);
    }

    fn close_if_done(&mut self, stream_id: u32) {
        let done = self
            .streams
            .get(&stream_id)
            .is_some_and(|s| s.local_closed && s.remote_closed);
        if done {
            self.streams.remove(&stream_id);
            self.events
                .push_back(SessionEvent::StreamClosed { stream_id });
        }
    }

    fn handle(&mut self, frame: Frame) -> Result<(), SessionError> {
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                unidirectional,
                header_block,
                ..
            } => self.on_syn_stream(stream_id, fin, unidirectional, &header_block)?,
            Frame::SynReply {
                stream_id,
                header_block,
                ..
            } => {
                // We never open streams, so no reply is expected; keep zlib in sync.
                self.decompressor.decompress(&header_block)?;
                self.reset(stream_id, RstStatus::PROTOCOL_ERROR);
            }
            Frame::Headers {
                stream_id,
                fin,
                header_block,
            } => {
                let headers = self.decompressor.decompress(&header_block)?;
                if self.streams.get(&stream_id).is_none_or(|s| s.remote_closed) {
                    self.output.push_back(Frame::RstStream {
                        stream_id,
                        status: RstStatus::INVALID_STREAM,
                    });
                    return Ok(());
                }
                self.events
                    .push_back(SessionEvent::Headers { stream_id, headers });
                if fin {
                    self.finish_remote(stream_id);
                }
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => self.on_data(stream_id, fin, data),
            Frame::RstStream { stream_id, status } => {
                if self.streams.remove(&stream_id).is_some() {
                    self.events
                        .push_back(SessionEvent::StreamReset { stream_id, status });
                }
            }
            Frame::Settings { entries, .. } => {
                for entry in entries {
                    if entry.id == setting_id::INITIAL_WINDOW_SIZE {
                        self.on_initial_window(entry.value)?;
                    }
                }
            }
            Frame::Ping { id } => {
                // Client pings are odd; even ids would be answers to our own pings.
                if id % 2 == 1 {
                    self.output.push_back(Frame::Ping { id });
                }
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => self.events.push_back(SessionEvent::GoAway {
                last_good_stream_id,
                status,
            }),
            Frame::WindowUpdate { stream_id, delta } => self.on_window_update(stream_id, delta),
            Frame::UnknownControl { .. } => {}
        }
        Ok(())
    }

    fn on_syn_stream(
        &mut self,
        stream_id: u32,
        fin: bool,
        unidirectional: bool,
        block: &[u8],
    ) -> Result<(), SessionError> {
        // Decompress first, even for refused streams: the zlib context spans all frames.
        let headers = self.decompressor.decompress(block)?;
        if stream_id % 2 == 0 {
            return Err(SessionError::Protocol("client opened an even stream id"));
        }
        if stream_id <= self.last_remote_stream_id {
            return Err(SessionError::Protocol("stream id did not increase"));
        }
        self.last_remote_stream_id = stream_id;
        if self.going_away || self.streams.len() >= self.config.max_concurrent_streams {
            self.output.push_back(Frame::RstStream {
                stream_id,
                status: RstStatus::REFUSED_STREAM,
            });
            return Ok(());
        }
        self.streams.insert(
            stream_id,
            StreamState {
                replied: false,
                local_closed: unidirectional,
                remote_closed: false,
                send_window: i64::from(self.peer_initial_window),
                recv_window: i64::from(self.config.initial_window),
                recv_unreleased: 0,
            },
        );
        self.events
            .push_back(SessionEvent::StreamOpened { stream_id, headers });
        if fin {
            self.finish_remote(stream_id);
        }
        Ok(())
    }

    fn on_data(&mut self, stream_id: u32, fin: bool, data: Vec<u8>) {
        let enforce = self.config.enforce_flow_control;
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            self.output.push_back(Frame::RstStream {
                stream_id,
                status: RstStatus::INVALID_STREAM,
            });
            return;
        };
        if stream.remote_closed {
            self.reset(stream_id, RstStatus::STREAM_ALREADY_CLOSED);
            return;
        }
        stream.recv_window -= data.len() as i64;
        if enforce && stream.recv_window < 0 {
            self.reset(stream_id, RstStatus::FLOW_CONTROL_ERROR);
            self.events.push_back(SessionEvent::StreamReset {
                stream_id,
                status: RstStatus::FLOW_CONTROL_ERROR,
            });
            return;
        }
        if !data.is_empty() {
            self.events
                .push_back(SessionEvent::Data { stream_id, data });
        }
        if fin {
            self.finish_remote(stream_id);
        }
    }

    fn finish_remote(&mut self, stream_id: u32) {
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.remote_closed = true;
            self.events
                .push_back(SessionEvent::RemoteFinished { stream_id });
        }
        self.close_if_done(stream_id);
    }

    fn on_initial_window(&mut self, value: u32) -> Result<(), SessionError> {
        if value > MAX_31_BIT {
            return Err(SessionError::Protocol("initial window above 2^31-1"));
        }
        let delta = i64::from(value) - i64::from(self.peer_initial_window);
        self.peer_initial_window = value;
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for stream_id in ids {
            self.grow_send_window(stream_id, delta);
        }
        Ok(())
    }

    fn on_window_update(&mut self, stream_id: u32, delta: u32) {
        // Stream 0 is the SPDY/3.1 session window, which this side does not limit on.
        if stream_id == 0 || !self.streams.contains_key(&stream_id) {
            return;
        }
        if delta == 0 {
            self.reset(stream_id, RstStatus::PROTOCOL_ERROR);
            return;
        }
        self.grow_send_window(stream_id, i64::from(delta));
    }

    fn grow_send_window(&mut self, stream_id: u32, delta: i64) {
        let enforce = self.config.enforce_flow_control;
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let was_closed = stream.send_window <= 0;
        stream.send_window += delta;
        if stream.send_window > i64::from(MAX_31_BIT) {
            self.reset(stream_id, RstStatus::FLOW_CONTROL_ERROR);
            return;
        }
        if enforce && was_closed && stream.send_window > 0 {
            self.events
                .push_back(SessionEvent::WindowOpened { stream_id });
        }
    }
}

#[cfg(test)]
mod tests;
