//! `edge-gateway broker-config nats`: gathers the enrolled identities and the cluster's
//! nodes, renders [`NatsConfig`] and writes it with the broker's TLS files.

use std::io::Write;
use std::path::PathBuf;

use super::GATEWAY_IDENTITY;
use super::cli::{BrokerConfigArgs, BrokerSetup};
use super::error::{CliError, EnrollmentError};
use super::issued::IssuedCertificates;
use super::layout::EnrollmentLayout;
use super::mosquitto::BrokerTlsFiles;
use super::nats::{self, NatsConfig, NatsNode, PinnedUser};

/// Default cluster: three nodes on loopback (MQTT 8883-8885, routes 6222-6224).
fn default_nodes() -> Vec<NatsNode> {
    (0..3)
        .map(|i| NatsNode {
            host: "127.0.0.1".to_owned(),
            mqtt_port: 8883 + i,
            route_port: 6222 + i,
        })
        .collect()
}

fn pinned(common_name: &str, cert: &std::path::Path) -> Result<PinnedUser, CliError> {
    let pem = std::fs::read_to_string(cert).map_err(EnrollmentError::io("read", cert))?;
    Ok(PinnedUser {
        common_name: common_name.to_owned(),
        spki_sha256: nats::spki_sha256(&pem, cert)?,
    })
}

/// Writes the cluster's configuration; returns the path of the first node's file.
pub fn broker_config_nats(
    args: &BrokerConfigArgs,
    out: &mut impl Write,
) -> Result<PathBuf, CliError> {
    let BrokerSetup {
        layout,
        ca: _,
        gateway_created,
        revoked,
        server,
        out_dir,
        files_dir,
    } = BrokerSetup::prepare(args, out, EnrollmentLayout::nats_dir)?;
    let mut devices = Vec::new();
    let mut unsupported = Vec::new();
    for (id, cert) in IssuedCertificates::new(&layout).devices()? {
        if revoked.contains(&id) {
            continue;
        }
        if !nats::device_id_supported(&id) {
            unsupported.push(id.to_string());
            continue;
        }
        devices.push(pinned(id.as_str(), &cert)?);
    }
    let nodes = if args.nats_nodes.is_empty() {
        default_nodes()
    } else {
        args.nats_nodes.clone()
    };
    let config = NatsConfig {
        listen_address: args.listen_address.clone(),
        jetstream_dir: args
            .jetstream_dir
            .clone()
            .unwrap_or_else(|| files_dir.join("jetstream")),
        files_dir,
        nodes: nodes.clone(),
        gateway: pinned(GATEWAY_IDENTITY, &layout.gateway_cert())?,
        devices,
    };
    let files = config.render();
    let paths = nats::write_files(
        &out_dir,
        &files,
        &BrokerTlsFiles {
            ca_pem: &super::ca_rotation::trust_bundle_pem(&layout)?,
            server_cert_pem: &server.cert_pem,
            server_key_pem: &server.key_pem,
            crl_pem: "",
        },
    )?;
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("mqtts://{}:{}", n.host, n.mqtt_port))
        .collect();
    for path in &paths {
        writeln!(out, "wrote {}", path.display())?;
    }
    writeln!(
        out,
        "(and {}, ca.pem, server.pem, server.key in {})\n\
         {} device(s) may connect; {} revoked device(s) left out\n\
         start each node: nats-server -c <node file>  (reload after enroll/revoke: nats-server --signal reload=<pid>)\n\
         {} the gateway's client identity (CN {GATEWAY_IDENTITY}); run the gateway with\n  \
         edge-gateway run --broker-url {} --broker-ca {} --broker-cert {} --broker-key {} ...",
        nats::AUTH_FILE,
        out_dir.display(),
        config.devices.len(),
        revoked.len(),
        if gateway_created { "created" } else { "using" },
        urls.join(","),
        layout.ca_cert().display(),
        layout.gateway_cert().display(),
        layout.gateway_key().display(),
    )?;
    if !unsupported.is_empty() {
        writeln!(
            out,
            "warning: left out {} device(s) whose id has a '.': NATS 2.9 refuses MQTT topics with \
             '.' (serve them from Mosquitto or EMQX): {}",
            unsupported.len(),
            unsupported.join(", ")
        )?;
    }
    Ok(paths.into_iter().next().unwrap_or(out_dir))
}
