//! Device enrollment: one fleet CA, one certificate per device, revocation, and the
//! production broker configuration that turns those identities into topic isolation.
//!
//! Identity is one name everywhere: device id = MQTT client id = Node name = CN of the
//! device's client certificate. Everything lives under `<store-dir>/enrollment/`:
//!
//! | path | what |
//! |---|---|
//! | `ca.pem`, `ca.key` (0600) | the fleet CA, created on first use; the key is never printed |
//! | `issued/<id>.pem` | the current certificate of each enrolled device |
//! | `superseded/<id>-<serial>.pem` | certificates replaced by `enroll --reissue` (listed in the CRL) |
//! | `revoked.txt` | revoked device ids, one per line ([`RevocationList`]) |
//! | `gateway/client.pem`, `gateway/client.key` | the gateway's own MQTT client identity |
//! | `mosquitto/` | default output of `broker-config mosquitto` |
//! | `nats/` | default output of `broker-config nats` |
//! | `previous-ca/ca.pem`, `previous-ca/ca.key` | the fleet CA being replaced during a rotation (trusted, no longer issuing) |
//! | `trust-bundle.pem` | the CAs devices and the gateway trust: `ca.pem`, and `previous-ca/ca.pem` during a rotation |
//! | `bootstrap-ca/ca.pem`, `bootstrap-ca/ca.key` | the CA of the shared bootstrap client certificate (zero-touch enrollment) |
//! | `ota-signing.pub` | the public half of the agent-update signing key, when the operator created it; copied into each bundle |
//!
//! # Layout
//!
//! | module | what is there |
//! |---|---|
//! | [`error`] | [`EnrollmentError`] and the [`Result`] alias; [`CliError`] of the commands |
//! | [`layout`] | [`EnrollmentLayout`]: the paths above |
//! | [`private_file`] | atomic writes of public (0644) and private (0600) files |
//! | [`fleet_ca`] | [`FleetCa`]: load or create the CA, issue device/gateway/broker certs, sign CRLs |
//! | [`issued`] | [`IssuedCertificates`]: what was issued to whom, by serial |
//! | [`revocation`] | [`RevocationList`]: the revoked device ids the gateway checks at hello |
//! | [`ota_key`] | the agent-update public key pinned into each device bundle |
//! | [`bundle`] | [`DeviceBundle`]: the directory a device needs (`agent.toml`, certs, key) |
//! | [`mosquitto`] | [`MosquittoConfig`]: `mosquitto.conf`, ACL file, CRL, server certificate |
//! | [`nats`] | [`NatsConfig`]: a NATS cluster's node files, users and permissions, pinned certificates |
//! | `nats_command` | `broker-config nats`: gathers identities and nodes, writes the files |
//! | [`mosquitto_bootstrap`] | the enrollment listener (`--bootstrap-port`): bootstrap CA only, ACL confining bootstrap clients to their own topics |
//! | [`bootstrap_cli`] | `edge-gateway bootstrap-token` (a token Secret manifest) and `bootstrap-file` (the one file for every board) |
//! | [`ca_rotation`] | fleet CA rotation: begin (new issuing CA, both trusted), status, finish (previous CA dropped) |
//! | [`ca_rotation_cli`] | `edge-gateway ca-rotation begin|status|finish` |
//! | [`replica_identity`] | per-replica broker certificates of sharded gateways (CN `edge_gateway.<replica>`) and their ACL |
//! | [`cli`] | clap arguments and `run_*` entry points for `edge-gateway enroll/revoke/broker-config` |

pub mod bootstrap_cli;
pub mod bundle;
pub mod ca_rotation;
pub mod ca_rotation_cli;
pub mod cli;
pub mod error;
pub mod fleet_ca;
pub mod issued;
pub mod layout;
pub mod mosquitto;
pub mod mosquitto_bootstrap;
pub mod nats;
mod nats_command;
pub mod ota_key;
pub mod private_file;
pub mod replica_identity;
pub mod revocation;

pub use bundle::{AgentConfigFile, DeviceBundle};
pub use error::{CliError, EnrollmentError, Result};
pub use fleet_ca::{FleetCa, IssuedIdentity};
pub use issued::IssuedCertificates;
pub use layout::EnrollmentLayout;
pub use mosquitto::MosquittoConfig;
pub use nats::NatsConfig;
pub use revocation::{CachedRevocationList, RevocationList};

/// The CN (and so the Mosquitto user name) of the gateway's own client certificate.
///
/// The underscore makes it an invalid DNS-1123 name, so no device can ever be enrolled
/// under it and inherit the gateway's "read and write everything" ACL.
pub const GATEWAY_IDENTITY: &str = "edge_gateway";
