//! `edge-gateway bootstrap-token`: a new bootstrap token as a Secret manifest for
//! `kubectl apply -f -`; `edge-gateway bootstrap-file`: the directory every board of a
//! fleet gets (bootstrap.toml, the fleet CA, the shared bootstrap client certificate).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::error::CliError;
use super::fleet_ca::FleetCa;
use super::layout::EnrollmentLayout;
use super::mosquitto_bootstrap::BOOTSTRAP_IDENTITY;
use super::private_file::{create_dir, write_private, write_public};
use crate::device_enrollment::bootstrap_token::{SECRET_PREFIX, SECRET_TYPE, USAGE_KEY};
use crate::store::StoreDirArg;

/// `edge-gateway bootstrap-token`.
#[derive(Debug, Clone, Args)]
pub struct BootstrapTokenArgs {
    /// How long the token is valid (24h, 30m, 3600); 0 = no expiration.
    #[arg(long, default_value = "24h", value_parser = crate::config::parse_duration)]
    pub ttl: Duration,
    /// Namespace of the Secret (the gateway's --enrollment-namespace).
    #[arg(long, default_value = "edge-kube-system")]
    pub namespace: String,
    /// A description kept in the Secret.
    #[arg(long, default_value = "edge-kube device enrollment")]
    pub description: String,
}

/// A random `[a-z0-9]{6}.[a-z0-9]{16}` token.
pub fn new_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    // 256 = 7 * 36 + 4: reject the top 4 values so every character is equally likely
    let chars: Vec<char> = bytes
        .iter()
        .filter(|b| **b < 252)
        .map(|b| ALPHABET[(*b % 36) as usize] as char)
        .collect();
    if chars.len() < 22 {
        return new_token();
    }
    format!(
        "{}.{}",
        chars[..6].iter().collect::<String>(),
        chars[6..22].iter().collect::<String>()
    )
}

/// The Secret manifest (YAML) of `token`.
pub fn token_manifest(token: &str, args: &BootstrapTokenArgs, now: jiff::Timestamp) -> String {
    let (id, secret) = token.split_once('.').unwrap_or((token, ""));
    let expiration = if args.ttl.is_zero() {
        String::new()
    } else {
        let at = now
            .checked_add(jiff::SignedDuration::from_secs(args.ttl.as_secs() as i64))
            .unwrap_or(now);
        format!("  expiration: \"{}\"\n", at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    };
    format!(
        "# bootstrap token: {token}\n\
         # (put it into the bootstrap file: edge-gateway bootstrap-file --token {token} ...;\n\
         # revoke it: kubectl -n {ns} delete secret {SECRET_PREFIX}{id})\n\
         apiVersion: v1\n\
         kind: Secret\n\
         metadata:\n  name: {SECRET_PREFIX}{id}\n  namespace: {ns}\n\
         type: {SECRET_TYPE}\n\
         stringData:\n  description: \"{desc}\"\n  token-id: \"{id}\"\n  token-secret: \"{secret}\"\n{expiration}  {USAGE_KEY}: \"true\"\n",
        ns = args.namespace,
        desc = args.description.replace(['"', '\\', '\n'], " "),
    )
}

/// Prints a new token's Secret manifest.
pub fn run_bootstrap_token(args: BootstrapTokenArgs) -> Result<(), CliError> {
    let manifest = token_manifest(&new_token(), &args, jiff::Timestamp::now());
    std::io::stdout().lock().write_all(manifest.as_bytes())?;
    Ok(())
}

/// `edge-gateway bootstrap-file`.
#[derive(Debug, Clone, Args)]
pub struct BootstrapFileArgs {
    #[command(flatten)]
    pub store: StoreDirArg,
    /// Directory to write bootstrap.toml, ca.pem, bootstrap.pem and bootstrap.key into.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// The bootstrap token (from `edge-gateway bootstrap-token`).
    #[arg(long, env = "EDGE_GATEWAY_BOOTSTRAP_TOKEN")]
    pub token: String,
    /// Where boards enroll: Mosquitto's --bootstrap-port listener (mqtts://gw:8884), or
    /// the embedded broker.
    #[arg(long, value_name = "URL")]
    pub bootstrap_broker_url: String,
    /// Where boards connect once enrolled (repeatable) [default: the bootstrap broker].
    #[arg(long = "broker-url", value_name = "URL", value_delimiter = ',')]
    pub broker_urls: Vec<String>,
    /// Template of the device id: {serial} (device tree serial, else machine id, else
    /// MAC), {machine-id}, {mac}.
    #[arg(long, default_value = "edge-{serial}")]
    pub device_id_template: String,
    /// Where each board keeps its key and certificate.
    #[arg(long, default_value = "/var/lib/edge-agent/identity")]
    pub identity_dir: String,
    /// Validity of the shared bootstrap client certificate, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 825, value_parser = clap::value_parser!(u64).range(1..=36500))]
    pub bootstrap_cert_valid_days: u64,
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// Writes the bootstrap directory; returns the path of bootstrap.toml.
pub fn bootstrap_file(args: &BootstrapFileArgs, out: &mut impl Write) -> Result<PathBuf, CliError> {
    let layout = EnrollmentLayout::new(&args.store.store_dir);
    // Created on first use; the directory gets the trust bundle (both CAs in a rotation).
    FleetCa::load_or_create(&layout)?;
    let (bootstrap_ca, _) = FleetCa::load_or_create(&layout.bootstrap_ca_layout())?;
    let identity = bootstrap_ca.issue_client(
        BOOTSTRAP_IDENTITY,
        Duration::from_secs(args.bootstrap_cert_valid_days * 24 * 3600),
    )?;
    create_dir(&args.out_dir, 0o755)?;
    write_public(
        &args.out_dir.join("ca.pem"),
        super::ca_rotation::trust_bundle_pem(&layout)?.as_bytes(),
    )?;
    write_public(
        &args.out_dir.join("bootstrap.pem"),
        identity.cert_pem.as_bytes(),
    )?;
    write_private(
        &args.out_dir.join("bootstrap.key"),
        identity.key_pem.as_bytes(),
    )?;
    let urls: Vec<String> = args.broker_urls.iter().map(|u| toml_string(u)).collect();
    let text = format!(
        "# The same file on every board (edge-agent run --bootstrap-file <this file>).\n\
         bootstrap_broker_url = {bootstrap}\n\
         broker_urls = [{urls}]\n\
         ca_file = \"ca.pem\"\n\
         bootstrap_cert_file = \"bootstrap.pem\"\n\
         bootstrap_key_file = \"bootstrap.key\"\n\
         token = {token}\n\
         device_id_template = {template}\n\
         identity_dir = {identity_dir}\n",
        bootstrap = toml_string(&args.bootstrap_broker_url),
        urls = urls.join(", "),
        token = toml_string(&args.token),
        template = toml_string(&args.device_id_template),
        identity_dir = toml_string(&args.identity_dir),
    );
    let path = args.out_dir.join("bootstrap.toml");
    write_private(&path, text.as_bytes())?;
    // the fleet's agent-update key, pinned on every board of the image (beside the CA)
    let pinned = super::ota_key::pin_into_bundle(&layout, &args.out_dir)?;
    writeln!(
        out,
        "wrote {} (with ca.pem, bootstrap.pem, bootstrap.key{}): copy the directory to /etc/edge-agent/bootstrap/ \
         on the image and start the agent with --bootstrap-file /etc/edge-agent/bootstrap/bootstrap.toml",
        path.display(),
        if pinned.is_some() {
            ", ota-signing.pub"
        } else {
            ""
        }
    )?;
    Ok(path)
}

/// Runs `edge-gateway bootstrap-file`, reporting to stdout.
pub fn run_bootstrap_file(args: BootstrapFileArgs) -> Result<(), CliError> {
    bootstrap_file(&args, &mut std::io::stdout().lock()).map(|_| ())
}

#[cfg(test)]
mod tests;
