#![allow(clippy::unwrap_used)]
//! pods/log through the emulator: proxied over HTTPS to a kubelet endpoint (a small HTTPS
//! server in this test that requires the emulator's client certificate), query parameters
//! passed on, the body streamed as it arrives, kubelet errors returned as Status.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use futures::{AsyncBufReadExt, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, LogParams, PostParams};
use serde_json::json;
use tokio::sync::mpsc;

type Seen = Arc<Mutex<Vec<String>>>;
type Closed = Arc<std::sync::atomic::AtomicBool>;

/// A kubelet stand-in: requires a client cert signed by `client_ca`, records each request's
/// path+query, answers `/containerLogs/default/p/c` with "one\n", then whatever the test
/// sends on `more` (for follow), and 404 for other containers.
async fn fake_kubelet(
    client_ca: &std::path::Path,
    more: mpsc::Receiver<&'static str>,
    closed: Closed,
) -> (u16, Seen) {
    let acceptor =
        edge_hil_tests::apiserver::certs::kubelet_stand_in_acceptor(&[client_ca]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let more = Arc::new(tokio::sync::Mutex::new(more));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            let more = more.clone();
            let closed = closed.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let peer_has_cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                assert!(
                    peer_has_cert,
                    "the emulator must present its kubelet client certificate"
                );
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let more = more.clone();
                        let closed = closed.clone();
                        async move {
                            let pq = req.uri().path_and_query().unwrap().to_string();
                            seen.lock().unwrap().push(pq.clone());
                            let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
                            let status = if req.uri().path() == "/containerLogs/default/p/c" {
                                200
                            } else {
                                404
                            };
                            let follow = pq.contains("follow=true");
                            tokio::spawn(async move {
                                if status != 200 {
                                    let _ = tx
                                        .send(Ok(Frame::data(Bytes::from(
                                            "container \"zz\" not found in pod",
                                        ))))
                                        .await;
                                    return;
                                }
                                let _ = tx.send(Ok(Frame::data(Bytes::from("one\n")))).await;
                                if follow {
                                    let mut more = more.lock().await;
                                    loop {
                                        tokio::select! {
                                            _ = tx.closed() => {
                                                closed.store(true, std::sync::atomic::Ordering::SeqCst);
                                                return;
                                            }
                                            chunk = more.recv() => {
                                                let Some(chunk) = chunk else { return };
                                                if tx.send(Ok(Frame::data(Bytes::from(chunk)))).await.is_err() {
                                                    return;
                                                }
                                            }
                                        }
                                    }
                                }
                            });
                            let body =
                                StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx));
                            let mut resp = hyper::Response::new(BodyExt::boxed(body));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn pod_logs_are_proxied_to_the_kubelet_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ApiServerConfig::new(dir.path());
    cfg.scheduler = false;
    cfg.node_lifecycle = false;
    let server = ApiServer::start(cfg).await.unwrap();
    let client = server.client().await.unwrap();
    let (more_tx, more_rx) = mpsc::channel(4);
    let closed = Closed::default();
    let (port, seen) = fake_kubelet(server.kubelet_client_ca_path(), more_rx, closed.clone()).await;

    let nodes: Api<Node> = Api::all(client.clone());
    // kube-apiserver dials the Hostname address first (--kubelet-preferred-address-types).
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}, "status": {
        "addresses": [{"type": "Hostname", "address": "localhost"}, {"type": "InternalIP", "address": "127.0.0.2"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1",
        "containers": [{"name": "c", "image": "i:1"}, {"name": "d", "image": "i:1"}]}}))
        .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    // Two containers and no container named: 400 like kube-apiserver.
    let err = pods.logs("p", &LogParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400 && s.message.contains("a container name must be specified")),
        "{err:?}"
    );

    let lp = LogParams {
        container: Some("c".into()),
        tail_lines: Some(10),
        timestamps: true,
        since_seconds: Some(30),
        limit_bytes: Some(1000),
        previous: false,
        ..Default::default()
    };
    let text = pods.logs("p", &lp).await.unwrap();
    assert_eq!(text, "one\n");
    let first = seen.lock().unwrap()[0].clone();
    assert!(first.starts_with("/containerLogs/default/p/c?"), "{first}");
    for want in [
        "tailLines=10",
        "timestamps=true",
        "sinceSeconds=30",
        "limitBytes=1000",
    ] {
        assert!(first.contains(want), "{want} missing from {first}");
    }

    // follow: lines arrive while the kubelet is still sending.
    let follow = LogParams {
        container: Some("c".into()),
        follow: true,
        ..Default::default()
    };
    let mut lines = pods.log_stream("p", &follow).await.unwrap().lines();
    let l1 = tokio::time::timeout(Duration::from_secs(5), lines.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(l1, "one");
    more_tx.send("two\n").await.unwrap();
    let l2 = tokio::time::timeout(Duration::from_secs(5), lines.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(l2, "two");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|s| s.contains("follow=true"))
    );
    // The client going away closes the kubelet connection promptly, like kube-apiserver.
    drop(lines);
    for _ in 0..100 {
        if closed.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        closed.load(std::sync::atomic::Ordering::SeqCst),
        "kubelet never saw the follow stream end"
    );

    // Unknown container: 400 from the emulator's own validation.
    let bad = LogParams {
        container: Some("zz".into()),
        ..Default::default()
    };
    let err = pods.logs("p", &bad).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 400),
        "{err:?}"
    );

    // Kubelet errors come back as Status with the kubelet's code and text.
    let unbound: Pod =
        serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"nodeName": "n1",
        "containers": [{"name": "x", "image": "i:1"}]}}))
        .unwrap();
    pods.create(&PostParams::default(), &unbound).await.unwrap();
    let err = pods.logs("q", &LogParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.message.contains("not found")),
        "{err:?}"
    );
}
