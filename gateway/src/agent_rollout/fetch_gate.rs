//! Which chunk fetches of a device the gateway answers (pure): only for the version the
//! rollout names, only from a device whose update of it is fetching (ordered or
//! downloading: maxUnavailable bounds how many download), and at most
//! [`FETCHES_PER_SECOND`] per device, so a hostile or looping
//! device cannot turn the gateway into a downlink amplifier (a fetch of a few bytes asks
//! for a quarter MiB). A device waiting for a chunk that was not sent asks again after
//! its own timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use edge_protocol::{AgentUpdateFetch, DeviceId};

/// Chunk fetches answered per device and second (8 MiB/s with 256 KiB chunks: more than
/// a device's link, and the rollout's maxUnavailable bounds how many devices download).
pub const FETCHES_PER_SECOND: u32 = 32;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchVerdict {
    /// Read the chunk and send it.
    Serve,
    /// Answer with an error chunk saying this.
    Refuse(String),
    /// Over the rate: drop without an answer.
    Drop,
}

#[derive(Debug, Default)]
pub struct FetchGate {
    windows: HashMap<DeviceId, (Instant, u32)>,
}

impl FetchGate {
    pub fn check(
        &mut self,
        device: &DeviceId,
        fetch: &AgentUpdateFetch,
        rollout_version: Option<&str>,
        fetching: bool,
        now: Instant,
    ) -> FetchVerdict {
        let entry = self.windows.entry(device.clone()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= FETCHES_PER_SECOND {
            return FetchVerdict::Drop;
        }
        entry.1 += 1;
        match rollout_version {
            Some(v) if v == fetch.version && !fetching => FetchVerdict::Refuse(format!(
                "this device was not ordered to fetch version {v} (or its update of it is over)"
            )),
            Some(v) if v == fetch.version => FetchVerdict::Serve,
            Some(v) => FetchVerdict::Refuse(format!(
                "version {} is not being rolled out (the rollout's version is {v})",
                fetch.version
            )),
            None => FetchVerdict::Refuse(format!(
                "no agent rollout is declared; version {} is not served",
                fetch.version
            )),
        }
    }

    /// Forgets devices not heard from for a while (bounded memory).
    pub fn prune(&mut self, now: Instant) {
        self.windows
            .retain(|_, (start, _)| now.duration_since(*start) < WINDOW * 60);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(version: &str) -> AgentUpdateFetch {
        AgentUpdateFetch {
            version: version.into(),
            offset: 0,
            length: 1,
        }
    }

    #[test]
    fn only_the_rollouts_version_is_served_and_at_a_bounded_rate() {
        let mut gate = FetchGate::default();
        let d = DeviceId::new("pi-01").unwrap();
        let other = DeviceId::new("pi-02").unwrap();
        let t0 = Instant::now();
        assert!(matches!(
            gate.check(&d, &fetch("1.0"), Some("2.0"), true, t0),
            FetchVerdict::Refuse(why) if why.contains("2.0")
        ));
        assert!(matches!(
            gate.check(&d, &fetch("2.0"), None, true, t0),
            FetchVerdict::Refuse(_)
        ));
        assert!(matches!(
            gate.check(&d, &fetch("2.0"), Some("2.0"), false, t0),
            FetchVerdict::Refuse(why) if why.contains("not ordered")
        ));
        for _ in 3..FETCHES_PER_SECOND {
            assert_eq!(
                gate.check(&d, &fetch("2.0"), Some("2.0"), true, t0),
                FetchVerdict::Serve
            );
        }
        assert_eq!(
            gate.check(&d, &fetch("2.0"), Some("2.0"), true, t0),
            FetchVerdict::Drop
        );
        assert_eq!(
            gate.check(&other, &fetch("2.0"), Some("2.0"), true, t0),
            FetchVerdict::Serve,
            "per device"
        );
        let later = t0 + WINDOW;
        assert_eq!(
            gate.check(&d, &fetch("2.0"), Some("2.0"), true, later),
            FetchVerdict::Serve
        );
        gate.prune(t0 + WINDOW * 61);
        assert!(gate.windows.is_empty());
    }
}
