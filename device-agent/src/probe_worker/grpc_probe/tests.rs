#![allow(clippy::unwrap_used)]
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::*;

/// What the test's health server answers.
#[derive(Debug, Clone)]
enum Answer {
    /// `HealthCheckResponse.status` per service; other services get `NOT_FOUND`.
    Statuses(BTreeMap<String, u8>),
    /// A trailers-only `UNIMPLEMENTED`, as a server without the health service.
    Unimplemented,
    /// Headers, then nothing.
    Hang,
    /// HTTP 404 without gRPC headers.
    NotFound,
}

/// A tiny `grpc.health.v1.Health` server on 127.0.0.1:0 (HTTP/2 via `h2`); returns its
/// port and the services it was asked about.
async fn health_server(answer: Answer) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (answer, log) = (answer.clone(), log.clone());
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    assert_eq!(request.uri().path(), health_proto::CHECK_PATH);
                    assert_eq!(request.headers()["content-type"], "application/grpc");
                    let mut body = request.into_body();
                    let mut bytes = Vec::new();
                    while let Some(chunk) = body.data().await {
                        bytes.extend_from_slice(&chunk.unwrap());
                    }
                    // the request: 5-byte prefix, then field 1 (tag, one-byte length)
                    let service =
                        String::from_utf8(bytes.get(7..).unwrap_or_default().to_vec()).unwrap();
                    log.lock().unwrap().push(service.clone());
                    let ok = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap();
                    match &answer {
                        Answer::Statuses(statuses) => {
                            let mut send = respond.send_response(ok, false).unwrap();
                            let mut trailers = http::HeaderMap::new();
                            match statuses.get(&service) {
                                Some(status) => {
                                    let message = vec![0, 0, 0, 0, 2, 0x08, *status];
                                    send.send_data(Bytes::from(message), false).unwrap();
                                    trailers.insert("grpc-status", "0".parse().unwrap());
                                }
                                None => {
                                    trailers.insert("grpc-status", "5".parse().unwrap());
                                    trailers.insert(
                                        "grpc-message",
                                        "unknown%20service".parse().unwrap(),
                                    );
                                }
                            }
                            send.send_trailers(trailers).unwrap();
                        }
                        Answer::Unimplemented => {
                            let only = http::Response::builder()
                                .header("content-type", "application/grpc")
                                .header("grpc-status", "12")
                                .header("grpc-message", "unknown service grpc.health.v1.Health")
                                .body(())
                                .unwrap();
                            respond.send_response(only, true).unwrap();
                        }
                        Answer::Hang => {
                            let send = respond.send_response(ok, false).unwrap();
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            drop(send);
                        }
                        Answer::NotFound => {
                            let not_found = http::Response::builder().status(404).body(()).unwrap();
                            respond.send_response(not_found, true).unwrap();
                        }
                    }
                }
            });
        }
    });
    (port, asked)
}

fn statuses(pairs: &[(&str, u8)]) -> Answer {
    Answer::Statuses(pairs.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect())
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn serving_is_healthy_and_the_service_is_sent() {
    let (port, asked) = health_server(statuses(&[("", 1), ("ready", 1)])).await;
    assert_eq!(
        probe("127.0.0.1", port, "", SECOND).await,
        (true, String::new())
    );
    assert_eq!(
        probe("127.0.0.1", port, "ready", SECOND).await,
        (true, String::new())
    );
    assert_eq!(
        *asked.lock().unwrap(),
        vec!["".to_owned(), "ready".to_owned()]
    );
}

#[tokio::test]
async fn any_other_status_is_unhealthy_with_its_name() {
    let (port, _) = health_server(statuses(&[("", 2), ("db", 3), ("odd", 0)])).await;
    assert_eq!(
        probe("127.0.0.1", port, "", SECOND).await,
        (
            false,
            "service unhealthy (responded with \"NOT_SERVING\")".to_owned()
        )
    );
    assert_eq!(
        probe("127.0.0.1", port, "db", SECOND).await.1,
        "service unhealthy (responded with \"SERVICE_UNKNOWN\")"
    );
    assert_eq!(
        probe("127.0.0.1", port, "odd", SECOND).await.1,
        "service unhealthy (responded with \"UNKNOWN\")"
    );
}

#[tokio::test]
async fn an_unknown_service_fails_with_the_servers_status() {
    let (port, _) = health_server(statuses(&[("", 1)])).await;
    assert_eq!(
        probe("127.0.0.1", port, "other", SECOND).await,
        (
            false,
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                .to_owned()
        )
    );
}

#[tokio::test]
async fn a_server_without_the_health_service_is_named() {
    let (port, _) = health_server(Answer::Unimplemented).await;
    assert_eq!(
        probe("127.0.0.1", port, "", SECOND).await.1,
        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"
    );
    let (port, _) = health_server(Answer::NotFound).await;
    assert_eq!(
        probe("127.0.0.1", port, "", SECOND).await.1,
        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unexpected HTTP status code received from server: 404 Not Found"
    );
}

#[tokio::test]
async fn a_slow_answer_times_out_at_the_probe_timeout() {
    let (port, _) = health_server(Answer::Hang).await;
    let started = std::time::Instant::now();
    assert_eq!(
        probe("127.0.0.1", port, "", SECOND).await,
        (
            false,
            "timeout: health rpc did not complete within 1s".to_owned()
        )
    );
    let took = started.elapsed();
    assert!(took >= SECOND && took < 3 * SECOND, "{took:?}");
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_retried_until_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let started = std::time::Instant::now();
    assert_eq!(
        probe("127.0.0.1", port, "", SECOND).await,
        (
            false,
            format!(
                "timeout: failed to connect service \"127.0.0.1:{port}\" within 1s: context deadline exceeded"
            )
        )
    );
    assert!(started.elapsed() >= SECOND);
}

#[tokio::test]
async fn a_port_that_does_not_speak_http2_fails_at_once() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 256];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let started = std::time::Instant::now();
    let (ok, message) = probe("127.0.0.1", port, "", 5 * SECOND).await;
    assert!(!ok);
    assert!(
        message.starts_with(
            "error: health rpc probe failed: rpc error: code = Unavailable desc = connection error:"
        ),
        "{message}"
    );
    assert!(started.elapsed() < 4 * SECOND);
}
