//! Wire protocols the API server speaks to a kubelet for streaming (exec, attach,
//! port-forward), as pure codecs and state machines: bytes or frames in, frames and
//! events out, no I/O. The kubelet API routes and the MQTT relay build on these.
//!
//! | module | what is there |
//! |---|---|
//! | [`spdy_frame`] | SPDY/3.1 frame encode / incremental decode with size limits |
//! | [`spdy_headers`] | name/value header blocks, zlib with the SPDY/3 dictionary per direction |
//! | [`spdy_session`] | server side of a SPDY connection: streams, half-close, RST, PING, GOAWAY, windows |
//! | [`negotiation`] | `X-Stream-Protocol-Version` negotiation and the SPDY upgrade check |
//! | [`remote_command`] | exec/attach over SPDY: stream types, expected set, exit status JSON, resize |
//! | [`ws_channel`] | channel-prefixed WebSocket messages (`v4`/`v5.channel.k8s.io`, base64), v5 close |
//! | [`port_forward`] | port-forward over SPDY (requestID pairing) and WebSocket (port channels) |

mod spdy_dictionary;

pub mod negotiation;
pub mod port_forward;
pub mod remote_command;
pub mod spdy_frame;
pub mod spdy_headers;
pub mod spdy_session;
pub mod ws_channel;
