//! The Mosquitto listener for zero-touch enrollment (`broker-config mosquitto
//! --bootstrap-port`): boards holding the fleet's bootstrap file connect there with the
//! shared bootstrap client certificate, issued by a bootstrap CA of its own
//! (`<store-dir>/enrollment/bootstrap-ca/`). That CA is the listener's only `cafile`, so a
//! device certificate is refused there (a device cannot pick another client id and take
//! over a session), and the bootstrap certificate is refused on the device listener.
//! Bootstrap clients choose their client id (`bootstrap_<device id>`), and the ACL's two
//! `%c` patterns confine each to its own request and response topics: it can do nothing
//! else on the broker. The bootstrap token in the request is what the gateway checks.

use std::fmt::Write as _;
use std::path::Path;

use edge_protocol::enrollment::bootstrap_acl_patterns;

/// CN of the shared bootstrap client certificate. The underscore keeps it from ever
/// being a device id.
pub const BOOTSTRAP_IDENTITY: &str = "edge_bootstrap";
/// File name of the bootstrap CA in the broker's directory.
pub const BOOTSTRAP_CA_FILE: &str = "bootstrap-ca.pem";

/// The listener section to append to `mosquitto.conf`.
pub fn listener_conf(listen_address: &str, port: u16, files_dir: &Path) -> String {
    let f = |name: &str| files_dir.join(name).display().to_string();
    let mut conf = String::new();
    let _ = write!(
        conf,
        "\n# Zero-touch enrollment: boards with the fleet's bootstrap file connect here with the\n\
         # shared bootstrap certificate (CN {BOOTSTRAP_IDENTITY}, from the bootstrap CA only: device\n\
         # certificates are refused here, the bootstrap certificate on the device listener). They\n\
         # choose their client id (bootstrap_<device id>); the ACL allows them only their own\n\
         # edge/bootstrap/v1/<client id>/request and .../response.\n\
         listener {port} {listen_address}\n\
         protocol mqtt\n\
         tls_version tlsv1.2\n\
         cafile {ca}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         require_certificate true\n\
         use_identity_as_username true\n",
        ca = f(BOOTSTRAP_CA_FILE),
        cert = f(super::mosquitto::CERT_FILE),
        key = f(super::mosquitto::KEY_FILE),
    );
    conf
}

/// The ACL lines to append.
pub fn acl_lines() -> String {
    let mut acl = String::from(
        "\n# Bootstrap clients (%c = their client id, bootstrap_<device id>): their own enrollment\n\
         # request and response, nothing else.\n",
    );
    for pattern in bootstrap_acl_patterns() {
        acl.push_str(&pattern);
        acl.push('\n');
    }
    acl
}

#[cfg(test)]
mod tests;
