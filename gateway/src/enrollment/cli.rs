//! Command-line entry points: `edge-gateway enroll`, `edge-gateway revoke` and
//! `edge-gateway broker-config mosquitto`. The gateway's CLI embeds the `*Args` structs
//! (clap `Args`) and calls the matching `run_*` function.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use edge_protocol::DeviceId;

use super::GATEWAY_IDENTITY;
use super::bundle::{AgentConfigFile, AgentTlsFiles, DeviceBundle};
use super::error::{CliError, EnrollmentError};
use super::fleet_ca::{FleetCa, hex};
use super::issued::IssuedCertificates;
use super::layout::EnrollmentLayout;
use super::mosquitto::{self, BrokerTlsFiles, MosquittoConfig};
use super::private_file::{create_dir, write_private, write_public};
use super::revocation::RevocationList;
use crate::store::StoreDirArg;

const DAY: u64 = 24 * 3600;

/// `edge-gateway enroll`: issue a device certificate and write the device's bundle.
#[derive(Debug, Clone, Args)]
pub struct EnrollArgs {
    /// Device id: becomes the Node name, the MQTT client id and the certificate's CN.
    /// Must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.').
    pub device_id: String,

    /// Extra node label the device asks for, as key=value (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,

    /// Broker URL written into the device's agent.toml (repeatable; tried in order),
    /// e.g. mqtts://gateway.example.com:8883.
    #[arg(
        long = "broker-url",
        value_name = "URL",
        required = true,
        env = "EDGE_GATEWAY_ENROLL_BROKER_URL",
        value_delimiter = ','
    )]
    pub broker_urls: Vec<String>,

    #[command(flatten)]
    pub store: StoreDirArg,

    /// Directory to write the bundle into (agent.toml, ca.pem, device.pem, device.key);
    /// defaults to ./<DEVICE_ID>-bundle.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Validity of the device certificate, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 3650, value_parser = clap::value_parser!(u64).range(1..=36500))]
    pub valid_days: u64,

    /// Issue a new certificate for a device that already has one; the old certificate
    /// goes onto the broker's CRL at the next `broker-config`.
    #[arg(long)]
    pub reissue: bool,

    /// state_dir written into agent.toml: where the agent keeps its local state.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/edge-agent")]
    pub agent_state_dir: String,

    /// runtime_socket written into agent.toml: the Docker Engine API socket on the device
    /// (Docker, or Podman's Docker-compatible socket).
    #[arg(
        long,
        value_name = "URL",
        default_value = "unix:///var/run/docker.sock"
    )]
    pub agent_runtime_socket: String,

    /// heartbeat_interval_seconds written into agent.toml.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub agent_heartbeat_interval_seconds: u64,
}

/// `edge-gateway retire` (alias `revoke`): retire a device for good (gateway and broker).
#[derive(Debug, Clone, Args)]
pub struct RevokeArgs {
    /// Device id to retire. A running gateway retires the device within a second: its
    /// pods and desired set are dropped and its store entries purged; its Node, its
    /// Lease and the pods bound to it are deleted (a Warning Event on each pod; their
    /// controllers reschedule them elsewhere); the device is told to remove its
    /// containers, volumes, local state, key and certificate and to exit (at once if it
    /// is online, else when it next connects). Its hellos are refused from then on. The
    /// next `broker-config mosquitto` puts its certificates on the broker's CRL, after
    /// which it cannot connect at all (so it no longer gets the order): regenerate the
    /// broker configuration once the device has wiped itself, or when it never will.
    /// Deleting its Node labelled `edge-kube.io/retire=true` does the same.
    pub device_id: String,

    #[command(flatten)]
    pub store: StoreDirArg,
}

/// Which broker to write a configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrokerKind {
    /// Eclipse Mosquitto 2.x: TLS client certificates, identity from the CN, ACL, CRL.
    Mosquitto,
    /// A NATS cluster (nats-server 2.9+, MQTT with JetStream): one config per
    /// `--nats-node`, TLS client certificates mapped to users, per-device permissions.
    Nats,
}

/// `edge-gateway broker-config mosquitto|nats`: write a production broker configuration.
#[derive(Debug, Clone, Args)]
pub struct BrokerConfigArgs {
    /// Broker to configure.
    #[arg(value_enum)]
    pub kind: BrokerKind,

    #[command(flatten)]
    pub store: StoreDirArg,

    /// Where to write mosquitto.conf, acl, ca.pem, server.pem, server.key and crl.pem;
    /// defaults to <STORE_DIR>/enrollment/mosquitto.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,

    /// Directory the broker will read those files from, if not the output directory
    /// (e.g. /mosquitto/config when they are mounted into a container).
    #[arg(long, value_name = "DIR")]
    pub files_dir: Option<PathBuf>,

    /// Address of the TLS listener.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    pub listen_address: String,

    /// Port of the TLS listener.
    #[arg(long, default_value_t = 8883)]
    pub port: u16,

    /// Host name or IP address devices and the gateway use to reach the broker; goes into
    /// the server certificate (repeatable).
    #[arg(
        long = "broker-host",
        value_name = "HOST",
        default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()]
    )]
    pub broker_hosts: Vec<String>,

    /// Account Mosquitto switches to when started as root (its `user` option).
    #[arg(long, value_name = "USER")]
    pub run_as_user: Option<String>,

    /// nats: one cluster node, HOST:MQTT_PORT:ROUTE_PORT (repeat for each node; HOST is
    /// where the other nodes reach its route port). Default: three nodes on 127.0.0.1.
    #[arg(long = "nats-node", value_name = "HOST:MQTT_PORT:ROUTE_PORT")]
    pub nats_nodes: Vec<super::nats::NatsNode>,

    /// nats: directory of the nodes' JetStream stores (`node-<n>` below it); defaults to
    /// `jetstream` in the output directory.
    #[arg(long, value_name = "DIR")]
    pub jetstream_dir: Option<PathBuf>,

    /// Validity of the broker's server certificate, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 825, value_parser = clap::value_parser!(u64).range(1..=36500))]
    pub server_cert_valid_days: u64,

    /// Also open the zero-touch enrollment listener on this port (e.g. 8884): boards with
    /// the bootstrap file (`edge-gateway bootstrap-file`) enroll there and can do nothing else.
    #[arg(long, value_name = "PORT")]
    pub bootstrap_port: Option<u16>,

    /// mosquitto: a sharded gateway replica (its `--replica-id`; repeat for each): issues
    /// it its own broker certificate (CN edge_gateway.<ID>: replicas must not share one,
    /// the broker takes the CN as client id) and gives that name the gateway's rights.
    #[arg(long = "gateway-replica", value_name = "ID", value_parser = super::replica_identity::parse_replica)]
    pub gateway_replicas: Vec<String>,
}

/// Runs `edge-gateway enroll`, reporting to stdout.
pub fn run_enroll(args: EnrollArgs) -> Result<(), CliError> {
    enroll(&args, &mut std::io::stdout().lock()).map(|_| ())
}

/// Runs `edge-gateway revoke`, reporting to stdout.
pub fn run_revoke(args: RevokeArgs) -> Result<(), CliError> {
    revoke(&args, &mut std::io::stdout().lock())
}

/// Runs `edge-gateway broker-config`, reporting to stdout.
pub fn run_broker_config(args: BrokerConfigArgs) -> Result<(), CliError> {
    broker_config(&args, &mut std::io::stdout().lock()).map(|_| ())
}

/// Enrolls a device; writes what happened to `out`. Returns the bundle directory.
pub fn enroll(args: &EnrollArgs, out: &mut impl Write) -> Result<PathBuf, CliError> {
    let id = DeviceId::new(args.device_id.clone()).map_err(EnrollmentError::from)?;
    let labels = parse_labels(&args.labels)?;
    for url in &args.broker_urls {
        check_broker_url(url)?;
    }
    let layout = EnrollmentLayout::new(&args.store.store_dir);
    if RevocationList::load(&args.store.store_dir)?.contains(&id) {
        return Err(EnrollmentError::Revoked { id: id.to_string() }.into());
    }
    let issued = IssuedCertificates::new(&layout);
    if let Some(path) = issued.current(&id)
        && !args.reissue
    {
        return Err(EnrollmentError::AlreadyEnrolled {
            id: id.to_string(),
            path,
        }
        .into());
    }
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{id}-bundle")));
    if out_dir.join(DeviceBundle::KEY).exists() {
        return Err(CliError::BundleExists { dir: out_dir });
    }

    let (ca, created) = FleetCa::load_or_create(&layout)?;
    if created {
        writeln!(
            out,
            "created the fleet CA: {} (key {}, mode 0600; keep it private and backed up)",
            layout.ca_cert().display(),
            layout.ca_key().display()
        )?;
    }
    let identity = ca.issue_device(&id, Duration::from_secs(args.valid_days * DAY))?;
    let config = AgentConfigFile {
        device_id: id.to_string(),
        broker_urls: args.broker_urls.clone(),
        state_dir: args.agent_state_dir.clone(),
        runtime_socket: args.agent_runtime_socket.clone(),
        heartbeat_interval_seconds: args.agent_heartbeat_interval_seconds,
        tls: AgentTlsFiles::installed(),
        labels,
    };
    let trust = super::ca_rotation::trust_bundle_pem(&layout)?;
    let bundle = DeviceBundle::write(&out_dir, &config, &trust, &identity)?;
    if let Some(pinned) = super::ota_key::pin_into_bundle(&layout, bundle.dir())? {
        writeln!(out, "pinned the agent-update key: {}", pinned.display())?;
    }
    issued.record(&id, &identity.cert_pem)?;
    writeln!(
        out,
        "enrolled {id}: certificate serial {} valid {} days\nbundle: {}\n  (agent.toml, ca.pem, device.pem, device.key)\n\
         next: copy the bundle to the device and run `edge-agent install --bundle <dir>`,\n  \
         or flash it into a Raspberry Pi image with deploy/flash/flash-image.sh",
        hex(&identity.serial),
        args.valid_days,
        bundle.dir().display()
    )?;
    if args.broker_urls.iter().any(|u| u.starts_with("mqtt://")) {
        writeln!(
            out,
            "warning: mqtt:// is unencrypted and ignores the device certificate; use mqtts:// with Mosquitto in production"
        )?;
    }
    Ok(out_dir)
}

/// Revokes a device; writes what happened to `out`.
pub fn revoke(args: &RevokeArgs, out: &mut impl Write) -> Result<(), CliError> {
    let id = DeviceId::new(args.device_id.clone()).map_err(EnrollmentError::from)?;
    let layout = EnrollmentLayout::new(&args.store.store_dir);
    let mut list = RevocationList::load(&args.store.store_dir)?;
    let known = IssuedCertificates::new(&layout).current(&id).is_some();
    if list.insert(id.clone()) {
        list.save(&args.store.store_dir)?;
        writeln!(out, "revoked {id} ({})", layout.revoked_list().display())?;
    } else {
        writeln!(out, "{id} was already revoked")?;
    }
    if !known {
        writeln!(
            out,
            "note: no certificate was issued to {id} from this store; it is refused by id anyway"
        )?;
    }
    writeln!(
        out,
        "a running gateway retires {id} within a second: its Node, Lease and pods are deleted,\n\
         its store entries purged, and the device is told to wipe itself and stop (now if it\n\
         is online, else when it next connects); it is refused from its next hello.\n\
         Once it has wiped itself, keep it off the broker too: run\n  \
         edge-gateway broker-config mosquitto --store-dir {} ...\nand restart Mosquitto",
        args.store.store_dir.display()
    )?;
    Ok(())
}

/// Writes the broker configuration; returns the path of the main config file.
pub fn broker_config(args: &BrokerConfigArgs, out: &mut impl Write) -> Result<PathBuf, CliError> {
    if args.kind == BrokerKind::Nats {
        if !args.gateway_replicas.is_empty() {
            return Err(CliError::ReplicasNotSupported);
        }
        return super::nats_command::broker_config_nats(args, out);
    }
    let BrokerSetup {
        layout,
        ca,
        gateway_created,
        revoked,
        server,
        out_dir,
        files_dir,
    } = BrokerSetup::prepare(args, out, |layout| layout.mosquitto_dir())?;
    let to_revoke = IssuedCertificates::new(&layout).to_revoke(&revoked)?;
    let mut crl = ca.crl(&to_revoke)?;
    // During a CA rotation the broker checks clients of both CAs: one CRL per CA.
    if let Some(previous) = super::ca_rotation::previous_ca(&layout)? {
        crl.push_str(&previous.crl(&to_revoke)?);
    }
    let trust = super::ca_rotation::trust_bundle_pem(&layout)?;
    let config = MosquittoConfig {
        listen_address: args.listen_address.clone(),
        port: args.port,
        files_dir,
        run_as_user: args.run_as_user.clone(),
    };
    let mut files = config.render(&revoked);
    if let Some(port) = args.bootstrap_port {
        let (bootstrap_ca, _) = FleetCa::load_or_create(&layout.bootstrap_ca_layout())?;
        write_public(
            &out_dir.join(super::mosquitto_bootstrap::BOOTSTRAP_CA_FILE),
            bootstrap_ca.cert_pem().as_bytes(),
        )?;
        files
            .conf
            .push_str(&super::mosquitto_bootstrap::listener_conf(
                &args.listen_address,
                port,
                &config.files_dir,
            ));
        files.acl.push_str(&super::mosquitto_bootstrap::acl_lines());
    }
    files
        .acl
        .push_str(&super::replica_identity::acl_lines(&args.gateway_replicas));
    let replicas = args
        .gateway_replicas
        .iter()
        .map(|r| super::replica_identity::ensure(&ca, &layout, r))
        .collect::<Result<Vec<_>, _>>()?;
    let conf = mosquitto::write_files(
        &out_dir,
        &files,
        &BrokerTlsFiles {
            ca_pem: &trust,
            server_cert_pem: &server.cert_pem,
            server_key_pem: &server.key_pem,
            crl_pem: &crl,
        },
    )?;
    let host = args
        .broker_hosts
        .first()
        .map(String::as_str)
        .unwrap_or("localhost");
    writeln!(
        out,
        "wrote {} (and acl, ca.pem, server.pem, server.key, crl.pem in {})\n\
         CRL: {} certificate(s) refused ({} revoked device(s))\n\
         start the broker: mosquitto -c {}\n\
         (started as root, Mosquitto switches to its own user before it reads server.key:\n  \
         chown mosquitto {} , or start it as that user)\n\
         {} the gateway's client identity (CN {GATEWAY_IDENTITY}); run the gateway with\n  \
         edge-gateway run --broker-url mqtts://{host}:{} --broker-ca {} --broker-cert {} --broker-key {} ...\n\
         (the trust bundle: the fleet CA, and the previous one during a CA rotation)",
        conf.display(),
        out_dir.display(),
        to_revoke.len(),
        revoked.len(),
        conf.display(),
        out_dir.join(mosquitto::KEY_FILE).display(),
        if gateway_created { "created" } else { "using" },
        args.port,
        layout.trust_bundle().display(),
        layout.gateway_cert().display(),
        layout.gateway_key().display(),
    )?;
    for r in &replicas {
        writeln!(
            out,
            "{} the identity of replica {} (CN {}): run it with --replica-id {} --broker-cert {} --broker-key {}",
            if r.created { "created" } else { "using" },
            r.replica,
            super::replica_identity::common_name(&r.replica),
            r.replica,
            r.cert.display(),
            r.key.display(),
        )?;
    }
    Ok(conf)
}

/// What every `broker-config` needs: the fleet CA (created if missing), the gateway's
/// identity, the revoked ids, a server certificate for `--broker-host`, and the output
/// directory (created) with the directory the broker reads it from.
pub(super) struct BrokerSetup {
    pub layout: EnrollmentLayout,
    pub ca: FleetCa,
    pub gateway_created: bool,
    pub revoked: RevocationList,
    pub server: super::fleet_ca::IssuedIdentity,
    pub out_dir: PathBuf,
    pub files_dir: PathBuf,
}

impl BrokerSetup {
    pub(super) fn prepare(
        args: &BrokerConfigArgs,
        out: &mut impl Write,
        default_out_dir: impl Fn(&EnrollmentLayout) -> PathBuf,
    ) -> Result<Self, CliError> {
        if args.broker_hosts.is_empty() {
            return Err(CliError::NoBrokerHost);
        }
        let layout = EnrollmentLayout::new(&args.store.store_dir);
        let (ca, created) = FleetCa::load_or_create(&layout)?;
        if created {
            writeln!(out, "created the fleet CA: {}", layout.ca_cert().display())?;
        }
        let gateway_created = ensure_gateway_identity(&ca, &layout)?;
        // What the gateway's --broker-ca names: it follows a CA rotation.
        super::ca_rotation::write_trust_bundle(&layout)?;
        let revoked = RevocationList::load(&args.store.store_dir)?;
        // During a CA rotation the previous CA, which every device trusts.
        let server = super::ca_rotation::server_certificate_ca(&layout)?.issue_server(
            &args.broker_hosts,
            Duration::from_secs(args.server_cert_valid_days * DAY),
        )?;
        let out_dir = args
            .out_dir
            .clone()
            .unwrap_or_else(|| default_out_dir(&layout));
        create_dir(&out_dir, 0o755)?;
        let files_dir = match &args.files_dir {
            Some(dir) => dir.clone(),
            None => absolute(&out_dir)?,
        };
        Ok(Self {
            layout,
            ca,
            gateway_created,
            revoked,
            server,
            out_dir,
            files_dir,
        })
    }
}

/// Creates the gateway's client certificate if it does not exist yet; true if created.
fn ensure_gateway_identity(ca: &FleetCa, layout: &EnrollmentLayout) -> Result<bool, CliError> {
    if layout.gateway_cert().is_file() && layout.gateway_key().is_file() {
        return Ok(false);
    }
    create_dir(&layout.gateway_dir(), 0o700)?;
    let identity = ca.issue_client(GATEWAY_IDENTITY, Duration::from_secs(3650 * DAY))?;
    write_private(&layout.gateway_key(), identity.key_pem.as_bytes())?;
    write_public(&layout.gateway_cert(), identity.cert_pem.as_bytes())?;
    Ok(true)
}

fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::fs::canonicalize(path).map_err(|source| CliError::Resolve {
        path: path.to_owned(),
        source,
    })
}

/// Parses `key=value` labels with the Kubernetes label syntax. Keys in the
/// `kubernetes.io` / `k8s.io` namespaces are refused: the gateway sets those itself.
pub fn parse_labels(raw: &[String]) -> Result<BTreeMap<String, String>, EnrollmentError> {
    let mut labels = BTreeMap::new();
    for item in raw {
        let bad = |reason: &str| EnrollmentError::InvalidLabel {
            raw: item.clone(),
            reason: reason.to_owned(),
        };
        let (key, value) = item.split_once('=').ok_or_else(|| bad("no '='"))?;
        let (prefix, name) = match key.rsplit_once('/') {
            Some((prefix, name)) => (Some(prefix), name),
            None => (None, key),
        };
        if let Some(prefix) = prefix {
            if DeviceId::new(prefix).is_err() {
                return Err(bad("the key prefix must be a DNS subdomain"));
            }
            if prefix == "kubernetes.io"
                || prefix.ends_with(".kubernetes.io")
                || prefix == "k8s.io"
                || prefix.ends_with(".k8s.io")
            {
                return Err(bad(
                    "kubernetes.io and k8s.io labels are set by the gateway",
                ));
            }
        }
        if name.is_empty() || !is_label_value(name) {
            return Err(bad(
                "the key name must be 1-63 of [A-Za-z0-9-_.], starting and ending alphanumeric",
            ));
        }
        if !value.is_empty() && !is_label_value(value) {
            return Err(bad(
                "the value must be at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric",
            ));
        }
        if labels.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(bad("the key is given twice"));
        }
    }
    Ok(labels)
}

fn is_label_value(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    s.len() <= 63
        && s.chars().all(ok_char)
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn check_broker_url(url: &str) -> Result<(), EnrollmentError> {
    let bad = |reason: &str| EnrollmentError::InvalidBrokerUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = url
        .strip_prefix("mqtts://")
        .or_else(|| url.strip_prefix("mqtt://"))
        .ok_or_else(|| {
            bad("it must start with mqtts:// (or mqtt:// for an unencrypted test broker)")
        })?;
    let host_port = rest.trim_end_matches('/');
    if host_port.is_empty() || host_port.contains('/') || host_port.contains(char::is_whitespace) {
        return Err(bad("expected scheme://host[:port]"));
    }
    if let Some((_, port)) = host_port.rsplit_once(':')
        && !host_port.ends_with(']')
        && port.parse::<u16>().is_err()
    {
        return Err(bad("the port is not a number between 0 and 65535"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
