//! One direction of one proxied connection: reads bytes, splits them into MQTT packets
//! and forwards each according to the proxy's current faults.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

use super::mqtt_frame::split_frame;
use super::{Direction, Shared, Verdict};

#[derive(Debug, Clone)]
pub(super) struct Link {
    pub connection: u64,
    pub shared: Shared,
    pub token: CancellationToken,
}

/// Forwards until either side closes or the connection is cut; then closes both.
pub(super) async fn forward(
    link: Link,
    direction: Direction,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
) {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    'conn: loop {
        let n = tokio::select! {
            _ = link.token.cancelled() => break,
            r = from.read(&mut chunk) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let frame = match split_frame(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, ?direction, "fault proxy: not MQTT; closing");
                    break 'conn;
                }
            };
            let Verdict::Forward { wait, cut_after } =
                link.shared.verdict(link.connection, direction, &frame)
            else {
                continue;
            };
            if !wait.is_zero() {
                tokio::select! {
                    _ = link.token.cancelled() => break 'conn,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            if link.token.is_cancelled() {
                break 'conn;
            }
            match cut_after {
                Some(linger) if linger.is_zero() => {
                    // The PUBACK and the FIN in one segment: the peer reads the PUBACK
                    // and the end of the connection together.
                    let _ = rustix::net::sockopt::set_tcp_cork(to.as_ref(), true);
                    let _ = to.write_all(&frame.bytes).await;
                    let _ = to.shutdown().await;
                    link.shared.lock().cut_all();
                    break 'conn;
                }
                Some(linger) => {
                    let _ = to.write_all(&frame.bytes).await;
                    let _ = to.flush().await;
                    tokio::select! {
                        _ = link.token.cancelled() => {}
                        _ = tokio::time::sleep(linger) => {}
                    }
                    link.shared.lock().cut_all();
                    break 'conn;
                }
                None => {}
            }
            if to.write_all(&frame.bytes).await.is_err() || to.flush().await.is_err() {
                break 'conn;
            }
        }
    }
    link.token.cancel();
    // A clean cut: FIN to the peer we write to, then read and discard what the other
    // peer still sends for a moment. Closing with unread data would send a RST, and a
    // RST can make the peer's kernel throw away the PUBACK just forwarded.
    let _ = to.shutdown().await;
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        while let Ok(n) = from.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    link.shared
        .lock()
        .connections
        .retain(|(id, _)| *id != link.connection);
}
