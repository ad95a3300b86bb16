//! The accept loop of the gateway's HTTPS endpoints (the kubelet API, the admission
//! webhook): TLS handshake with a deadline, TCP_NODELAY, HTTP/1.1 (with upgrades) and
//! HTTP/2, every connection ended when the gateway shuts down.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long a client may take for the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app_for(connection)` on every TLS connection accepted on `listener` until
/// `token` is cancelled; `what` names the endpoint in logs.
pub async fn serve<F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    what: &'static str,
    token: CancellationToken,
    app_for: F,
) where
    F: Fn(&TlsStream<TcpStream>) -> Router + Clone + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = token.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    warn!(endpoint = what, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // exec keystrokes and port-forward segments are small writes: no Nagle delay
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app_for = app_for.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    debug!(endpoint = what, %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let svc = TowerToHyperService::new(app_for(&tls));
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    debug!(endpoint = what, %peer, error = %e, "connection ended");
                },
                _ = token.cancelled() => {}
            }
        });
    }
}
