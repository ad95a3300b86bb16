//! The container end of `kubectl port-forward`: a TCP connection to the port in the
//! pod's network namespace: at the address of the pod's infra container (the pod IP,
//! from the runtime's inspect: `NetworkSettings`), or for a host-network pod at
//! 127.0.0.1. The addresses are reachable from the device with rootful Docker and
//! Podman bridge networks; rootless Podman (slirp4netns, pasta) keeps them inside its
//! own namespace, and an engine without a bridge gives the pod no address to reach.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use edge_protocol::{StreamChannel, StreamErrorCode, StreamPod};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::engine_io::{Control, StreamIo, close_with};
use edge_protocol::StreamClose;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The address to reach `port` at in a container with `ip` (None: host network).
pub fn address(ip: Option<&str>, port: u16) -> Option<SocketAddr> {
    let ip = match ip {
        Some(ip) => ip.parse::<IpAddr>().ok()?,
        None => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    Some(SocketAddr::new(ip, port))
}

/// Connects to the first address that accepts; the kubelet's kind of message when none
/// does.
pub async fn connect(
    pod: &StreamPod,
    port: u16,
    addresses: &[SocketAddr],
) -> Result<StreamIo, StreamClose> {
    let mut last = String::from("no running container with a network address");
    for addr in addresses {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(socket)) => {
                let _ = socket.set_nodelay(true);
                let (read, write) = socket.into_split();
                let output = futures::stream::unfold(read, |mut read| async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    match read.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok((StreamChannel::Data, buf)), read))
                        }
                        Err(e) => Some((Err(e), read)),
                    }
                })
                .boxed();
                return Ok(StreamIo {
                    output,
                    input: Some(Box::pin(write)),
                    control: Control::Socket,
                    output_channels: vec![StreamChannel::Data],
                });
            }
            Ok(Err(e)) => last = format!("dial tcp {addr}: {e}"),
            Err(_) => last = format!("dial tcp {addr}: i/o timeout"),
        }
    }
    Err(close_with(
        StreamErrorCode::ConnectionRefused,
        format!(
            "error forwarding port {port} to pod {}/{}, uid {}: {last}",
            pod.namespace, pod.pod_name, pod.pod_uid
        ),
    ))
}
