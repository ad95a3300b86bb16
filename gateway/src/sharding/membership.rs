//! Who the live replicas are, and whether this one may write: decided from the replica
//! Leases as listed and from this replica's own renewals, on the local monotonic clock
//! only (pure).
//!
//! As client-go's leader election, a Lease counts from the moment *we* saw its
//! `renewTime` (or holder) change, never from the timestamp in it: clocks of different
//! hosts need not agree, only their rates. A replica is live until `leaseDurationSeconds`
//! after we last saw its Lease change; a Lease without holder was released (its replica
//! stopped writing first) and counts as gone at once; a Lease that vanished still counts
//! until it would have expired.
//!
//! This replica may write (is not *fenced*) until `renew_deadline` after the start of its
//! last cycle that both renewed its Lease and listed the others. Since that start comes
//! before any other replica can see the renewal, every other replica still counts it
//! live then, with `lease_duration - renew_deadline` to spare for writes under way. After
//! being fenced, and when it starts, a replica owns nothing for one lease duration after
//! its renewal was confirmed (*warm-up*): by then every replica that is not fenced itself
//! has listed the Leases since, seen it, and let go of the devices it takes.
//!
//! *Acknowledged hand-over* shortens the warm-up: each replica's Lease names the holder
//! identities it assigned devices over (`acks`), written at the renewal after the
//! decision that let go of their devices. A replica whose current holder identity every
//! other live replica names (at least one) may own at once: its devices are without
//! writer for one or two renew intervals instead of a lease duration. A replica that took its Lease over
//! from an unreleased holder (a previous life that may still be writing until its own
//! renew deadline) waits the whole warm-up, as do replicas whose peers do not write acks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// One replica Lease as listed from the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSeen {
    /// The replica id (the Lease's `edge-kube.io/gateway-replica` label).
    pub member: String,
    /// `spec.holderIdentity`; `None` (or empty): released.
    pub holder: Option<String>,
    /// `spec.renewTime` as written, compared for change only.
    pub renew_time: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
    /// `metadata.resourceVersion`: the precondition of a claim.
    pub resource_version: Option<String>,
    /// The holder identities this replica assigned devices over when it wrote the Lease
    /// (it had let go of their devices by then).
    pub acks: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct Seen {
    holder: Option<String>,
    renew_time: Option<String>,
    duration: Duration,
    resource_version: Option<String>,
    acks: BTreeSet<String>,
    /// When we saw holder or renewTime change (or the Lease first).
    changed_at: Instant,
}

/// The timings of this replica's Lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// `leaseDurationSeconds` written into our Lease.
    pub lease_duration: Duration,
    /// How long after the start of a successful renewal we may write.
    pub renew_deadline: Duration,
    /// How often we renew (and list the others).
    pub renew_interval: Duration,
}

/// Why lease timings are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingsError {
    #[error(
        "the renew deadline ({deadline:?}) must be shorter than the lease duration ({duration:?}): \
         a replica must stop writing before the others may take its devices"
    )]
    DeadlineNotShorter {
        deadline: Duration,
        duration: Duration,
    },
    #[error(
        "the renew interval ({interval:?}) must be at most half the renew deadline ({deadline:?}), \
         so that one failed renewal does not fence the replica"
    )]
    IntervalTooLong {
        interval: Duration,
        deadline: Duration,
    },
    #[error("the lease duration must be whole seconds, at least 1 s (got {0:?})")]
    Duration(Duration),
}

impl LeaseTimings {
    /// The leader-election defaults of kube-controller-manager: 15 s, 10 s, 2 s.
    pub const DEFAULT: Self = Self {
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        renew_interval: Duration::from_secs(2),
    };

    pub fn validated(self) -> Result<Self, TimingsError> {
        if self.lease_duration < Duration::from_secs(1) || self.lease_duration.subsec_nanos() != 0 {
            return Err(TimingsError::Duration(self.lease_duration));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(TimingsError::DeadlineNotShorter {
                deadline: self.renew_deadline,
                duration: self.lease_duration,
            });
        }
        if self.renew_interval.is_zero() || self.renew_interval * 2 > self.renew_deadline {
            return Err(TimingsError::IntervalTooLong {
                interval: self.renew_interval,
                deadline: self.renew_deadline,
            });
        }
        Ok(self)
    }
}

/// The membership as this replica sees it.
#[derive(Debug, Clone)]
pub struct Membership {
    me: String,
    /// Our holder identity as our Lease carries it now.
    holder: String,
    /// Before this instant the others' acknowledgements do not end our warm-up: we took
    /// our Lease over from an unreleased holder.
    acks_trusted_from: Option<Instant>,
    timings: LeaseTimings,
    seen: BTreeMap<String, Seen>,
    /// Writes allowed before this instant (start of the last good cycle + renew deadline).
    fence_until: Option<Instant>,
    /// When our renewal was first confirmed since we started or were last fenced.
    joined_at: Option<Instant>,
}

impl Membership {
    pub fn new(me: impl Into<String>, timings: LeaseTimings) -> Self {
        Self {
            me: me.into(),
            holder: String::new(),
            acks_trusted_from: None,
            timings,
            seen: BTreeMap::new(),
            fence_until: None,
            joined_at: None,
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// The holder identity our Lease carries from now on (a new one at every rejoin, so
    /// that acknowledgements of an earlier life do not count).
    pub fn set_holder(&mut self, holder: impl Into<String>) {
        self.holder = holder.into();
    }

    /// We took our Lease over from a holder that had not released it (at `now`): that
    /// previous life may write until its own renew deadline, so the whole warm-up applies.
    pub fn inherited_unreleased(&mut self, now: Instant) {
        self.acks_trusted_from = Some(now + self.warm_up());
    }

    /// The Leases as just listed (at `now`): all of them (a Lease missing from the list
    /// was deleted).
    pub fn observe(&mut self, leases: impl IntoIterator<Item = LeaseSeen>, now: Instant) {
        let mut listed = BTreeSet::new();
        for lease in leases {
            listed.insert(lease.member.clone());
            self.sighting(lease, now);
        }
        // a deleted Lease is forgotten long after it expired (until then it still holds
        // its replica's devices); a listed one is kept however old
        self.seen.retain(|m, s| {
            listed.contains(m) || now.saturating_duration_since(s.changed_at) < s.duration * 4
        });
    }

    /// One Lease as written or read back (a claim's result), the others unchanged.
    pub fn sighting(&mut self, lease: LeaseSeen, now: Instant) {
        {
            let holder = lease.holder.filter(|h| !h.is_empty());
            match self.seen.get_mut(&lease.member) {
                Some(s) if s.holder == holder && s.renew_time == lease.renew_time => {
                    s.duration = lease.duration;
                    s.resource_version = lease.resource_version;
                    s.acks = lease.acks;
                }
                _ => {
                    self.seen.insert(
                        lease.member,
                        Seen {
                            holder,
                            renew_time: lease.renew_time,
                            duration: lease.duration,
                            resource_version: lease.resource_version,
                            acks: lease.acks,
                            changed_at: now,
                        },
                    );
                }
            }
        }
    }

    /// A cycle that renewed our Lease and listed the others: started at `started`, our
    /// renewal confirmed at `confirmed`.
    pub fn renewed(&mut self, started: Instant, confirmed: Instant) {
        if !self.may_write(confirmed) {
            // starting, or back after being fenced: a new member for everyone else
            self.joined_at = Some(confirmed);
        }
        let until = started + self.timings.renew_deadline;
        if self.fence_until.is_none_or(|t| t < until) {
            self.fence_until = Some(until);
        }
    }

    /// We released our Lease (shutting down), or found it claimed or gone when renewing
    /// (another replica counted it expired and may own our devices): no more writes, and
    /// a warm-up after the next renewal.
    pub fn released(&mut self) {
        self.fence_until = None;
        self.joined_at = None;
    }

    /// Whether this replica may write to Kubernetes now.
    pub fn may_write(&self, now: Instant) -> bool {
        self.fence_until.is_some_and(|t| now < t)
    }

    /// The instant writes stop unless we renew again.
    pub fn fence_deadline(&self) -> Option<Instant> {
        self.fence_until
    }

    /// Whether this replica may own devices now: not fenced, and warmed up (one lease
    /// duration, the longest any replica uses, since it joined) or acknowledged by every
    /// other live replica.
    pub fn may_own(&self, now: Instant) -> bool {
        let Some(joined) = self.joined_at else {
            return false;
        };
        self.may_write(now)
            && (now >= joined + self.warm_up()
                || (self.acks_trusted_from.is_none_or(|t| now >= t) && self.acknowledged(now)))
    }

    /// One lease duration, the longest any replica uses.
    fn warm_up(&self) -> Duration {
        self.seen
            .values()
            .map(|s| s.duration)
            .fold(self.timings.lease_duration, Duration::max)
    }

    /// Whether every other live replica's Lease names our current holder identity, and
    /// there is at least one: alone (the first of a fleet's replicas to start, or the last
    /// one standing) a replica waits its warm-up, so that replicas starting together
    /// see each other before any owns, and no device changes hands twice.
    fn acknowledged(&self, now: Instant) -> bool {
        let others: Vec<&Seen> = self
            .seen
            .iter()
            .filter(|(m, s)| {
                *m != &self.me && s.holder.is_some() && now < s.changed_at + s.duration
            })
            .map(|(_, s)| s)
            .collect();
        !self.holder.is_empty()
            && !others.is_empty()
            && others.iter().all(|s| s.acks.contains(&self.holder))
    }

    /// The holder identities of the other replicas that hold devices: what a decision
    /// made now assigns over, and what our next renewal acknowledges.
    pub fn holding_holders(&self) -> BTreeSet<String> {
        self.seen
            .iter()
            .filter(|(m, _)| *m != &self.me)
            .filter_map(|(_, s)| s.holder.clone())
            .collect()
    }

    /// Replicas that hold devices: every Lease with a holder, expired or not. The devices
    /// of a replica whose Lease expired move only once a claim emptied its holder
    /// ([`Membership::claimable`]).
    pub fn holding(&self) -> BTreeSet<String> {
        self.seen
            .iter()
            .filter(|(_, s)| s.holder.is_some())
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Other replicas whose Lease expired by `now` and still has a holder, with the
    /// resourceVersion we saw: a claim empties the holder on that precondition. If the
    /// replica renewed meanwhile the claim conflicts and nothing moves; if the claim
    /// lands first, the replica's own renewal conflicts and it stops (it had stopped
    /// writing at its renew deadline already).
    pub fn claimable(&self, now: Instant) -> Vec<(String, Option<String>)> {
        self.seen
            .iter()
            .filter(|(m, s)| {
                *m != &self.me && s.holder.is_some() && now >= s.changed_at + s.duration
            })
            .map(|(m, s)| (m.clone(), s.resource_version.clone()))
            .collect()
    }

    /// Replicas whose Lease has a holder and has not expired by `now`.
    pub fn live(&self, now: Instant) -> BTreeSet<String> {
        self.seen
            .iter()
            .filter(|(_, s)| s.holder.is_some() && now < s.changed_at + s.duration)
            .map(|(m, _)| m.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
