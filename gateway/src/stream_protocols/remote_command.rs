//! The Kubernetes remote-command sub-protocol (exec/attach) as the kubelet speaks it over
//! SPDY: protocol versions, request options, stream types and the expected stream set,
//! the error stream's `metav1.Status` JSON, and terminal resize messages.
//!
//! `v5.channel.k8s.io` over SPDY behaves exactly as v4 (client-go maps it to its v4
//! handler); v5's only addition, the stdin close signal, exists on WebSocket
//! ([`super::ws_channel`]). Versions 1-3 (plain-text errors) are not offered.

use serde::{Deserialize, Serialize};

use super::spdy_headers::HeaderBlock;

pub const STREAM_PROTOCOL_V4: &str = "v4.channel.k8s.io";
pub const STREAM_PROTOCOL_V5: &str = "v5.channel.k8s.io";
/// What this side offers on the SPDY path.
pub const SPDY_PROTOCOLS: &[&str] = &[STREAM_PROTOCOL_V5, STREAM_PROTOCOL_V4];

/// Stream header naming a stream's role.
pub const HEADER_STREAM_TYPE: &str = "streamType";

/// Role of one SPDY stream of an exec/attach session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl StreamType {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "error" => Self::Error,
            "stdin" => Self::Stdin,
            "stdout" => Self::Stdout,
            "stderr" => Self::Stderr,
            "resize" => Self::Resize,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Stdin => "stdin",
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Resize => "resize",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RemoteCommandError {
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStreams,
    #[error("stream without a valid streamType header: {0:?}")]
    UnknownStreamType(Option<String>),
    #[error("stream type {0} was not requested")]
    UnexpectedStream(&'static str),
    #[error("stream type {0} opened twice")]
    DuplicateStream(&'static str),
    #[error("resize message is not valid JSON: {0}")]
    InvalidResize(String),
    #[error("resize buffer exceeds {0} bytes without a complete message")]
    ResizeTooLarge(usize),
}

/// Which standard streams a request asked for (`input`, `output`, `error`, `tty` query
/// parameters as kube-apiserver sends them, or `stdin`, `stdout`, `stderr`; the kubelet
/// treats only `1` as true).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    /// Parses the URL query. With `tty`, stderr is dropped (merged into the terminal).
    pub fn from_query(query: &str) -> Result<Self, RemoteCommandError> {
        let mut options = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let on = value == "1";
            match key.as_ref() {
                // kube-apiserver names them `input`, `output` and `error` on the way to
                // the kubelet (core/v1 ExecStdinParam...); clients calling a kubelet
                // directly often use the PodExecOptions names
                "input" | "stdin" => options.stdin = on,
                "output" | "stdout" => options.stdout = on,
                "error" | "stderr" => options.stderr = on,
                "tty" => options.tty = on,
                _ => {}
            }
        }
        if options.tty {
            options.stderr = false;
        }
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(RemoteCommandError::NoStreams);
        }
        Ok(options)
    }

    /// The streams the client will open: always error, then the requested ones, resize
    /// with a tty.
    pub fn expected_streams(&self) -> Vec<StreamType> {
        let mut types = vec![StreamType::Error];
        for (wanted, kind) in [
            (self.stdin, StreamType::Stdin),
            (self.stdout, StreamType::Stdout),
            (self.stderr, StreamType::Stderr),
            (self.tty, StreamType::Resize),
        ] {
            if wanted {
                types.push(kind);
            }
        }
        types
    }
}

/// Stream ids of an exec session once every expected stream has arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecStreams {
    pub error: u32,
    pub stdin: Option<u32>,
    pub stdout: Option<u32>,
    pub stderr: Option<u32>,
    pub resize: Option<u32>,
}

/// Collects the streams of one exec session as the client opens them.
#[derive(Debug, Clone)]
pub struct ExecStreamSet {
    expected: Vec<StreamType>,
    received: Vec<(StreamType, u32)>,
}

impl ExecStreamSet {
    pub fn new(options: &ExecOptions) -> Self {
        Self {
            expected: options.expected_streams(),
            received: Vec::new(),
        }
    }

    /// Records a newly opened stream; returns the full set once complete.
    pub fn accept(
        &mut self,
        stream_id: u32,
        headers: &HeaderBlock,
    ) -> Result<Option<ExecStreams>, RemoteCommandError> {
        let raw = headers.get(HEADER_STREAM_TYPE);
        let kind = raw
            .and_then(StreamType::parse)
            .ok_or_else(|| RemoteCommandError::UnknownStreamType(raw.map(str::to_owned)))?;
        if !self.expected.contains(&kind) {
            return Err(RemoteCommandError::UnexpectedStream(kind.as_str()));
        }
        if self.received.iter().any(|(k, _)| *k == kind) {
            return Err(RemoteCommandError::DuplicateStream(kind.as_str()));
        }
        self.received.push((kind, stream_id));
        if self.received.len() < self.expected.len() {
            return Ok(None);
        }
        let id = |t: StreamType| {
            self.received
                .iter()
                .find(|(k, _)| *k == t)
                .map(|(_, id)| *id)
        };
        Ok(Some(ExecStreams {
            error: id(StreamType::Error).unwrap_or_default(),
            stdin: id(StreamType::Stdin),
            stdout: id(StreamType::Stdout),
            stderr: id(StreamType::Stderr),
            resize: id(StreamType::Resize),
        }))
    }
}

/// How the command ended, as written to the error stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// The process exited; client-go parses the code as an 8-bit value.
    Exited(u8),
    /// The command could not run (the kubelet's `InternalError`).
    Failed(String),
}

/// The `metav1.Status` JSON for the error stream (v4/v5), as the kubelet writes it.
pub fn status_json(status: &ExitStatus) -> Vec<u8> {
    let value = match status {
        ExitStatus::Exited(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        ExitStatus::Exited(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        ExitStatus::Failed(message) => {
            let message = format!("error executing command in container: {message}");
            serde_json::json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {message}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": message}]},
                "code": 500,
            })
        }
    };
    serde_json::to_vec(&value).expect("JSON of plain values")
}

/// A terminal size message (Go's `remotecommand.TerminalSize`, untagged field names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Largest resize bytes buffered without a complete message.
pub const MAX_RESIZE_BUFFER: usize = 4096;

/// Splits the resize stream (a sequence of JSON objects, split anywhere by framing) into
/// [`TerminalSize`] messages.
#[derive(Debug, Default)]
pub struct ResizeDecoder {
    buf: Vec<u8>,
}

impl ResizeDecoder {
    /// Adds received bytes and returns every message now complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<TerminalSize>, RemoteCommandError> {
        self.buf.extend_from_slice(bytes);
        let mut sizes = Vec::new();
        let mut stream =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<TerminalSize>();
        let consumed = loop {
            match stream.next() {
                Some(Ok(size)) => sizes.push(size),
                Some(Err(e)) if e.is_eof() => break stream.byte_offset(),
                Some(Err(e)) => return Err(RemoteCommandError::InvalidResize(e.to_string())),
                None => break self.buf.len(),
            }
        };
        self.buf.drain(..consumed);
        if self.buf.len() > MAX_RESIZE_BUFFER {
            return Err(RemoteCommandError::ResizeTooLarge(MAX_RESIZE_BUFFER));
        }
        Ok(sizes)
    }
}

#[cfg(test)]
mod tests;
