//! The pure parts together, on a simulated clock: replicas renewing their Leases on a
//! shared "API server", some cut off or killed, checked at every step that no device
//! has two writers and that the survivors take over in time.

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
}

struct World {
    t0: Instant,
    now: Instant,
    api: BTreeMap<String, LeaseSeen>,
    renewals: u64,
    replicas: BTreeMap<String, Replica>,
    devices: Vec<DeviceId>,
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
        self.replicas.insert(
            name.to_owned(),
            Replica {
                membership: Membership::new(name, LeaseTimings::DEFAULT),
                assignment,
                next_cycle: first_cycle,
                fate: Fate::Up,
                own_version: None,
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
                            holder: Some(format!("{name}_1")),
                            renew_time: v.clone(),
                            duration: LeaseTimings::DEFAULT.lease_duration,
                            resource_version: v.clone(),
                        },
                    );
                    r.own_version = v;
                    renewed = true;
                } else {
                    // claimed by another replica
                    r.own_version = None;
                    r.membership.released();
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

    fn run_until(&mut self, secs: f64) {
        let end = self.at(secs);
        while self.now < end {
            self.step();
            self.assert_single_writers();
        }
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
fn three_replicas_share_every_device_once_warmed_up() {
    let mut w = World::new(&["r0", "r1", "r2"], 300);
    w.run_until(10.0);
    assert_eq!(w.unowned(), 300, "nobody owns anything during the warm-up");
    w.run_until(20.0);
    assert_eq!(w.unowned(), 0);
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
    // back: it rejoins, warms up, and takes its share again without overlap
    w.replicas.get_mut("r1").expect("r1").fate = Fate::Up;
    w.run_until(60.0);
    assert!(w.owned_by("r1").is_empty(), "warming up");
    w.run_until(75.0);
    assert_eq!(w.owned_by("r1"), r1);
    assert_eq!(w.unowned(), 0);
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
