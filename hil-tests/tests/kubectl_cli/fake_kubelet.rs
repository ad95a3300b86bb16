//! A kubelet stand-in for `kubectl logs`: the API server proxies to it over mTLS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// A kubelet stand-in serving `/containerLogs/...` over HTTPS (client cert required):
/// for `<namespace>/sensor/main` only, "line 1..3" at once, then (with follow) one more line every 100 ms.
pub async fn fake_kubelet(client_ca: &Path, namespace: &str) -> u16 {
    let logs_path: Arc<str> = format!("/containerLogs/{namespace}/sensor/main").into();
    let acceptor =
        edge_hil_tests::apiserver::certs::kubelet_stand_in_acceptor(&[client_ca]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let logs_path = logs_path.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let logs_path = logs_path.clone();
                        async move {
                            let follow = req.uri().query().unwrap_or("").contains("follow=true");
                            let tail = req.uri().query().unwrap_or("").contains("tailLines=2");
                            let ok = req.uri().path() == &*logs_path;
                            let (tx, rx) = tokio::sync::mpsc::channel::<
                                Result<Frame<Bytes>, std::io::Error>,
                            >(8);
                            tokio::spawn(async move {
                                let first = if tail {
                                    "line 2\nline 3\n"
                                } else {
                                    "line 1\nline 2\nline 3\n"
                                };
                                let _ = tx.send(Ok(Frame::data(Bytes::from(first)))).await;
                                if follow {
                                    for i in 4.. {
                                        tokio::time::sleep(Duration::from_millis(100)).await;
                                        if tx
                                            .send(Ok(Frame::data(Bytes::from(format!(
                                                "line {i}\n"
                                            )))))
                                            .await
                                            .is_err()
                                        {
                                            return;
                                        }
                                    }
                                }
                            });
                            let mut resp = hyper::Response::new(BodyExt::boxed(StreamBody::new(
                                tokio_stream::wrappers::ReceiverStream::new(rx),
                            )));
                            if !ok {
                                *resp.status_mut() = hyper::StatusCode::NOT_FOUND;
                            }
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
    port
}
