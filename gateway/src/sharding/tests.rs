//! The pure parts together, on a simulated clock: replicas renewing their Leases on a
//! shared "API server", some cut off or killed, checked at every step that no device
//! has two writers, that a device changing writer is left alone for at least a renew
//! interval (writes under way land first), and that the survivors take over in time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use edge_protocol::DeviceId;

use super::assignment::Assignment;
use super::lease_name;
use super::membership::{LeaseSeen, LeaseTimings, Membership};

const STEP: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Up,
    /// Cannot reach the API server (renewals and lists fail), keeps running.
    CutOff,
    /// SIGKILL: nothing any more.
    Dead,
}

struct Replica {
    membership: Membership,
    assignment: Assignment,
    next_cycle: Instant,
    fate: Fate,
    /// The resourceVersion of its Lease as it last wrote it.
    own_version: Option<String>,
    holder: String,
    rejoins: u32,
    /// What its next renewal acknowledges.
    acks: BTreeSet<String>,
    /// False: an older build that writes no acknowledgements.
    writes_acks: bool,
}

struct World {
    t0: Instant,
    now: Instant,
    api: BTreeMap<String, LeaseSeen>,
    renewals: u64,
    replicas: BTreeMap<String, Replica>,
    devices: Vec<DeviceId>,
    /// Each device's last writer and the last step it was written.
    last_write: BTreeMap<DeviceId, (String, Instant)>,
    /// Devices that got a writer after having none: when, and how long they had none.
    unwritten: Vec<(Instant, Duration)>,
}

impl World {
    fn new(names: &[&str], devices: usize) -> Self {
        let t0 = Instant::now();
        let devices: Vec<DeviceId> = (0..devices)
            .map(|i| DeviceId::new(format!("shard-{i}")).expect("id"))
            .collect();
        let mut w = World {
            t0,
            now: t0,
            api: BTreeMap::new(),
            renewals: 0,
            replicas: BTreeMap::new(),
            devices,
            last_write: BTreeMap::new(),
            unwritten: Vec::new(),
        };
        for (i, n) in names.iter().enumerate() {
            // replicas start a little apart, as pods do
            w.add(n, t0 + STEP * (i as u32 * 3));
        }
        w
    }

    fn add(&mut self, name: &str, first_cycle: Instant) {
        let mut assignment = Assignment::default();
        for d in &self.devices {
            assignment.learn(d.clone());
        }
        let holder = format!("{name}_1");
        let mut membership = Membership::new(name, LeaseTimings::DEFAULT);
        membership.set_holder(holder.clone());
        self.replicas.insert(
            name.to_owned(),
            Replica {
                membership,
                assignment,
                next_cycle: first_cycle,
                fate: Fate::Up,
                own_version: None,
                holder,
                rejoins: 0,
                acks: BTreeSet::new(),
                writes_acks: true,
            },
        );
    }

    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// One step of 100 ms: every replica due renews (when it can) and decides.
    fn step(&mut self) {
        self.now += STEP;
        let now = self.now;
        let names: Vec<String> = self.replicas.keys().cloned().collect();
        for name in names {
            let fate = self.replicas[&name].fate;
            if fate == Fate::Dead || self.replicas[&name].next_cycle > now {
                continue;
            }
            let mut renewed = false;
            if fate == Fate::Up {
                // a renewal on the version it last wrote (read first when it has none)
                let key = lease_name(&name);
                let current = self.api.get(&key).and_then(|l| l.resource_version.clone());
                let r = self.replicas.get_mut(&name).expect("replica");
                let expected = r.own_version.clone().or(current.clone());
                if expected == current {
                    self.renewals += 1;
                    let v = Some(self.renewals.to_string());
                    self.api.insert(
                        key,
                        LeaseSeen {
                            member: name.clone(),
                            holder: Some(r.holder.clone()),
                            renew_time: v.clone(),
                            duration: LeaseTimings::DEFAULT.lease_duration,
                            resource_version: v.clone(),
                            acks: if r.writes_acks {
                                r.acks.clone()
                            } else {
                                BTreeSet::new()
                            },
                        },
                    );
                    r.own_version = v;
                    renewed = true;
                } else {
                    // claimed by another replica: rejoins under a new holder identity
                    r.own_version = None;
                    r.membership.released();
                    r.rejoins += 1;
                    r.holder = format!("{name}_1.{}", r.rejoins);
                    r.membership.set_holder(r.holder.clone());
                }
            }
            let listed: Vec<LeaseSeen> = self.api.values().cloned().collect();
            let r = self.replicas.get_mut(&name).expect("replica");
            if fate == Fate::Up {
                r.membership.observe(listed, now);
                if renewed {
                    r.membership.renewed(now, now);
                }
                if r.membership.may_write(now) {
                    for (member, version) in r.membership.claimable(now) {
                        let key = lease_name(&member);
                        let Some(lease) = self.api.get_mut(&key) else {
                            continue;
                        };
                        if lease.resource_version == version {
                            self.renewals += 1;
                            lease.holder = None;
                            lease.acks.clear();
                            lease.renew_time = Some(self.renewals.to_string());
                            lease.resource_version = Some(self.renewals.to_string());
                            r.membership.sighting(lease.clone(), now);
                        }
                    }
                }
            }
            let holding = r.membership.holding();
            let may_own = r.membership.may_own(now);
            r.assignment.reassign(&name, &holding, may_own);
            r.acks = r.membership.holding_holders();
            r.next_cycle = now + LeaseTimings::DEFAULT.renew_interval;
        }
    }

    /// Who may write each device now (a dead replica writes nothing).
    fn writers(&self) -> BTreeMap<&DeviceId, Vec<&str>> {
        let mut w: BTreeMap<&DeviceId, Vec<&str>> = BTreeMap::new();
        for (name, r) in &self.replicas {
            if r.fate == Fate::Dead || !r.membership.may_write(self.now) {
                continue;
            }
            for d in r.assignment.owned() {
                w.entry(d).or_default().push(name);
            }
        }
        w
    }

    fn assert_single_writers(&self) {
        for (d, names) in self.writers() {
            assert!(
                names.len() <= 1,
                "{d} has writers {names:?} at {:?}",
                self.now - self.t0
            );
        }
    }

    /// Records who writes each device now; a device changing writer must have been left
    /// alone for a renew interval.
    fn track_writes(&mut self) {
        let now = self.now;
        let writers: Vec<(DeviceId, String)> = self
            .writers()
            .into_iter()
            .filter_map(|(d, w)| Some((d.clone(), (*w.first()?).to_owned())))
            .collect();
        for (d, w) in writers {
            if let Some((before, at)) = self.last_write.get(&d).cloned() {
                let idle = now - at;
                if idle > STEP {
                    self.unwritten.push((now, idle - STEP));
                }
                assert!(
                    before == w || idle > LeaseTimings::DEFAULT.renew_interval,
                    "{d} went from {before} to {w} after {idle:?} at {:?}",
                    now - self.t0
                );
            }
            self.last_write.insert(d, (w, now));
        }
    }

    fn run_until(&mut self, secs: f64) {
        let end = self.at(secs);
        while self.now < end {
            self.step();
            self.assert_single_writers();
            self.track_writes();
        }
    }

    /// The longest time without writer of a device that got one again after `since`, or
    /// still has none.
    fn longest_unwritten(&self, since: Instant) -> Duration {
        let done = self
            .unwritten
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, idle)| *idle);
        let open = self
            .last_write
            .values()
            .filter(|(_, at)| *at < self.now)
            .map(|(_, at)| self.now - *at);
        done.chain(open).max().unwrap_or_default()
    }

    fn owned_by(&self, name: &str) -> BTreeSet<DeviceId> {
        self.replicas[name].assignment.owned().clone()
    }

    fn unowned(&self) -> usize {
        let w = self.writers();
        self.devices.iter().filter(|d| !w.contains_key(d)).count()
    }
}

#[test]
fn three_replicas_share_every_device_once_they_acknowledged_each_other() {
    let mut w = World::new(&["r0", "r1", "r2"], 300);
    // nobody owns alone: the first to start waits for the others to acknowledge it
    w.run_until(1.0);
    assert_eq!(w.unowned(), 300);
    w.run_until(3.0);
    assert_eq!(w.unowned(), 300);
    w.run_until(8.0);
    assert_eq!(w.unowned(), 0, "well before the 15 s warm-up");
    for r in ["r0", "r1", "r2"] {
        let n = w.owned_by(r).len();
        assert!((60..=140).contains(&n), "{r} owns {n}");
    }
}

#[test]
fn a_killed_replicas_devices_are_taken_within_a_lease_duration_and_a_renewal() {
    let mut w = World::new(&["r0", "r1", "r2"], 300);
    w.run_until(30.0);
    let r1 = w.owned_by("r1");
    let r0 = w.owned_by("r0");
    w.replicas.get_mut("r1").expect("r1").fate = Fate::Dead;
    // lease duration 15 s + one renew interval (2 s) + the step
    w.run_until(30.0 + 15.0 + 2.0 + 0.2);
    assert_eq!(w.unowned(), 0, "the dead replica's devices were taken");
    // the survivors kept their own and split r1's
    assert!(w.owned_by("r0").is_superset(&r0));
    let taken: BTreeSet<DeviceId> = w
        .owned_by("r0")
        .union(&w.owned_by("r2"))
        .filter(|d| r1.contains(*d))
        .cloned()
        .collect();
    assert_eq!(taken, r1);
}

#[test]
fn a_replica_cut_off_from_the_api_server_stops_writing_before_another_takes_over() {
    let mut w = World::new(&["r0", "r1", "r2"], 300);
    w.run_until(30.0);
    let r1 = w.owned_by("r1");
    assert!(!r1.is_empty());
    w.replicas.get_mut("r1").expect("r1").fate = Fate::CutOff;
    // every step checks that no device has two writers
    w.run_until(50.0);
    assert!(!w.replicas["r1"].membership.may_write(w.now), "fenced");
    assert_eq!(w.unowned(), 0, "its devices went to the others");
    // back: it rejoins and takes its share again without overlap, once the others
    // acknowledged its new holder identity (not after a whole warm-up)
    w.replicas.get_mut("r1").expect("r1").fate = Fate::Up;
    let back = w.now;
    w.run_until(58.0);
    assert_eq!(w.owned_by("r1"), r1);
    assert_eq!(w.unowned(), 0);
    // handed back within two renew intervals and a step: no NotReady Node for it
    let gap = w.longest_unwritten(back);
    assert!(gap <= Duration::from_millis(4_100), "{gap:?}");
}

#[test]
fn without_acknowledgements_a_rejoining_replica_waits_a_lease_duration() {
    let mut w = World::new(&["r0", "r1", "r2"], 300);
    w.run_until(30.0);
    let r1 = w.owned_by("r1");
    // r0 is an older build that writes no acknowledgements
    w.replicas.get_mut("r0").expect("r0").writes_acks = false;
    w.replicas.get_mut("r1").expect("r1").fate = Fate::CutOff;
    w.run_until(50.0);
    w.replicas.get_mut("r1").expect("r1").fate = Fate::Up;
    let mut owned_at = None;
    while w.now < w.at(80.0) {
        w.step();
        w.assert_single_writers();
        if owned_at.is_none() && w.owned_by("r1") == r1 {
            owned_at = Some(w.now);
        }
    }
    let took = owned_at.expect("r1 took its share back") - w.at(50.0);
    assert!(took >= Duration::from_secs(15), "{took:?}");
}

#[test]
fn a_dead_replicas_devices_stay_with_the_survivors_long_after() {
    let mut w = World::new(&["r0", "r1", "r2"], 300);
    w.run_until(30.0);
    w.replicas.get_mut("r1").expect("r1").fate = Fate::Dead;
    w.run_until(50.0);
    let (r0, r2) = (w.owned_by("r0"), w.owned_by("r2"));
    // minutes later its Lease (still listed, emptied by the claim) moves nothing back
    w.run_until(200.0);
    assert_eq!(w.owned_by("r0"), r0);
    assert_eq!(w.owned_by("r2"), r2);
    assert_eq!(w.unowned(), 0);
}

#[test]
fn a_replica_whose_lease_was_claimed_stops_and_rejoins() {
    let mut w = World::new(&["r0", "r1"], 100);
    w.run_until(30.0);
    let r1 = w.owned_by("r1");
    w.replicas.get_mut("r1").expect("r1").fate = Fate::CutOff;
    // r0 claims r1's Lease after it expired
    w.run_until(50.0);
    let lease = &w.api[&lease_name("r1")];
    assert_eq!(lease.holder, None, "claimed");
    w.replicas.get_mut("r1").expect("r1").fate = Fate::Up;
    w.run_until(80.0);
    assert_eq!(w.owned_by("r1"), r1, "back after a warm-up");
    assert_eq!(w.unowned(), 0);
}

#[test]
fn a_short_outage_within_the_renew_deadline_changes_nothing() {
    let mut w = World::new(&["r0", "r1"], 100);
    w.run_until(30.0);
    let r1 = w.owned_by("r1");
    w.replicas.get_mut("r1").expect("r1").fate = Fate::CutOff;
    w.run_until(36.0);
    w.replicas.get_mut("r1").expect("r1").fate = Fate::Up;
    w.run_until(60.0);
    assert_eq!(w.owned_by("r1"), r1);
}

#[test]
fn a_joining_replica_takes_its_share_without_overlap() {
    let mut w = World::new(&["r0", "r1"], 300);
    w.run_until(30.0);
    let at = w.now + STEP;
    w.add("r2", at);
    w.run_until(60.0);
    let n = w.owned_by("r2").len();
    assert!(n > 50, "r2 owns {n}");
    assert_eq!(w.unowned(), 0);
}
