//! A reference kubelet for the streams benchmark (`hil-tests/src/bin/bench-streams.rs`):
//! serves `/portForward/...` as a kubelet does (the SPDY/3.1 upgrade, or the WebSocket
//! `SPDY/3.1+portforward.k8s.io` tunnel that kube-apiserver passes through with
//! `ExtendWebSocketsToKubelet`) and connects every forwarded connection straight to
//! `--target`, on the port the client asked for: no MQTT, no device on the way. Through
//! kube-apiserver and kubectl it gives the ceiling that no node-side code can beat.
//! Built on the library's pure SPDY modules ([`edge_gateway::stream_protocols`]).
//!
//! Only what the benchmark needs: client certificates from `--client-ca` are required
//! and not authorized further, every pod maps to the one target address.
//!
//! ```sh
//! cargo build --profile release-gateway -p edge-gateway --example reference_kubelet
//! target/release-gateway/examples/reference_kubelet --client-ca ca.crt --target 10.88.0.5
//! # prints "listening on 127.0.0.1:<port>"
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use edge_gateway::kubelet_api::tls::{ClientCertificates, self_signed_files, server_config};
use edge_gateway::stream_protocols::negotiation::{
    HEADER_PROTOCOL_VERSION, UPGRADE_SPDY_31, negotiate,
};
use edge_gateway::stream_protocols::port_forward::{
    PORT_FORWARD_PROTOCOL_V1, PortForwardPair, SpdyPortForwardPairer, forward_error_message,
};
use edge_gateway::stream_protocols::spdy_headers::HeaderBlock;
use edge_gateway::stream_protocols::spdy_session::{Session, SessionConfig, SessionEvent};
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tungstenite::Message;
use tungstenite::protocol::Role;

/// Serves kubelet port-forward straight to one address (a benchmark's reference).
#[derive(Debug, Parser)]
struct Args {
    /// CA of the client certificates kube-apiserver presents to kubelets.
    #[arg(long)]
    client_ca: PathBuf,
    /// The address every forwarded connection goes to.
    #[arg(long)]
    target: IpAddr,
}

/// WebSocket sub-protocol of the port-forward tunnel.
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// Bytes read from the target at once.
const READ_CHUNK: usize = 64 * 1024;
/// Chunks read from the target connections and not yet written to the client.
const TARGET_QUEUE: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = std::env::temp_dir().join(format!("reference-kubelet-{}", std::process::id()));
    let (cert, key) = self_signed_files(&dir, &[])?;
    let tls = server_config(
        &cert,
        &key,
        Some(&args.client_ca),
        ClientCertificates::Required,
    )?;
    let mut tls = (*tls).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    println!("listening on 127.0.0.1:{port}");
    let target = args.target;
    loop {
        let (tcp, _) = listener.accept().await.context("accept")?;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |r| answer(r, target));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades()
                .await;
        });
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r
}

fn values<'a>(request: &'a Request<Incoming>, name: &header::HeaderName) -> Vec<&'a str> {
    request
        .headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

async fn answer(
    request: Request<Incoming>,
    target: IpAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !request.uri().path().starts_with("/portForward/") {
        return Ok(plain(StatusCode::NOT_FOUND, "only /portForward is served"));
    }
    let upgrade = values(&request, &header::UPGRADE).join(",");
    let websocket = upgrade.to_ascii_lowercase().contains("websocket");
    let mut response = plain(StatusCode::SWITCHING_PROTOCOLS, "");
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if websocket {
        let offered = values(&request, &header::SEC_WEBSOCKET_PROTOCOL);
        let key = request.headers().get(header::SEC_WEBSOCKET_KEY);
        let (Ok(protocol), Some(key)) = (negotiate(&offered, &[TUNNEL_PROTOCOL]), key) else {
            return Ok(plain(StatusCode::BAD_REQUEST, "not a port-forward tunnel"));
        };
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
    } else {
        let offered = values(
            &request,
            &header::HeaderName::from_static("x-stream-protocol-version"),
        );
        let Ok(protocol) = negotiate(&offered, &[PORT_FORWARD_PROTOCOL_V1]) else {
            return Ok(plain(StatusCode::FORBIDDEN, "no common protocol"));
        };
        headers.insert(header::UPGRADE, HeaderValue::from_static(UPGRADE_SPDY_31));
        headers.insert(HEADER_PROTOCOL_VERSION, HeaderValue::from_static(protocol));
    }
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let io = TokioIo::new(upgraded);
        let transport = if websocket {
            Transport::WebSocket(Box::new(
                WebSocketStream::from_raw_socket(io, Role::Server, None).await,
            ))
        } else {
            Transport::Spdy(io, vec![0; READ_CHUNK])
        };
        serve(transport, target).await;
    });
    Ok(response)
}

/// The upgraded connection: SPDY bytes as they are, or in binary WebSocket messages.
enum Transport<IO> {
    Spdy(IO, Vec<u8>),
    WebSocket(Box<WebSocketStream<IO>>),
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Transport<IO> {
    /// Reads what the client sent into `session`; false once the client is gone.
    async fn read(&mut self, session: &mut Session) -> bool {
        match self {
            Transport::Spdy(io, buf) => match io.read(buf).await {
                Ok(n) if n > 0 => session.receive(&buf[..n]).is_ok(),
                _ => false,
            },
            Transport::WebSocket(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(data))) => break session.receive(&data).is_ok(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    _ => break false,
                }
            },
        }
    }

    async fn write(&mut self, out: Vec<u8>) -> bool {
        match self {
            Transport::Spdy(io, _) => io.write_all(&out).await.is_ok() && io.flush().await.is_ok(),
            Transport::WebSocket(ws) => ws.send(Message::Binary(out.into())).await.is_ok(),
        }
    }
}

/// What a target connection's reader reports: bytes for the data stream, or its end.
struct FromTarget {
    data_stream: u32,
    bytes: Option<Vec<u8>>,
}

async fn serve<IO: AsyncRead + AsyncWrite + Unpin>(mut transport: Transport<IO>, target: IpAddr) {
    let Ok(mut session) = Session::new(SessionConfig::default()) else {
        return;
    };
    let mut pairer = SpdyPortForwardPairer::default();
    let mut links = Links::default();
    let (tx, mut rx) = mpsc::channel::<FromTarget>(TARGET_QUEUE);
    loop {
        let mut out = Vec::new();
        if session.write_output(&mut out).is_err() {
            break;
        }
        if !out.is_empty() && !transport.write(out).await {
            break;
        }
        let step = tokio::select! {
            alive = transport.read(&mut session) => Step::Client(alive),
            Some(from) = rx.recv() => Step::Target(from),
        };
        match step {
            Step::Client(false) => break,
            Step::Client(true) => {
                while let Some(event) = session.poll_event() {
                    on_client(event, &mut session, &mut pairer, &mut links, target, &tx).await;
                }
            }
            Step::Target(FromTarget {
                data_stream,
                bytes: Some(bytes),
            }) => {
                let _ = session.send_data(data_stream, &bytes, false);
            }
            Step::Target(FromTarget {
                data_stream,
                bytes: None,
            }) => {
                let _ = session.close_stream(data_stream);
            }
        }
    }
    for reader in links.readers {
        reader.abort();
    }
}

enum Step {
    Client(bool),
    Target(FromTarget),
}

/// The target connections of one client connection.
#[derive(Default)]
struct Links {
    /// Data stream id → the target connection's write half.
    writers: HashMap<u32, OwnedWriteHalf>,
    readers: Vec<JoinHandle<()>>,
}

async fn on_client(
    event: SessionEvent,
    session: &mut Session,
    pairer: &mut SpdyPortForwardPairer,
    links: &mut Links,
    target: IpAddr,
    tx: &mpsc::Sender<FromTarget>,
) {
    match event {
        SessionEvent::StreamOpened { stream_id, headers } => {
            let _ = session.reply(stream_id, &HeaderBlock::new(), false);
            let Ok(Some(pair)) = pairer.accept(stream_id, &headers) else {
                return;
            };
            match connect(pair, target, tx.clone()).await {
                Ok((data_stream, writer, reader)) => {
                    links.writers.insert(data_stream, writer);
                    links.readers.push(reader);
                }
                Err((pair, e)) => {
                    let text = forward_error_message(pair.port, "reference", "", &e.to_string());
                    let _ = session.send_data(pair.error_stream, text.as_bytes(), true);
                    let _ = session.close_stream(pair.data_stream);
                }
            }
        }
        SessionEvent::Data { stream_id, data } => {
            if let Some(w) = links.writers.get_mut(&stream_id)
                && w.write_all(&data).await.is_err()
            {
                links.writers.remove(&stream_id);
            }
        }
        SessionEvent::RemoteFinished { stream_id }
        | SessionEvent::StreamReset { stream_id, .. } => {
            if let Some(mut w) = links.writers.remove(&stream_id) {
                let _ = w.shutdown().await;
            }
        }
        _ => {}
    }
}

type Connected = (u32, OwnedWriteHalf, JoinHandle<()>);

/// Connects one forwarded connection to the target; its reader feeds `tx`.
async fn connect(
    pair: PortForwardPair,
    target: IpAddr,
    tx: mpsc::Sender<FromTarget>,
) -> Result<Connected, (PortForwardPair, std::io::Error)> {
    let tcp = match tokio::net::TcpStream::connect(SocketAddr::new(target, pair.port)).await {
        Ok(tcp) => tcp,
        Err(e) => return Err((pair, e)),
    };
    let _ = tcp.set_nodelay(true);
    let (mut read, write) = tcp.into_split();
    let data_stream = pair.data_stream;
    let reader = tokio::spawn(async move {
        let mut buf = vec![0; READ_CHUNK];
        loop {
            let bytes = match read.read(&mut buf).await {
                Ok(n) if n > 0 => Some(buf[..n].to_vec()),
                _ => None,
            };
            let end = bytes.is_none();
            if tx.send(FromTarget { data_stream, bytes }).await.is_err() || end {
                break;
            }
        }
    });
    Ok((data_stream, write, reader))
}
