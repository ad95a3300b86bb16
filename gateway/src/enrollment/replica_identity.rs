//! The broker identities of sharded gateway replicas (`broker-config --gateway-replica`).
//!
//! The generated Mosquitto configuration makes a client certificate's CN its user name
//! and its client id, so replicas sharing the gateway's certificate would take each
//! other's session over. Each replica gets its own certificate from the fleet CA, with
//! CN `edge_gateway.<replica>`: the `_` keeps it out of the device id syntax (a DNS
//! subdomain), so no enrolled device can ever hold a gateway's rights, and the ACL gives
//! exactly these names the gateway's `readwrite #`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::GATEWAY_IDENTITY;
use super::error::CliError;
use super::fleet_ca::FleetCa;
use super::layout::EnrollmentLayout;
use super::private_file::{create_dir, write_private, write_public};

const VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);

/// Why a replica id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--gateway-replica {0:?} must be a replica id as given to `edge-gateway run --replica-id` \
     (a DNS label: lowercase letters, digits, '-')"
)]
pub struct BadReplicaId(pub String);

/// The CN (so MQTT user name and client id) of replica `replica`.
pub fn common_name(replica: &str) -> String {
    format!("{GATEWAY_IDENTITY}.{replica}")
}

/// A replica id as `--replica-id` accepts it.
pub fn parse_replica(s: &str) -> Result<String, BadReplicaId> {
    if crate::sharding::settings::is_dns_label(s) {
        Ok(s.to_owned())
    } else {
        Err(BadReplicaId(s.to_owned()))
    }
}

/// A replica's certificate and key in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaIdentity {
    pub replica: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Issued by this call (else it existed).
    pub created: bool,
}

/// Issues `replica`'s certificate from the fleet CA unless it exists.
pub fn ensure(
    ca: &FleetCa,
    layout: &EnrollmentLayout,
    replica: &str,
) -> Result<ReplicaIdentity, CliError> {
    let dir = layout.gateway_dir();
    let cert = dir.join(format!("replica-{replica}.pem"));
    let key = dir.join(format!("replica-{replica}.key"));
    let created = !(cert.is_file() && key.is_file());
    if created {
        create_dir(&dir, 0o700)?;
        let identity = ca.issue_client(&common_name(replica), VALIDITY)?;
        write_private(&key, identity.key_pem.as_bytes())?;
        write_public(&cert, identity.cert_pem.as_bytes())?;
    }
    Ok(ReplicaIdentity {
        replica: replica.to_owned(),
        cert,
        key,
        created,
    })
}

/// The ACL lines giving each replica the gateway's rights.
pub fn acl_lines(replicas: &[String]) -> String {
    let mut acl = String::new();
    if replicas.is_empty() {
        return acl;
    }
    acl.push_str(
        "\n# Sharded gateway replicas (`broker-config --gateway-replica`): the gateway's rights.\n",
    );
    for replica in replicas {
        let _ = write!(acl, "user {}\ntopic readwrite #\n", common_name(replica));
    }
    acl
}

#[cfg(test)]
mod tests;
