//! The sharding metrics on `/metrics`: who this replica sees live, what it owns, whether
//! it may write, hand-overs and Lease renewals.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

#[derive(Debug, Default)]
pub struct ShardMetrics {
    pub owned_devices: Gauge,
    pub known_devices: Gauge,
    pub members: Family<Labels, Gauge>,
    pub may_write: Gauge,
    pub handovers: Family<Labels, Counter>,
    pub lease_renewals: Family<Labels, Counter>,
}

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

impl ShardMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "shard_owned_devices",
            "Devices this gateway replica owns (writes their Nodes, Leases, pod statuses)",
            self.owned_devices.clone(),
        );
        registry.register(
            "shard_known_devices",
            "Devices this replica has heard of (on up/hello or up/state), owned or not",
            self.known_devices.clone(),
        );
        registry.register(
            "shard_members",
            "Gateway replicas whose Lease this replica counts live (1 per replica)",
            self.members.clone(),
        );
        registry.register(
            "shard_may_write",
            "1 while this replica's Lease is fresh enough for it to write to Kubernetes, 0 when fenced",
            self.may_write.clone(),
        );
        registry.register(
            "shard_handovers",
            "Devices handed to this replica (gained) or away from it (lost)",
            self.handovers.clone(),
        );
        registry.register(
            "shard_lease_renewals",
            "Renewals of this replica's Lease, by result (ok, failed)",
            self.lease_renewals.clone(),
        );
    }

    pub fn handover(&self, gained: usize, lost: usize) {
        self.handovers
            .get_or_create(&label("direction", "gained"))
            .inc_by(gained as u64);
        self.handovers
            .get_or_create(&label("direction", "lost"))
            .inc_by(lost as u64);
    }

    pub fn renewal(&self, ok: bool) {
        self.lease_renewals
            .get_or_create(&label("result", if ok { "ok" } else { "failed" }))
            .inc();
    }

    /// Publishes the live members: 1 for each, the others dropped.
    pub fn set_members<'a>(&self, live: impl IntoIterator<Item = &'a String>) {
        self.members.clear();
        for m in live {
            self.members.get_or_create(&label("replica", m)).set(1);
        }
    }
}
