//! Interop of `stream_protocols` with the real Go implementation: client-go's SPDY
//! executor (hil-tests/go/spdy-client, what kubectl and the API server use) runs an exec
//! session against a tiny server built on the pure modules over plain TCP on loopback.
//! The fake command echoes stdin to stdout, writes to stderr and exits with code 3; in
//! tty mode it reports the terminal size it was sent and exits with 0. Port-forward
//! echoes what the forwarded connection sends. The WebSocket case uses client-go's
//! WebSocket executor (v5 channels) against tungstenite plus `ws_channel`.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use edge_gateway::stream_protocols::negotiation::{
    HEADER_PROTOCOL_VERSION, is_spdy_upgrade, negotiate,
};
use edge_gateway::stream_protocols::port_forward::{self, PortForwardPair, SpdyPortForwardPairer};
use edge_gateway::stream_protocols::remote_command::{
    ExecOptions, ExecStreamSet, ExecStreams, ExitStatus, ResizeDecoder, SPDY_PROTOCOLS,
    TerminalSize, status_json,
};
use edge_gateway::stream_protocols::spdy_headers::HeaderBlock;
use edge_gateway::stream_protocols::spdy_session::{Session, SessionConfig, SessionEvent};
use edge_gateway::stream_protocols::ws_channel::{
    ChannelCodec, ChannelMessage, REMOTE_COMMAND_WS_PROTOCOLS, channel,
};
use tungstenite::Message;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::{CloseFrame, coding::CloseCode};

const GO_CLIENT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../hil-tests/go/spdy-client");

/// Builds the Go client into the target dir once; panics with the command if `go` is
/// missing.
fn go_client() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_go_client).clone()
}

fn build_go_client() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    let binary = target.join("go-spdy-client");
    let build = format!("cd {GO_CLIENT_DIR} && go build -o {} .", binary.display());
    // `go` from PATH, else the default install location.
    let go = ["go", "/usr/local/go/bin/go"]
        .into_iter()
        .find(|go| Command::new(go).arg("version").output().is_ok())
        .unwrap_or("go");
    let status = Command::new(go)
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(GO_CLIENT_DIR)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `go` ({e}); install Go 1.26+ and run: {build}"));
    assert!(
        status.success(),
        "building the Go SPDY client failed: {build}"
    );
    binary
}

/// What the server saw.
#[derive(Debug, Default)]
struct ServerLog {
    protocol: String,
    stdin: Vec<u8>,
    resizes: Vec<TerminalSize>,
    ports: Vec<u16>,
    /// v5 WebSocket: the client's stdin close signal arrived.
    stdin_closed: bool,
}

/// The HTTP/1.1 upgrade request as read by [`read_request`].
struct UpgradeRequest {
    request_line: String,
    /// Lowercased names.
    headers: Vec<(String, String)>,
    /// Bytes received after the request head (the first SPDY frames).
    rest: Vec<u8>,
}

fn read_request(socket: &mut TcpStream) -> anyhow::Result<UpgradeRequest> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = socket.read(&mut chunk)?;
        if n == 0 || buf.len() > 64 * 1024 {
            bail!("connection closed before the end of the request headers");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..end].to_vec())?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(UpgradeRequest {
        request_line,
        headers,
        rest: buf[end + 4..].to_vec(),
    })
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The upgraded connection: negotiated protocol, request query, first SPDY bytes.
struct Upgraded {
    protocol: &'static str,
    query: String,
    rest: Vec<u8>,
}

/// Reads the request, negotiates among `protocols` and answers 101 Switching Protocols.
fn upgrade(socket: &mut TcpStream, protocols: &[&'static str]) -> anyhow::Result<Upgraded> {
    socket.set_read_timeout(Some(Duration::from_secs(15)))?;
    let UpgradeRequest {
        request_line,
        headers,
        rest,
    } = read_request(socket)?;
    let connection = header(&headers, "connection").join(",");
    let upgrade = header(&headers, "upgrade").join(",");
    if !is_spdy_upgrade(&connection, &upgrade) {
        bail!("not a SPDY upgrade: {request_line} {headers:?}");
    }
    let protocol = negotiate(&header(&headers, HEADER_PROTOCOL_VERSION), protocols)?;
    let query = request_line
        .split_whitespace()
        .nth(1)
        .and_then(|target| target.split_once('?'))
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();
    write!(
        socket,
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n{HEADER_PROTOCOL_VERSION}: {protocol}\r\n\r\n"
    )?;
    Ok(Upgraded {
        protocol,
        query,
        rest,
    })
}

/// Writes the session's pending frames, then waits for the next bytes; `None` once the
/// client closed the connection.
fn pump(
    socket: &mut TcpStream,
    session: &mut Session,
    finished: bool,
) -> anyhow::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    session.write_output(&mut out)?;
    socket.write_all(&out)?;
    let mut chunk = vec![0u8; 16 * 1024];
    let n = match socket.read(&mut chunk) {
        Ok(n) => n,
        Err(e) if finished && e.kind() == ErrorKind::ConnectionReset => 0,
        Err(e) => return Err(e).context("reading from the client"),
    };
    chunk.truncate(n);
    Ok((n > 0).then_some(chunk))
}

/// Serves one exec session on `socket`.
fn serve_exec(mut socket: TcpStream) -> anyhow::Result<ServerLog> {
    let Upgraded {
        protocol,
        query,
        rest,
    } = upgrade(&mut socket, SPDY_PROTOCOLS)?;
    let options = ExecOptions::from_query(&query)?;
    let mut log = ServerLog {
        protocol: protocol.to_owned(),
        ..ServerLog::default()
    };
    let mut session = Session::new(SessionConfig::default())?;
    let mut set = ExecStreamSet::new(&options);
    let mut streams: Option<ExecStreams> = None;
    let mut resize = ResizeDecoder::default();
    let (mut stdin_done, mut exited) = (false, false);
    let mut input = rest;
    loop {
        session.receive(&input)?;
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::StreamOpened { stream_id, headers } => {
                    session.reply(stream_id, &HeaderBlock::new(), false)?;
                    if let Some(all) = set.accept(stream_id, &headers)? {
                        if let Some(stderr) = all.stderr {
                            session.send_data(stderr, b"to stderr\n", false)?;
                        }
                        streams = Some(all);
                    }
                }
                SessionEvent::Data { stream_id, data } => {
                    let all = streams.context("data before every stream was opened")?;
                    if Some(stream_id) == all.stdin {
                        log.stdin.extend_from_slice(&data);
                        session.send_data(all.stdout.context("no stdout")?, &data, false)?;
                    } else if Some(stream_id) == all.resize {
                        for size in resize.push(&data)? {
                            let line = format!("resized to {}x{}\n", size.width, size.height);
                            session.send_data(
                                all.stdout.context("no stdout")?,
                                line.as_bytes(),
                                false,
                            )?;
                            log.resizes.push(size);
                        }
                    }
                }
                SessionEvent::RemoteFinished { stream_id }
                    if streams.is_some_and(|all| Some(stream_id) == all.stdin) =>
                {
                    stdin_done = true;
                }
                SessionEvent::GoAway { .. } => return Ok(log),
                _ => {}
            }
        }
        if let (Some(all), false) = (streams, exited) {
            if stdin_done && (!options.tty || !log.resizes.is_empty()) {
                exited = true;
                let status = ExitStatus::Exited(if options.tty { 0 } else { 3 });
                for id in [all.stdout, all.stderr].into_iter().flatten() {
                    session.close_stream(id)?;
                }
                session.send_data(all.error, &status_json(&status), true)?;
                for id in [all.stdin, all.resize].into_iter().flatten() {
                    session.close_stream(id)?;
                }
            }
        }
        match pump(&mut socket, &mut session, exited)? {
            Some(bytes) => input = bytes,
            None => return Ok(log),
        }
    }
}

/// Serves one port-forward connection on `socket`: every forwarded connection's data is
/// echoed back, then both of its streams are closed without an error message.
fn serve_port_forward(mut socket: TcpStream) -> anyhow::Result<ServerLog> {
    let Upgraded { protocol, rest, .. } = upgrade(&mut socket, port_forward::SPDY_PROTOCOLS)?;
    let mut log = ServerLog {
        protocol: protocol.to_owned(),
        ..ServerLog::default()
    };
    let mut session = Session::new(SessionConfig::default())?;
    let mut pairer = SpdyPortForwardPairer::default();
    let mut pairs: Vec<PortForwardPair> = Vec::new();
    let mut input = rest;
    loop {
        session.receive(&input)?;
        while let Some(event) = session.poll_event() {
            match event {
                SessionEvent::StreamOpened { stream_id, headers } => {
                    session.reply(stream_id, &HeaderBlock::new(), false)?;
                    if let Some(pair) = pairer.accept(stream_id, &headers)? {
                        log.ports.push(pair.port);
                        pairs.push(pair);
                    }
                }
                SessionEvent::Data { stream_id, data } => {
                    log.stdin.extend_from_slice(&data);
                    session.send_data(stream_id, &data, false)?;
                }
                SessionEvent::RemoteFinished { stream_id } => {
                    if let Some(pair) = pairs.iter().find(|p| p.data_stream == stream_id) {
                        session.close_stream(pair.data_stream)?;
                        session.close_stream(pair.error_stream)?;
                    }
                }
                SessionEvent::GoAway { .. } => return Ok(log),
                _ => {}
            }
        }
        match pump(&mut socket, &mut session, !pairs.is_empty())? {
            Some(bytes) => input = bytes,
            None => return Ok(log),
        }
    }
}

/// Serves one exec session over WebSocket (the `ExtendWebSocketsToKubelet` path): the
/// channel protocol of `ws_channel` inside binary messages; the session ends with a
/// normal close after the status on the error channel.
#[expect(
    clippy::result_large_err,
    reason = "the handshake callback's signature is tungstenite's"
)]
fn serve_ws_exec(socket: TcpStream) -> anyhow::Result<ServerLog> {
    socket.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut log = ServerLog::default();
    let mut query = String::new();
    let choose = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let offered: Vec<&str> = request
            .headers()
            .get_all("Sec-WebSocket-Protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let chosen = negotiate(&offered, REMOTE_COMMAND_WS_PROTOCOLS).map_err(|e| {
            let mut error = ErrorResponse::new(Some(e.to_string()));
            *error.status_mut() = tungstenite::http::StatusCode::FORBIDDEN;
            error
        })?;
        log.protocol = chosen.to_owned();
        query = request.uri().query().unwrap_or_default().to_owned();
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", chosen.parse().expect("token"));
        Ok(response)
    };
    let mut ws = tungstenite::accept_hdr(socket, choose)
        .map_err(|e| anyhow::anyhow!("WebSocket handshake: {e}"))?;
    let options = ExecOptions::from_query(&query)?;
    let codec = ChannelCodec::for_protocol(&log.protocol)?;
    let binary = |channel: u8, payload: &[u8]| -> anyhow::Result<Message> {
        Ok(Message::Binary(codec.encode_data(channel, payload)?.into()))
    };
    if options.stderr {
        ws.send(binary(channel::STDERR, b"to stderr\n")?)?;
    }
    loop {
        let message = match ws.read() {
            Ok(message) => message,
            Err(tungstenite::Error::ConnectionClosed) => return Ok(log),
            Err(e) => return Err(e).context("reading WebSocket"),
        };
        let Message::Binary(bytes) = message else {
            continue;
        };
        match codec.decode(&bytes)? {
            Some(ChannelMessage::Data {
                channel: channel::STDIN,
                payload,
            }) => {
                log.stdin.extend_from_slice(&payload);
                ws.send(binary(channel::STDOUT, &payload)?)?;
            }
            Some(ChannelMessage::Close {
                channel: channel::STDIN,
            }) => {
                log.stdin_closed = true;
                ws.send(binary(
                    channel::ERROR,
                    &status_json(&ExitStatus::Exited(3)),
                )?)?;
                ws.close(Some(CloseFrame {
                    code: CloseCode::Normal,
                    reason: "".into(),
                }))?;
            }
            other => bail!("unexpected message {other:?}"),
        }
    }
}

/// Runs the Go client in `mode` against a fresh server; returns its JSON and the log.
fn run(
    mode: &str,
    path: &str,
    serve: fn(TcpStream) -> anyhow::Result<ServerLog>,
) -> (serde_json::Value, ServerLog) {
    let client = go_client();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let address = listener.local_addr().expect("local address");
    let server = std::thread::spawn(move || {
        let (socket, _) = listener.accept().context("accept")?;
        serve(socket)
    });
    let url = format!("http://{address}/{path}");
    let output = Command::new(client)
        .args([&url, mode])
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .expect("run the Go client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Go client failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let log = server
        .join()
        .expect("server thread")
        .expect("server side of the session");
    (serde_json::from_str(&stdout).expect("one JSON line"), log)
}

#[test]
fn client_go_exec_gets_stdout_stderr_and_exit_code_3() {
    let (result, log) = run(
        "exec",
        "exec/default/pod/ctr?command=fake&stdin=1&stdout=1&stderr=1",
        serve_exec,
    );
    assert_eq!(
        log.protocol, "v5.channel.k8s.io",
        "client-go offers v5 first"
    );
    assert_eq!(log.stdin, b"hello from stdin\n");
    assert_eq!(result["stdout"], "hello from stdin\n");
    assert_eq!(result["stderr"], "to stderr\n");
    assert_eq!(result["exitCode"], 3, "{result}");
    assert_eq!(result["error"], "command terminated with exit code 3");
}

#[test]
fn client_go_tty_exec_delivers_a_terminal_resize_and_succeeds() {
    let (result, log) = run(
        "tty",
        "exec/default/pod/ctr?command=fake&stdin=1&stdout=1&tty=1",
        serve_exec,
    );
    assert_eq!(
        log.resizes,
        [TerminalSize {
            width: 80,
            height: 24
        }]
    );
    let stdout = result["stdout"].as_str().unwrap();
    assert!(stdout.contains("hello from stdin\n"), "{stdout}");
    assert!(stdout.contains("resized to 80x24\n"), "{stdout}");
    assert_eq!(result["exitCode"], 0, "{result}");
    assert_eq!(result["error"], "");
}

#[test]
fn client_go_websocket_exec_speaks_v5_channels_and_closes_stdin() {
    let path = "exec/default/pod/ctr?command=fake&stdin=1&stdout=1&stderr=1";
    let (result, log) = run("ws", path, serve_ws_exec);
    assert_eq!(log.protocol, "v5.channel.k8s.io");
    assert_eq!(log.stdin, b"hello from stdin\n");
    assert!(log.stdin_closed, "v5 close signal for stdin");
    assert_eq!(result["stdout"], "hello from stdin\n");
    assert_eq!(result["stderr"], "to stderr\n");
    assert_eq!(result["exitCode"], 3, "{result}");
}

#[test]
fn client_go_port_forward_pairs_streams_and_echoes_through_the_tunnel() {
    let (result, log) = run("portforward", "portForward/default/pod", serve_port_forward);
    assert_eq!(log.protocol, "portforward.k8s.io");
    assert_eq!(
        log.ports,
        [8080],
        "one data/error pair for remote port 8080"
    );
    assert_eq!(log.stdin, b"ping through the tunnel\n");
    assert_eq!(result["stdout"], "ping through the tunnel\n");
    assert_eq!(result["error"], "", "{result}");
}
