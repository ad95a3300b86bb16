//! Production broker configuration for a NATS cluster (nats-server 2.9 or later, MQTT
//! through JetStream): one file per node with TLS client certificates mapped to users
//! (`verify_and_map`), certificates pinned to the ones currently issued (revoked and
//! superseded certificates cannot connect), per-device publish/subscribe permissions
//! equivalent to the Mosquitto ACL, the gateway's user, and the routes between nodes.
//!
//! NATS has no per-user topic patterns in a configuration file, so every enrolled
//! device gets its own user: the file is regenerated (and `nats-server --signal reload`
//! sent) after every `enroll` or `revoke`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use edge_protocol::DeviceId;
use edge_protocol::topic::{TOPIC_ROOT, TOPIC_VERSION};

use crate::mqtt_link::BROKER_MAX_PAYLOAD_BYTES;

use super::error::Result;
use super::mosquitto::BrokerTlsFiles;
use super::private_file::{create_dir, write_private, write_public};

/// Files shared by every node, besides the per-node `nats-<n>.conf`.
pub const AUTH_FILE: &str = "authorization.conf";
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "server.pem";
pub const KEY_FILE: &str = "server.key";

/// Organisation in every certificate the fleet CA issues (part of the NATS user name).
const CERT_ORGANIZATION: &str = "edge-kube";

/// Subject NATS gives MQTT clients' QoS 1 subscriptions: a user with permissions needs it.
const MQTT_DELIVERY_SUBJECT: &str = "$MQTT.sub.>";

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsNode {
    /// Host name or address the other nodes reach this node's route port at.
    pub host: String,
    /// MQTT over TLS, for devices and the gateway.
    pub mqtt_port: u16,
    /// Cluster routes between nodes.
    pub route_port: u16,
}

impl std::str::FromStr for NatsNode {
    type Err = String;
    /// `HOST:MQTT_PORT:ROUTE_PORT`.
    fn from_str(raw: &str) -> std::result::Result<Self, String> {
        let mut parts = raw.rsplitn(3, ':');
        let route = parts.next();
        let mqtt = parts.next();
        let host = parts.next();
        match (host, mqtt, route) {
            (Some(host), Some(mqtt), Some(route)) if !host.is_empty() => {
                let port = |p: &str| {
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
                };
                Ok(NatsNode {
                    host: host.to_owned(),
                    mqtt_port: port(mqtt)?,
                    route_port: port(route)?,
                })
            }
            _ => Err(format!("{raw:?} is not HOST:MQTT_PORT:ROUTE_PORT")),
        }
    }
}

/// A user the fleet CA issued a certificate to, with the certificate it must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedUser {
    pub common_name: String,
    /// Hex SHA-256 of the certificate's SubjectPublicKeyInfo (NATS `pinned_certs`).
    pub spki_sha256: String,
}

/// Everything needed to render the cluster's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Address every listener binds (`0.0.0.0` for all).
    pub listen_address: String,
    pub nodes: Vec<NatsNode>,
    /// Directory the nodes read the shared files from.
    pub files_dir: PathBuf,
    /// JetStream stores `<dir>/node-<n>` (sessions, retained messages, QoS 1 queues).
    pub jetstream_dir: PathBuf,
    /// The gateway's identity.
    pub gateway: PinnedUser,
    /// Every enrolled, not revoked device.
    pub devices: Vec<PinnedUser>,
}

/// The rendered files: `(file name, contents)` per node, and the shared authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsFiles {
    pub nodes: Vec<(String, String)>,
    pub authorization: String,
}

/// The NATS user a certificate of the fleet CA maps to: its subject as RFC 2253 text.
pub fn user_name(common_name: &str) -> String {
    format!("CN={common_name},O={CERT_ORGANIZATION}")
}

/// Whether NATS 2.9 can carry this device's topics: it refuses MQTT topics with `.`
/// (it maps topic levels to subject tokens, which `.` separates).
pub fn device_id_supported(id: &DeviceId) -> bool {
    !id.as_str().contains('.')
}

/// The NATS subject of the topic level `edge/v1/<device>/<direction>`.
fn device_level(device: &str, direction: &str) -> String {
    format!("{TOPIC_ROOT}.{TOPIC_VERSION}.{device}.{direction}")
}

/// The NATS subject of the MQTT topic filter `edge/v1/<device>/<direction>/#` without
/// its parent level (MQTT's `#` also matches `edge/v1/<device>/<direction>`, so a
/// subscription to that filter needs [`device_level`] as well).
fn device_subject(device: &str, direction: &str) -> String {
    format!("{}.>", device_level(device, direction))
}

impl NatsConfig {
    pub fn render(&self) -> NatsFiles {
        let f = |name: &str| self.files_dir.join(name).display().to_string();
        let replicas = self.nodes.len().clamp(1, 3);
        let routes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"nats-route://{}:{}\"", n.host, n.route_port))
            .collect();
        let mut pinned: Vec<&str> = self
            .devices
            .iter()
            .chain(std::iter::once(&self.gateway))
            .map(|u| u.spki_sha256.as_str())
            .collect();
        pinned.sort_unstable();
        pinned.dedup();
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let n = i + 1;
                let mut conf = String::new();
                let _ = write!(
                    conf,
                    "# NATS node {n} of {count} for edge-kube, written by `edge-gateway broker-config nats`.\n\
                     # Regenerate after `edge-gateway enroll` or `revoke`, then reload every node:\n\
                     #   nats-server --signal reload=<pid>\n\
                     server_name: \"edge-nats-{n}\"\n\
                     # NATS protocol port: loopback only, a random port (MQTT is the fleet's way in).\n\
                     host: \"127.0.0.1\"\n\
                     port: -1\n\
                     max_payload: {payload}\n\
                     jetstream {{\n  store_dir: \"{js}\"\n}}\n\
                     cluster {{\n  name: \"edge-kube\"\n  listen: \"{addr}:{route}\"\n  routes: [\n    {routes}\n  ]\n}}\n\
                     mqtt {{\n  listen: \"{addr}:{mqtt}\"\n\
                     \x20 # Sessions, retained messages and QoS 1 queues are replicated on {replicas} nodes.\n\
                     \x20 stream_replicas: {replicas}\n\
                     \x20 # max_ack_pending stays at its default: with it set, nats-server 2.9.10\n\
                     \x20 # refused the QoS 1 subscriptions of users with permissions.\n\
                     \x20 tls {{\n    cert_file: \"{cert}\"\n    key_file: \"{key}\"\n    ca_file: \"{ca}\"\n\
                     \x20   # The client certificate is the identity: its subject is the user name.\n\
                     \x20   verify_and_map: true\n\
                     \x20   # Only certificates currently issued (not revoked, not superseded).\n\
                     \x20   pinned_certs: [\n      {pins}\n    ]\n  }}\n}}\n\
                     include \"{auth}\"\n",
                    count = self.nodes.len(),
                    payload = BROKER_MAX_PAYLOAD_BYTES,
                    js = self.jetstream_dir.join(format!("node-{n}")).display(),
                    addr = self.listen_address,
                    route = node.route_port,
                    routes = routes.join("\n    "),
                    mqtt = node.mqtt_port,
                    cert = f(CERT_FILE),
                    key = f(KEY_FILE),
                    ca = f(CA_FILE),
                    pins = pinned
                        .iter()
                        .map(|p| format!("\"{p}\""))
                        .collect::<Vec<_>>()
                        .join("\n      "),
                    auth = AUTH_FILE,
                );
                (format!("nats-{n}.conf"), conf)
            })
            .collect();

        let mut auth = String::from(
            "# Users of the edge-kube NATS cluster, written by `edge-gateway broker-config nats`.\n\
             # The user name is the subject of the client certificate. Each device may publish\n\
             # only edge/v1/<its id>/up/# and subscribe only to edge/v1/<its id>/down/#\n\
             # (MQTT topic levels are NATS subject tokens; `#` is `>` plus the parent level);\n\
             # $MQTT.sub.> carries QoS 1 deliveries.\n\
             # Users bind MQTT connections only: nobody can claim them on the NATS port.\n\
             authorization {\n  users = [\n",
        );
        let _ = writeln!(
            auth,
            "    {{user: \"{}\", allowed_connection_types: [\"MQTT\"], permissions: {{publish: {{allow: [\">\"]}}, subscribe: {{allow: [\">\"]}}}}}}",
            user_name(&self.gateway.common_name)
        );
        for device in &self.devices {
            let id = &device.common_name;
            let _ = writeln!(
                auth,
                "    {{user: \"{user}\", allowed_connection_types: [\"MQTT\"], permissions: {{publish: {{allow: [\"{up}\"]}}, subscribe: {{allow: [\"{down_level}\", \"{down}\", \"{MQTT_DELIVERY_SUBJECT}\"]}}}}}}",
                user = user_name(id),
                up = device_subject(id, "up"),
                down_level = device_level(id, "down"),
                down = device_subject(id, "down"),
            );
        }
        auth.push_str("  ]\n}\n");
        NatsFiles {
            nodes,
            authorization: auth,
        }
    }
}

/// The hex SHA-256 of the SubjectPublicKeyInfo of the PEM certificate in `path`.
pub fn spki_sha256(pem: &str, path: &Path) -> Result<String> {
    let bad = |reason: String| super::EnrollmentError::BadPem {
        path: path.to_owned(),
        what: "certificate",
        reason,
    };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.public_key().raw);
    Ok(super::fleet_ca::hex(digest.as_ref()))
}

/// Writes the node configurations, the authorization, CA, server certificate and key
/// (0600) into `out_dir`. Returns the paths of the node configurations.
pub fn write_files(
    out_dir: &Path,
    files: &NatsFiles,
    tls: &BrokerTlsFiles<'_>,
) -> Result<Vec<PathBuf>> {
    create_dir(out_dir, 0o755)?;
    write_public(&out_dir.join(CA_FILE), tls.ca_pem.as_bytes())?;
    write_public(&out_dir.join(CERT_FILE), tls.server_cert_pem.as_bytes())?;
    write_private(&out_dir.join(KEY_FILE), tls.server_key_pem.as_bytes())?;
    write_public(&out_dir.join(AUTH_FILE), files.authorization.as_bytes())?;
    let mut paths = Vec::new();
    for (name, conf) in &files.nodes {
        let path = out_dir.join(name);
        write_public(&path, conf.as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests;
