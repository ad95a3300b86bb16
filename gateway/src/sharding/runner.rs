//! The thin loop of a replica: every renew interval it renews its Lease and lists the
//! others' ([`REPLICA_LABEL`]), hands what it saw to the pure [`Membership`] and
//! [`Assignment`], and carries out what changed: the [`ShardGate`] first (writes stop or
//! start), then the broker subscriptions and the fleet (forget or adopt). Devices the MQTT
//! link hears of are assigned as they come. On shutdown it stops writing, then releases
//! its Lease (empty holder) so that the others take its devices at once.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_protocol::DeviceId;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use rumqttc::{AsyncClient, QoS, SubscribeFilter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::assignment::{Assignment, Handover};
use super::gate::device_filters;
use super::membership::{LeaseSeen, Membership};
use super::{REPLICA_LABEL, ShardGate, ShardSettings, lease_name};
use crate::fleet::Fleet;
use crate::metrics::Metrics;

/// What a replica runs with.
pub struct ShardRunner {
    pub settings: ShardSettings,
    pub client: kube::Client,
    pub gate: ShardGate,
    pub heard: mpsc::UnboundedReceiver<DeviceId>,
    pub fleet: Arc<Fleet>,
    pub mqtt: AsyncClient,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ShardRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardRunner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// This process's holder identity: the replica id and a per-start suffix, so that a
/// restarted replica is told apart from its previous life in `kubectl get lease`.
fn holder_identity(replica: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{replica}_{:08x}", nanos ^ std::process::id())
}

/// Annotation of a replica Lease: the holder identities (comma-separated) the replica
/// assigned devices over when it wrote the Lease (see [`Membership`]).
pub const ACKS_ANNOTATION: &str = "edge-kube.io/assigned-over";

/// A listed Lease as the membership reads it (`None`: not a replica Lease).
fn lease_seen(lease: &Lease) -> Option<LeaseSeen> {
    let member = lease.metadata.labels.as_ref()?.get(REPLICA_LABEL)?.clone();
    let spec = lease.spec.as_ref()?;
    let acks = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ACKS_ANNOTATION))
        .map(|v| {
            v.split(',')
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Some(LeaseSeen {
        member,
        holder: spec.holder_identity.clone(),
        renew_time: spec
            .renew_time
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| lease.metadata.resource_version.clone()),
        duration: Duration::from_secs(
            spec.lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        ),
        resource_version: lease.metadata.resource_version.clone(),
        acks,
    })
}

/// A replica Lease to write: `holder` (empty: released), our timings, renewed now, on
/// the precondition `resource_version` when given, acknowledging `acks`.
fn replica_lease(
    member: &str,
    holder: &str,
    duration: Duration,
    resource_version: Option<String>,
    acks: &BTreeSet<String>,
) -> Lease {
    let joined = acks
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",");
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(member)),
            labels: Some([(REPLICA_LABEL.to_owned(), member.to_owned())].into()),
            annotations: Some([(ACKS_ANNOTATION.to_owned(), joined)].into()),
            resource_version,
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.to_owned()),
            lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
            renew_time: Some(MicroTime(jiff::Timestamp::now())),
            ..Default::default()
        }),
    }
}

/// What a renewal found.
enum Renewal {
    Renewed,
    /// Our Lease was claimed or deleted since we last wrote it: another replica may own
    /// our devices.
    Lost,
    Failed,
}

struct Loop {
    r: ShardRunner,
    leases: Api<Lease>,
    /// This process's holder identity; `holder` adds `.<n>` after the n-th rejoin.
    holder_base: String,
    rejoins: u32,
    holder: String,
    /// The other replicas' holder identities our last decision assigned over.
    acks: BTreeSet<String>,
    /// The resourceVersion of our Lease as we last wrote it (`None`: read it first).
    own_version: Option<String>,
    membership: Membership,
    assignment: Assignment,
}

impl ShardRunner {
    /// Runs until `token` is cancelled.
    pub async fn run(self, token: CancellationToken) {
        let leases = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let holder = holder_identity(&self.settings.replica);
        let mut membership = Membership::new(self.settings.replica.clone(), self.settings.timings);
        membership.set_holder(holder.clone());
        let mut l = Loop {
            r: self,
            leases,
            holder_base: holder.clone(),
            rejoins: 0,
            holder,
            acks: BTreeSet::new(),
            own_version: None,
            membership,
            assignment: Assignment::default(),
        };
        // devices restored from the store are not ours until assigned (and then adopted
        // afresh from their own report)
        for d in l.r.fleet.known_devices() {
            l.assignment.learn(d.clone());
            l.r.fleet.on_handover(&d, false);
        }
        info!(
            replica = %l.r.settings.replica,
            lease = %lease_name(&l.r.settings.replica),
            namespace = %l.r.settings.namespace,
            "gateway replica starting: owns no device until the other replicas acknowledge it, or its Lease is one lease duration old"
        );
        let mut interval = tokio::time::interval(l.r.settings.timings.renew_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => break,
                _ = interval.tick() => l.cycle().await,
                Some(d) = l.r.heard.recv() => {
                    let mut new = l.assignment.learn(d);
                    while let Ok(d) = l.r.heard.try_recv() {
                        new |= l.assignment.learn(d);
                    }
                    if new {
                        l.decide(Instant::now());
                    }
                }
            }
        }
        l.shut_down().await;
    }
}

impl Loop {
    /// Renews our Lease, lists the others, claims expired ones, decides again.
    async fn cycle(&mut self) {
        let started = Instant::now();
        let timings = self.r.settings.timings;
        // a renewal confirmed after the renew deadline is of no use
        let renewal = tokio::time::timeout(timings.renew_deadline / 2, self.renew())
            .await
            .unwrap_or(Renewal::Failed);
        match renewal {
            Renewal::Renewed => {}
            Renewal::Lost => {
                warn!(
                    "this replica's Lease was claimed by another replica: stopping every write, owning nothing until it has rejoined"
                );
                self.membership.released();
                // a new holder identity: acknowledgements of the life before do not count
                self.rejoins += 1;
                self.holder = format!("{}.{}", self.holder_base, self.rejoins);
                self.membership.set_holder(self.holder.clone());
                self.r.metrics.shard.renewal(false);
            }
            Renewal::Failed => self.r.metrics.shard.renewal(false),
        }
        let listed = tokio::time::timeout(
            timings.renew_interval,
            self.leases
                .list(&ListParams::default().labels(REPLICA_LABEL)),
        )
        .await;
        let now = Instant::now();
        match listed {
            Ok(Ok(list)) => {
                self.membership
                    .observe(list.items.iter().filter_map(lease_seen), now);
                if matches!(renewal, Renewal::Renewed) {
                    self.r.metrics.shard.renewal(true);
                    self.membership.renewed(started, now);
                }
                if self.membership.may_write(now) {
                    self.claim_expired(now).await;
                }
            }
            Ok(Err(e)) => warn!(error = %e, "cannot list the gateway replicas' Leases"),
            Err(_) => warn!("listing the gateway replicas' Leases timed out"),
        }
        self.decide(Instant::now());
    }

    /// Writes our Lease on the precondition of its last resourceVersion (read first when
    /// unknown: at start and after losing it).
    async fn renew(&mut self) -> Renewal {
        let name = lease_name(&self.r.settings.replica);
        let duration = self.r.settings.timings.lease_duration;
        let version = match self.own_version.clone() {
            Some(v) => v,
            None => match self.leases.get_opt(&name).await {
                Ok(Some(existing)) => {
                    let held_by = existing
                        .spec
                        .as_ref()
                        .and_then(|s| s.holder_identity.as_deref())
                        .unwrap_or_default();
                    if !held_by.is_empty() && !held_by.starts_with(&self.holder_base) {
                        // a previous life that did not release it may still be writing
                        self.membership.inherited_unreleased(Instant::now());
                    }
                    existing.metadata.resource_version.unwrap_or_default()
                }
                Ok(None) => {
                    let lease = replica_lease(
                        &self.r.settings.replica,
                        &self.holder,
                        duration,
                        None,
                        &self.acks,
                    );
                    return match self.leases.create(&PostParams::default(), &lease).await {
                        Ok(created) => {
                            self.own_version = created.metadata.resource_version;
                            Renewal::Renewed
                        }
                        Err(e) => {
                            warn!(error = %e, lease = %name, "cannot create this replica's Lease");
                            Renewal::Failed
                        }
                    };
                }
                Err(e) => {
                    warn!(error = %e, lease = %name, "cannot read this replica's Lease");
                    return Renewal::Failed;
                }
            },
        };
        let lease = replica_lease(
            &self.r.settings.replica,
            &self.holder,
            duration,
            Some(version),
            &self.acks,
        );
        match self
            .leases
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.own_version = written.metadata.resource_version;
                Renewal::Renewed
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // our own earlier renewal, abandoned here but made there, or a claim: a
                // claim empties the holder, and once it is made no renewal of ours on an
                // older version can be
                self.own_version = None;
                match self.leases.get_opt(&name).await {
                    Ok(Some(now))
                        if now.spec.as_ref().and_then(|s| s.holder_identity.as_deref())
                            == Some(self.holder.as_str()) =>
                    {
                        self.own_version = now.metadata.resource_version;
                        Renewal::Failed
                    }
                    Ok(_) => Renewal::Lost,
                    Err(e) => {
                        warn!(error = %e, lease = %name, "cannot read this replica's Lease");
                        Renewal::Failed
                    }
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                self.own_version = None;
                Renewal::Lost
            }
            Err(e) => {
                warn!(error = %e, lease = %name, "cannot renew this replica's Lease");
                Renewal::Failed
            }
        }
    }

    /// Empties the holder of every expired replica Lease, each on the resourceVersion we
    /// saw: only then do its devices move.
    async fn claim_expired(&mut self, now: Instant) {
        for (member, version) in self.membership.claimable(now) {
            let name = lease_name(&member);
            let duration = self.r.settings.timings.lease_duration;
            let claim = replica_lease(&member, "", duration, version, &BTreeSet::new());
            match self
                .leases
                .replace(&name, &PostParams::default(), &claim)
                .await
            {
                Ok(written) => {
                    info!(replica = %member, "claimed the expired Lease of a gateway replica: its devices move");
                    if let Some(seen) = lease_seen(&written) {
                        self.membership.sighting(seen, Instant::now());
                    }
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    // deleted: nobody can renew it on its old version either
                    self.membership.sighting(
                        LeaseSeen {
                            member,
                            holder: None,
                            renew_time: None,
                            duration,
                            resource_version: None,
                            acks: BTreeSet::new(),
                        },
                        Instant::now(),
                    );
                }
                // renewed meanwhile (409) or unreachable: the next list tells
                Err(e) => {
                    debug!(replica = %member, error = %e, "claim of an expired replica Lease not made")
                }
            }
        }
    }

    /// Assigns again and carries out the hand-overs.
    fn decide(&mut self, now: Instant) {
        let live = self.membership.live(now);
        let may_own = self.membership.may_own(now);
        let handover =
            self.assignment
                .reassign(self.membership.me(), &self.membership.holding(), may_own);
        // the gate first: writes about lost devices stop before anything else happens
        self.r
            .gate
            .publish(self.membership.fence_deadline(), self.assignment.owned());
        // we let go of what the replicas holding now win: the next renewal says so
        self.acks = self.membership.holding_holders();
        let m = &self.r.metrics.shard;
        m.owned_devices.set(self.assignment.owned().len() as i64);
        m.known_devices.set(self.assignment.known() as i64);
        m.may_write.set(i64::from(self.membership.may_write(now)));
        m.set_members(&live);
        if !handover.is_empty() {
            info!(
                gained = handover.gained.len(),
                lost = handover.lost.len(),
                owned = self.assignment.owned().len(),
                live = ?live,
                "gateway replica's devices changed"
            );
            m.handover(handover.gained.len(), handover.lost.len());
            self.carry_out(handover);
        }
    }

    fn carry_out(&self, handover: Handover) {
        let Handover { gained, lost } = handover;
        for d in &lost {
            self.r.fleet.on_handover(d, false);
        }
        let unsubscribe: Vec<String> = lost.iter().flat_map(device_filters).collect();
        let subscribe: Vec<SubscribeFilter> = gained
            .iter()
            .flat_map(device_filters)
            .map(|f| SubscribeFilter::new(f, QoS::AtLeastOnce))
            .collect();
        let mqtt = self.r.mqtt.clone();
        let fleet = self.r.fleet.clone();
        // from another task: the MQTT request channel is drained by the event loop
        tokio::spawn(async move {
            for chunk in unsubscribe.chunks(64) {
                for f in chunk {
                    if let Err(e) = mqtt.unsubscribe(f.clone()).await {
                        warn!(error = %e, "cannot unsubscribe a handed-over device's topics");
                    }
                }
            }
            for chunk in subscribe.chunks(64) {
                if let Err(e) = mqtt.subscribe_many(chunk.to_vec()).await {
                    warn!(error = %e, "cannot subscribe to a device's topics");
                }
            }
            // after subscribing: the device's answer must find us listening
            for d in &gained {
                fleet.on_handover(d, true);
            }
        });
    }

    /// Stops writing, forgets every device, releases the Lease.
    async fn shut_down(&mut self) {
        self.membership.released();
        self.decide(Instant::now());
        let name = lease_name(&self.r.settings.replica);
        let Some(version) = self.own_version.take() else {
            return;
        };
        let release = replica_lease(
            &self.r.settings.replica,
            "",
            self.r.settings.timings.lease_duration,
            Some(version),
            &BTreeSet::new(),
        );
        match tokio::time::timeout(
            Duration::from_secs(2),
            self.leases.replace(&name, &PostParams::default(), &release),
        )
        .await
        {
            Ok(Ok(_)) => info!(lease = %name, "released this replica's Lease"),
            _ => {
                warn!(lease = %name, "could not release this replica's Lease; the others wait for it to expire")
            }
        }
    }
}

#[cfg(test)]
mod tests;
