//! The embedded MQTT broker (rumqttd, plain TCP): the zero-setup default.
//!
//! rumqttd runs on its own threads and cannot be stopped; it lives as long as the
//! process. It has no topic ACLs: production fleets use Mosquitto with the ACL and
//! client certificates from `edge-gateway broker-config mosquitto`.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use edge_protocol::MAX_DESIRED_SET_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reserve a port on {addr} for the embedded broker: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the embedded broker thread: {0}")]
    Thread(std::io::Error),
    #[error(
        "the embedded broker did not start listening on {0} within 10 s (is the port in use? try another --mqtt-listen)"
    )]
    NotListening(SocketAddr),
}

/// A running embedded broker.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedBroker {
    /// Where it listens (the real port when 0 was asked for).
    pub addr: SocketAddr,
}

fn config(listen: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_DESIRED_SET_BYTES + 64 * 1024,
        max_inflight_count: 200,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "edge-gateway-v4".to_owned(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 100_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 * (MAX_DESIRED_SET_BYTES + 64 * 1024),
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
        ..Default::default()
    }
}

/// Starts rumqttd on `listen` (port 0 = a free port) and waits until it accepts connections.
pub async fn start(listen: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
    let addr = if listen.port() == 0 {
        // rumqttd cannot report the port it bound: reserve one, release it, hand it over.
        let l = TcpListener::bind(listen).map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?;
        l.local_addr().map_err(|source| BrokerError::Bind {
            addr: listen,
            source,
        })?
    } else {
        listen
    };
    let cfg = config(addr);
    std::thread::Builder::new()
        .name("rumqttd".to_owned())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(cfg);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .map_err(BrokerError::Thread)?;
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(probe).await.is_ok() {
            return Ok(EmbeddedBroker { addr });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BrokerError::NotListening(addr))
}
