//! Production broker configuration for Mosquitto (2.x): a TLS listener that requires a
//! client certificate from the fleet CA, takes the identity (user name and client id)
//! from the certificate's CN, checks the CA's CRL (revoked and superseded certificates
//! cannot connect), and an ACL file that confines every device to its own topics while
//! the gateway's identity may read and write everything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use edge_protocol::topic::device_acl_patterns;

use crate::mqtt_link::{BROKER_MAX_PAYLOAD_BYTES, MAX_INCOMING_PACKET_BYTES};

use super::GATEWAY_IDENTITY;
use super::error::Result;
use super::private_file::{create_dir, write_private, write_public};
use super::revocation::RevocationList;

/// File names written into the output directory.
pub const CONF_FILE: &str = "mosquitto.conf";
pub const ACL_FILE: &str = "acl";
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "server.pem";
pub const KEY_FILE: &str = "server.key";
pub const CRL_FILE: &str = "crl.pem";

/// Everything needed to render a Mosquitto configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoConfig {
    /// Address the TLS listener binds (`0.0.0.0` for all).
    pub listen_address: String,
    pub port: u16,
    /// Directory the broker sees the files in (the output directory, or where it is
    /// mounted in the broker's container).
    pub files_dir: PathBuf,
    /// `user` option: the account Mosquitto switches to when started as root.
    pub run_as_user: Option<String>,
}

/// The rendered files, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosquittoFiles {
    pub conf: String,
    pub acl: String,
}

impl MosquittoConfig {
    /// Renders `mosquitto.conf` and the ACL file. `revoked` only annotates the ACL: the
    /// CRL is what keeps revoked devices out.
    pub fn render(&self, revoked: &RevocationList) -> MosquittoFiles {
        let f = |name: &str| self.files_dir.join(name).display().to_string();
        let mut conf = String::new();
        conf.push_str(
            "# Mosquitto configuration for edge-kube, written by `edge-gateway broker-config mosquitto`.\n\
             # Regenerate it after `edge-gateway enroll --reissue` or `edge-gateway revoke`, then\n\
             # restart Mosquitto (it reads the CRL at start).\n\
             per_listener_settings false\n\
             allow_anonymous false\n\
             # The gateway is one client that receives what every device sends: when a fleet\n\
             # reconnects at once (broker restart), thousands of QoS 1 hellos and status reports\n\
             # queue for it. Mosquitto's default (1000 queued, 20 in flight) drops the excess.\n\
             max_queued_messages 200000\n\
             max_inflight_messages 1000\n",
        );
        let _ = write!(
            conf,
            "# Size limits at or below what the gateway's client accepts ({gateway} bytes per\n\
             # packet): a bigger message would cut the gateway off, and its persistent session\n\
             # would get it redelivered on every reconnect. A larger payload is acknowledged and\n\
             # dropped; a client sending a larger packet is disconnected.\n\
             message_size_limit {payload}\n\
             max_packet_size {gateway}\n",
            payload = BROKER_MAX_PAYLOAD_BYTES,
            gateway = MAX_INCOMING_PACKET_BYTES,
        );
        if let Some(user) = &self.run_as_user {
            let _ = writeln!(conf, "user {user}");
        }
        let _ = write!(
            conf,
            "\n# Exec keystrokes and stream credit are small messages: no Nagle delay (with\n\
             # delayed ACKs, up to 40 ms per message otherwise).\n\
             set_tcp_nodelay true\n\
             \n# TLS only; every client presents a certificate issued by the fleet CA.\n\
             listener {port} {addr}\n\
             protocol mqtt\n\
             tls_version tlsv1.2\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             crlfile {crl}\n\
             require_certificate true\n\
             # Identity = certificate CN = device id: the MQTT user name, and the client id too\n\
             # (a device cannot take over another device's session by choosing its client id).\n\
             use_identity_as_username true\n\
             use_username_as_clientid true\n\
             acl_file {acl}\n",
            port = self.port,
            addr = self.listen_address,
            ca = f(CA_FILE),
            cert = f(CERT_FILE),
            key = f(KEY_FILE),
            crl = f(CRL_FILE),
            acl = f(ACL_FILE),
        );

        let mut acl = String::from(
            "# Mosquitto ACL for edge-kube, written by `edge-gateway broker-config mosquitto`.\n\
             # %u is the user name = the CN of the client certificate = the device id.\n\
             # Each device may write only edge/v1/<its id>/up/# and read only edge/v1/<its id>/down/#.\n",
        );
        for pattern in device_acl_patterns() {
            acl.push_str(&pattern);
            acl.push('\n');
        }
        let _ = write!(
            acl,
            "\n# The gateway's own identity reads and writes everything.\n\
             user {GATEWAY_IDENTITY}\n\
             topic readwrite #\n"
        );
        if !revoked.is_empty() {
            acl.push_str(
                "\n# Revoked devices (their certificates are on the CRL, so they cannot connect):\n",
            );
            for id in revoked.iter() {
                let _ = writeln!(acl, "#   {id}");
            }
        }
        MosquittoFiles { conf, acl }
    }
}

/// The contents of the files `broker-config mosquitto` writes besides config and ACL.
#[derive(Debug)]
pub struct BrokerTlsFiles<'a> {
    pub ca_pem: &'a str,
    pub server_cert_pem: &'a str,
    pub server_key_pem: &'a str,
    pub crl_pem: &'a str,
}

/// Writes config, ACL, CA, server certificate and key (0600), and CRL into `out_dir`.
/// Returns the path of `mosquitto.conf`.
pub fn write_files(
    out_dir: &Path,
    files: &MosquittoFiles,
    tls: &BrokerTlsFiles<'_>,
) -> Result<PathBuf> {
    create_dir(out_dir, 0o755)?;
    write_public(&out_dir.join(CA_FILE), tls.ca_pem.as_bytes())?;
    write_public(&out_dir.join(CERT_FILE), tls.server_cert_pem.as_bytes())?;
    write_private(&out_dir.join(KEY_FILE), tls.server_key_pem.as_bytes())?;
    write_public(&out_dir.join(CRL_FILE), tls.crl_pem.as_bytes())?;
    write_public(&out_dir.join(ACL_FILE), files.acl.as_bytes())?;
    let conf = out_dir.join(CONF_FILE);
    write_public(&conf, files.conf.as_bytes())?;
    Ok(conf)
}

#[cfg(test)]
mod tests;
