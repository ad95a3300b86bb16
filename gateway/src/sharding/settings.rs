//! The `--replica-id` and `--shard-*` flags of `edge-gateway run` and the validated
//! [`ShardSettings`]: sharding is on when a replica id is given.

use std::time::Duration;

use clap::Args;

use super::membership::{LeaseTimings, TimingsError};
use crate::config::{ConfigError, parse_duration};

/// Sharding flags (each also `EDGE_GATEWAY_<FLAG>`).
#[derive(Debug, Clone, Args)]
pub struct ShardArgs {
    /// Run as one of several gateway replicas sharing the fleet, under this id (a DNS
    /// label; in the StatefulSet the pod name, e.g. edge-gateway-0). Needs an external
    /// broker (--broker-url) that every replica and device connects to. Without it the
    /// gateway is the single writer of every device it hears from.
    #[arg(long, env = "EDGE_GATEWAY_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Namespace of the replicas' Leases (in a cluster: the gateway's own namespace).
    #[arg(
        long,
        env = "EDGE_GATEWAY_SHARD_NAMESPACE",
        default_value = "edge-system"
    )]
    pub shard_namespace: String,
    /// leaseDurationSeconds of this replica's Lease: how long after its last renewal the
    /// others wait before taking its devices.
    #[arg(long, env = "EDGE_GATEWAY_SHARD_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub shard_lease_duration: Duration,
    /// How long after the start of its last successful renewal a replica keeps writing
    /// to Kubernetes (shorter than the lease duration).
    #[arg(long, env = "EDGE_GATEWAY_SHARD_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub shard_renew_deadline: Duration,
    /// How often a replica renews its Lease and lists the others'.
    #[arg(long, env = "EDGE_GATEWAY_SHARD_RENEW_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub shard_renew_interval: Duration,
}

/// A replica's identity and Lease timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSettings {
    pub replica: String,
    pub namespace: String,
    pub timings: LeaseTimings,
}

impl ShardSettings {
    /// `replica` in `namespace` with the default timings (tests and harnesses).
    pub fn new(replica: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            replica: replica.into(),
            namespace: namespace.into(),
            timings: LeaseTimings::DEFAULT,
        }
    }

    /// The field manager of this replica's Kubernetes writes (its User-Agent), so that
    /// `managedFields` tell the replicas apart: `edge-gateway-<replica>`.
    pub fn field_manager(&self) -> String {
        super::lease_name(&self.replica)
    }

    /// The MQTT client id of this replica: the configured one with the replica id
    /// appended (every replica needs its own session on the broker).
    pub fn mqtt_client_id(&self, configured: &str) -> String {
        format!("{configured}-{}", self.replica)
    }
}

/// A DNS label (RFC 1123): what a replica id must be.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl TryFrom<ShardArgs> for Option<ShardSettings> {
    type Error = ConfigError;
    fn try_from(a: ShardArgs) -> Result<Self, ConfigError> {
        let Some(replica) = a.replica_id else {
            return Ok(None);
        };
        if !is_dns_label(&replica) {
            return Err(ConfigError::Invalid(format!(
                "--replica-id {replica:?} must be a DNS label (lowercase letters, digits, '-')"
            )));
        }
        if !is_dns_label(&a.shard_namespace) {
            return Err(ConfigError::Invalid(format!(
                "--shard-namespace {:?} is not a namespace name",
                a.shard_namespace
            )));
        }
        let timings = LeaseTimings {
            lease_duration: a.shard_lease_duration,
            renew_deadline: a.shard_renew_deadline,
            renew_interval: a.shard_renew_interval,
        }
        .validated()
        .map_err(|e: TimingsError| ConfigError::Invalid(format!("--shard-*: {e}")))?;
        Ok(Some(ShardSettings {
            replica,
            namespace: a.shard_namespace,
            timings,
        }))
    }
}

#[cfg(test)]
mod tests;
