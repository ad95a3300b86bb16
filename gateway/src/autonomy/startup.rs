//! Starting the webhook with the gateway: listener, certificate (given, or self-signed in
//! the store and kept registered as the CA of the MutatingWebhookConfiguration), the
//! device Node watch and the server task.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::device_nodes::DeviceNodes;
use super::review::AutonomyPolicy;
use super::settings::WebhookSettings;
use super::webhook::{RegistrationError, register_ca_bundle, serve};
use crate::kubelet_api::tls::{self, ClientCertificates, TlsError};
use crate::metrics::Metrics;

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookStartError {
    #[error("cannot listen for the admission webhook on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("admission webhook TLS: {0}")]
    Tls(#[from] TlsError),
}

/// A started webhook: its port and its tasks.
#[derive(Debug)]
pub struct StartedWebhook {
    pub port: u16,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Binds, loads or makes the certificate, starts serving and (in the background, with
/// retries) registers the CA.
pub async fn start_webhook(
    settings: &WebhookSettings,
    store_dir: &Path,
    policy: AutonomyPolicy,
    nodes: DeviceNodes,
    client: kube::Client,
    metrics: Arc<Metrics>,
    token: CancellationToken,
) -> Result<StartedWebhook, WebhookStartError> {
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| WebhookStartError::Listen {
                addr: settings.listen,
                source,
            })?;
    let port = listener
        .local_addr()
        .map_err(|source| WebhookStartError::Listen {
            addr: settings.listen,
            source,
        })?
        .port();
    let (cert, key, self_signed) = match &settings.tls {
        Some((c, k)) => (c.clone(), k.clone(), false),
        None => {
            let (c, k) =
                tls::self_signed_files(&store_dir.join("admission-tls"), &settings.dns_names)?;
            (c, k, true)
        }
    };
    let server_tls = tls::server_config(
        &cert,
        &key,
        settings.client_ca.as_deref(),
        ClientCertificates::Required,
    )?;
    let mut tasks = vec![tokio::spawn(serve(
        listener,
        server_tls,
        nodes,
        policy,
        metrics,
        token.clone(),
    ))];
    match (&settings.configuration, self_signed) {
        (Some(name), true) => {
            let ca = std::fs::read(&cert).map_err(|source| TlsError::Read {
                path: cert.display().to_string(),
                source,
            })?;
            tasks.push(tokio::spawn(register_until_done(
                client,
                name.clone(),
                ca,
                token,
            )));
        }
        (Some(name), false) => info!(
            configuration = %name,
            "admission webhook uses the given certificate; its CA is not registered by the gateway"
        ),
        (None, _) => {}
    }
    info!(port, "autonomy admission webhook serving");
    Ok(StartedWebhook { port, tasks })
}

/// How often a registered CA is checked again (a re-created configuration loses it):
/// one GET per interval.
const RECHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Keeps the CA registered: retries with back-off until it is (the configuration may be
/// applied after the gateway starts; a missing one is reported once), then checks again
/// every 30 s.
async fn register_until_done(
    client: kube::Client,
    name: String,
    ca: Vec<u8>,
    token: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    let mut reported_missing = false;
    loop {
        let wait = match register_ca_bundle(client.clone(), &name, &ca).await {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                reported_missing = false;
                RECHECK_INTERVAL
            }
            Err(e @ RegistrationError::NotFound { .. }) => {
                if !reported_missing {
                    warn!(error = %e, "the autonomy webhook is not registered yet; retrying");
                    reported_missing = true;
                }
                backoff
            }
            Err(e) => {
                warn!(error = %e, "registering the autonomy webhook's CA; retrying");
                backoff
            }
        };
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
