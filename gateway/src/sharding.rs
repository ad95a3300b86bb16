//! Sharded, highly available gateways: several replicas share the fleet, each writing
//! only the Nodes, Leases, pod statuses and Events of its own devices.
//!
//! Each replica holds a coordination Lease (`edge-gateway-<replica>` in its namespace,
//! label [`REPLICA_LABEL`]) and renews it every `--shard-renew-interval`; the live
//! replicas are the Leases not expired ([`membership`]). Devices go to the live replicas
//! by rendezvous hashing of their id ([`rendezvous`], [`assignment`]), so a change of
//! membership moves only the devices of the replica that left or joined. A replica stops
//! every Kubernetes write at its renew deadline, before any other replica can count its
//! Lease expired, and owns nothing for one lease duration after it (re)joins
//! ([`membership`]); the [`ShardGate`] enforces both on each write ([`gate`]).
//! [`runner`] is the thin loop doing the I/O.
//!
//! | file | what is there |
//! |---|---|
//! | `rendezvous.rs` | highest-random-weight owner of a device (pure) |
//! | `membership.rs` | live replicas from Lease sightings; fencing and warm-up (pure) |
//! | `assignment.rs` | the devices heard of, those owned, what a decision changed (pure) |
//! | `gate.rs` | [`ShardGate`]: what the Kubernetes writers and the MQTT link ask per device |
//! | `runner.rs` | renews our Lease, lists the others, applies hand-overs (subscriptions, fleet) |
//! | `settings.rs` | the `--replica-id` and `--shard-*` flags |
//! | `shard_metrics.rs` | `edge_gateway_shard_*` on `/metrics`: live members, owned devices, fencing |

pub mod assignment;
pub mod gate;
pub mod membership;
pub mod rendezvous;
pub mod runner;
pub mod settings;
pub mod shard_metrics;

pub use gate::ShardGate;
pub use settings::{ShardArgs, ShardSettings};

/// Label on every replica Lease; its value is the replica id.
pub const REPLICA_LABEL: &str = "edge-kube.io/gateway-replica";

/// The Lease of replica `replica`: `edge-gateway-<replica>`, without repeating the prefix
/// when the replica id is already a pod name of the StatefulSet (`edge-gateway-0`).
pub fn lease_name(replica: &str) -> String {
    if replica.starts_with("edge-gateway-") {
        replica.to_owned()
    } else {
        format!("edge-gateway-{replica}")
    }
}

#[cfg(test)]
mod tests;
