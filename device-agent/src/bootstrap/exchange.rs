//! The enrollment exchange over MQTT as a bootstrap client: connect with the bootstrap
//! credential, send the CSR and the token on the device's own bootstrap topic, wait for
//! the certificate (an operator may have to approve first), resend now and then (the
//! gateway answers a repeated request with the same CSR's state).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use edge_protocol::DeviceId;
use edge_protocol::enrollment::{
    CertificateReply, CertificateRequest, RefusalReason, bootstrap_client_id,
    bootstrap_request_topic, bootstrap_response_topic,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::BootstrapError;
use super::bootstrap_file::BootstrapFile;
use crate::config::BrokerUrl;

/// What the gateway sent: the certificate and CA bundle (PEM), and the name of the
/// Kubernetes CertificateSigningRequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub request_name: String,
    pub certificate_pem: String,
    pub ca_pem: String,
}

/// Timings of the exchange.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeTimings {
    /// The request is sent again this often while no certificate came.
    pub resend: Duration,
    /// Longest wait between reconnect attempts.
    pub reconnect_max: Duration,
}

impl Default for ExchangeTimings {
    fn default() -> Self {
        Self {
            resend: Duration::from_secs(30),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// Connection options: client id, broker, TLS from the CA and client certificate files.
pub fn options(
    client_id: String,
    broker: &BrokerUrl,
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<MqttOptions, BootstrapError> {
    let mut o = MqttOptions::new(client_id, &broker.host, broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    o.set_max_packet_size(256 * 1024, 256 * 1024);
    if broker.tls {
        let tls =
            edge_protocol::broker_tls::client_config(&edge_protocol::broker_tls::BrokerTlsFiles {
                ca,
                client,
            })?;
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
    }
    Ok(o)
}

/// The bootstrap client's options: client id `bootstrap_<id>`, the bootstrap broker,
/// the bootstrap certificate.
pub fn bootstrap_options(
    file: &BootstrapFile,
    id: &DeviceId,
) -> Result<MqttOptions, BootstrapError> {
    options(
        bootstrap_client_id(id),
        &file.bootstrap_broker,
        file.ca_file.as_deref(),
        file.bootstrap_client
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path())),
    )
}

/// Where a request goes and its answer comes from.
#[derive(Debug, Clone)]
pub struct ExchangeTopics {
    pub request: String,
    pub response: String,
}

impl ExchangeTopics {
    pub fn bootstrap(id: &DeviceId) -> Self {
        Self {
            request: bootstrap_request_topic(id),
            response: bootstrap_response_topic(id),
        }
    }

    pub fn renewal(id: &DeviceId) -> Self {
        Self {
            request: edge_protocol::enrollment::renewal_request_topic(id),
            response: edge_protocol::enrollment::renewal_response_topic(id),
        }
    }
}

/// Sends `request` until the gateway issues a certificate or refuses for good.
pub async fn exchange(
    options: MqttOptions,
    topics: ExchangeTopics,
    request: &CertificateRequest,
    timings: ExchangeTimings,
    shutdown: &CancellationToken,
) -> Result<Issued, BootstrapError> {
    let broker = format!(
        "{}:{}",
        options.broker_address().0,
        options.broker_address().1
    );
    let client_id = options.client_id();
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let request_topic = topics.request;
    let response_topic = topics.response;
    let payload = request.encode();
    let send = |client: &AsyncClient| {
        if let Err(e) = client.try_publish(
            request_topic.clone(),
            QoS::AtLeastOnce,
            false,
            payload.clone(),
        ) {
            warn!(error = %e, "cannot queue the certificate request");
        }
    };
    let mut resend = tokio::time::interval(timings.resend);
    resend.tick().await;
    let mut backoff = Duration::from_millis(500);
    let mut connected = false;
    let mut pending_logged: Option<String> = None;
    let result = loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break Err(BootstrapError::Cancelled),
            _ = resend.tick(), if connected => { send(&client); continue; }
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(%broker, %client_id, "connected to ask for a certificate");
                connected = true;
                backoff = Duration::from_millis(500);
                if let Err(e) = client.try_subscribe(response_topic.clone(), QoS::AtLeastOnce) {
                    warn!(error = %e, "cannot subscribe to the enrollment response");
                }
                send(&client);
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == response_topic => {
                let reply = match CertificateReply::decode(&p.payload) {
                    Ok(reply) => reply,
                    Err(e) => {
                        warn!(error = %e, "ignoring an undecodable enrollment response");
                        continue;
                    }
                };
                match reply {
                    CertificateReply::Issued {
                        request_name,
                        certificate_pem,
                        ca_pem,
                    } => {
                        break Ok(Issued {
                            request_name,
                            certificate_pem,
                            ca_pem,
                        });
                    }
                    CertificateReply::Pending {
                        request_name,
                        message,
                    } => {
                        if pending_logged.as_deref() != Some(request_name.as_str()) {
                            info!(
                                csr = %request_name,
                                "{message} (an operator approves it with `kubectl certificate approve {request_name}`)"
                            );
                            pending_logged = Some(request_name);
                        }
                    }
                    CertificateReply::Refused {
                        reason: RefusalReason::Unavailable,
                        message,
                    } => {
                        warn!("the gateway cannot enroll this device yet: {message}; trying again")
                    }
                    CertificateReply::Refused { reason, message } => {
                        break Err(BootstrapError::Refused { reason, message });
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                connected = false;
                warn!(error = %e, retry_in = ?backoff, %broker, "certificate request connection failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break Err(BootstrapError::Cancelled),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(timings.reconnect_max);
            }
        }
    };
    let _ = client.try_disconnect();
    // Let the DISCONNECT go out.
    let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    result
}
