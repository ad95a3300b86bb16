//! The proxy between two scripted MQTT peers on loopback: a client that writes raw
//! packets and a broker stand-in that answers every QoS 1 PUBLISH with its PUBACK.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn publish(pkid: u16) -> Vec<u8> {
    let topic = b"t/x";
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic);
    body.extend_from_slice(&pkid.to_be_bytes());
    body.extend_from_slice(b"payload");
    let mut out = vec![0x32, body.len() as u8];
    out.extend(body);
    out
}

/// Accepts connections and acknowledges every QoS 1 PUBLISH; returns its address.
async fn acking_peer() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(f) = split_frame(&mut buf).unwrap() {
                        if let Some(pkid) = f.packet_id() {
                            let [a, b] = pkid.to_be_bytes();
                            if s.write_all(&[0x40, 0x02, a, b]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Reads PUBACK packet ids until EOF or `quiet` passes without data.
async fn read_acks(s: &mut TcpStream, quiet: Duration) -> (Vec<u16>, bool) {
    let mut buf = Vec::new();
    let mut acks = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match tokio::time::timeout(quiet, s.read(&mut chunk)).await {
            Err(_) => return (acks, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (acks, true),
            Ok(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                while let Some(f) = split_frame(&mut buf).unwrap() {
                    assert_eq!(f.kind, PacketKind::PubAck);
                    acks.push(f.packet_id().unwrap());
                }
            }
        }
    }
}

#[tokio::test]
async fn cuts_right_after_the_nth_puback_and_accepts_a_reconnect() {
    let proxy = FaultProxy::start(acking_peer().await).await.unwrap();
    proxy.cut_after_puback(Direction::ToClient, 2);
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    for pkid in 1..=4 {
        c.write_all(&publish(pkid)).await.unwrap();
    }
    let (acks, closed) = read_acks(&mut c, Duration::from_secs(5)).await;
    assert_eq!(acks, [1, 2], "exactly two PUBACKs forwarded before the cut");
    assert!(closed, "the connection is closed after the second PUBACK");
    assert!(!proxy.cut_armed(Direction::ToClient));
    let stats = proxy.stats();
    assert_eq!((stats.cuts, stats.pubacks_to_client), (1, 2));

    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    c.write_all(&publish(9)).await.unwrap();
    let (acks, closed) = read_acks(&mut c, Duration::from_millis(500)).await;
    assert_eq!(
        (acks, closed),
        (vec![9], false),
        "a new connection flows again"
    );
    proxy.cut_shortly_after_puback(Direction::ToClient, 1, Duration::from_millis(300));
    c.write_all(&publish(10)).await.unwrap();
    let (acks, closed) = read_acks(&mut c, Duration::from_millis(200)).await;
    assert_eq!(
        (acks, closed),
        (vec![10], false),
        "the PUBACK first, the cut later"
    );
    let (_, closed) = read_acks(&mut c, Duration::from_secs(2)).await;
    assert!(closed);
    assert_eq!(proxy.stats().cuts, 2);
    let seen = proxy.seen();
    assert!(seen.iter().any(|p| p.connection == 1
        && p.direction == Direction::ToBroker
        && p.kind == PacketKind::Publish
        && p.packet_id == Some(9)
        && p.topic.as_deref() == Some("t/x")));
}

#[tokio::test]
async fn stall_holds_packets_without_closing_and_drop_loses_them() {
    let proxy = FaultProxy::start(acking_peer().await).await.unwrap();
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.stall(Duration::from_millis(800));
    let started = std::time::Instant::now();
    c.write_all(&publish(1)).await.unwrap();
    let (acks, closed) = read_acks(&mut c, Duration::from_millis(400)).await;
    assert_eq!(
        (acks.len(), closed),
        (0, false),
        "nothing passes while stalled"
    );
    let (acks, _) = read_acks(&mut c, Duration::from_millis(1500)).await;
    assert_eq!(acks, [1]);
    assert!(started.elapsed() >= Duration::from_millis(750));

    proxy.drop_next(Direction::ToClient, PacketKind::PubAck, 1);
    c.write_all(&publish(2)).await.unwrap();
    c.write_all(&publish(3)).await.unwrap();
    let (acks, closed) = read_acks(&mut c, Duration::from_millis(500)).await;
    assert_eq!(
        (acks, closed),
        (vec![3], false),
        "the first PUBACK was dropped"
    );
    assert_eq!(proxy.stats().dropped, 1);

    proxy.set_delay(Direction::ToBroker, Duration::from_millis(300));
    proxy.set_delay(Direction::ToClient, Duration::from_millis(300));
    let started = std::time::Instant::now();
    c.write_all(&publish(4)).await.unwrap();
    let (acks, _) = read_acks(&mut c, Duration::from_millis(1500)).await;
    assert_eq!(acks, [4]);
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "delayed both ways"
    );
    proxy.cut_now();
    let (_, closed) = read_acks(&mut c, Duration::from_secs(2)).await;
    assert!(closed);
}
