//! The embedded MQTT broker (rumqttd, plain TCP): the zero-setup default, on loopback.
//!
//! # What it protects, and why loopback
//!
//! rumqttd 0.20 has no per-client topic ACL: its only hooks are a user name/password
//! check at CONNECT and, with client certificates, a tenant prefix (`/tenants/<O>/`)
//! taken from the certificate's Organization (alphanumeric only) that applies to
//! publishing and subscribing alike. It cannot confine a device to publishing on
//! `edge/v1/<its id>/up/#` and subscribing to `edge/v1/<its id>/down/#`, so any client
//! that reaches it can read every device's desired set (with resolved Secret values) and
//! command every device. The gateway therefore refuses to let it listen beyond loopback
//! ([`check_listen`]) unless the operator passes `--embedded-broker-insecure-listen`;
//! fleets use Mosquitto with client certificates and the ACL from
//! `edge-gateway broker-config mosquitto` instead.
//!
//! # Faults
//!
//! rumqttd runs on its own threads and cannot be stopped or restarted on the same port.
//! A panic on one of them (its router, its server thread or a connection task) may leave
//! it deaf: a panic in a connection task can poison the lock every later CONNECT takes.
//! [`EmbeddedBroker::failed`] resolves on any such panic and when its server stops;
//! `gateway::run` then stops the gateway with an error so that its supervisor (systemd,
//! Kubernetes) restarts the process with a fresh broker and the intact store.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::mqtt_link::BROKER_MAX_PAYLOAD_BYTES;

pub mod capacity;

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
    #[error(
        "refusing to let the embedded MQTT broker listen on {0}, beyond loopback: rumqttd has no per-device \
         topic ACL, so anyone reaching it could read every device's desired set (with Secret values) and \
         command every device. For devices on a network use Mosquitto with client certificates and the ACL \
         from `edge-gateway broker-config mosquitto` and pass --broker-url mqtts://... (docs/deploy.md); \
         otherwise keep --mqtt-listen on 127.0.0.1. Only on a lab network you trust, pass \
         --embedded-broker-insecure-listen"
    )]
    BeyondLoopback(SocketAddr),
}

/// Refuses an address beyond loopback unless `insecure_listen` (the operator's explicit
/// `--embedded-broker-insecure-listen`).
pub fn check_listen(listen: SocketAddr, insecure_listen: bool) -> Result<(), BrokerError> {
    if listen.ip().is_loopback() || insecure_listen {
        Ok(())
    } else {
        Err(BrokerError::BeyondLoopback(listen))
    }
}

/// A running embedded broker.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    /// Where it listens (the real port when 0 was asked for).
    pub addr: SocketAddr,
    fault: watch::Receiver<Option<String>>,
}

impl EmbeddedBroker {
    /// Resolves once the broker has failed (a panic on one of its threads, or its server
    /// stopped), with what happened. Pending forever while it is healthy.
    pub async fn failed(&self) -> String {
        let mut rx = self.fault.clone();
        match rx.wait_for(Option::is_some).await {
            Ok(fault) => fault.clone().unwrap_or_default(),
            // The sender lives in a static registry for the whole process.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Fault senders by broker port: its threads are named after the port.
fn registry() -> &'static Mutex<HashMap<u16, watch::Sender<Option<String>>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u16, watch::Sender<Option<String>>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

fn report_fault(port: u16, what: String) {
    let registry = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = registry.get(&port) {
        tx.send_if_modified(|f| {
            if f.is_none() {
                *f = Some(what);
                true
            } else {
                false
            }
        });
    }
}

/// Names of the threads of the broker on `port`: ours, rumqttd's router (named after
/// the router id, which is the port) and its v4 server (named after the server name).
const THREAD_PREFIXES: [&str; 3] = ["edge-broker-", "router-", "edge-broker-v4-"];

fn broker_port_of_thread(name: &str) -> Option<u16> {
    THREAD_PREFIXES
        .iter()
        .filter_map(|p| name.strip_prefix(p))
        .find_map(|rest| rest.parse().ok())
}

/// Chains a panic hook (once per process) that reports panics on broker threads.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let thread = std::thread::current();
            let Some(port) = thread.name().and_then(broker_port_of_thread) else {
                return;
            };
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            report_fault(
                port,
                format!(
                    "panic on broker thread {:?}{location}: {message}",
                    thread.name().unwrap_or_default()
                ),
            );
        }));
    });
}

fn config(listen: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        // Whole packets (rumqttd compares the remaining length): at or below what the
        // gateway's own client accepts, so every frame it forwards reaches the gateway.
        max_payload_size: BROKER_MAX_PAYLOAD_BYTES,
        max_inflight_count: 200,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: format!("edge-broker-v4-{}", listen.port()),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    rumqttd::Config {
        // The router thread is named router-<id>: the port tells brokers apart.
        id: usize::from(listen.port()),
        router: rumqttd::RouterConfig {
            max_connections: 100_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 * BROKER_MAX_PAYLOAD_BYTES,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
        ..Default::default()
    }
}

/// Starts rumqttd on `listen` (port 0 = a free port) and waits until it accepts
/// connections. `insecure_listen` allows an address beyond loopback ([`check_listen`]).
pub async fn start(
    listen: SocketAddr,
    insecure_listen: bool,
) -> Result<EmbeddedBroker, BrokerError> {
    check_listen(listen, insecure_listen)?;
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
    install_panic_hook();
    let (fault_tx, fault) = watch::channel(None);
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(addr.port(), fault_tx);
    let cfg = config(addr);
    let port = addr.port();
    std::thread::Builder::new()
        .name(format!("edge-broker-{port}"))
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(cfg);
            // Returns only once its server thread has ended.
            let what = match broker.start() {
                Ok(()) => "the broker's server thread stopped".to_owned(),
                Err(e) => format!("the broker stopped: {e}"),
            };
            tracing::error!(%what, "embedded broker stopped");
            report_fault(port, what);
        })
        .map_err(BrokerError::Thread)?;
    let probe = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(probe).await.is_ok() {
            return Ok(EmbeddedBroker { addr, fault });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BrokerError::NotListening(addr))
}

#[cfg(test)]
mod tests;
