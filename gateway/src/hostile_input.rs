//! Hostile or broken input from devices: counted always, logged once per device (or
//! topic) per rate-limit window, then dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Sources remembered at most.
pub const MAX_SOURCES: usize = 10_000;
/// Characters of a source (a device id, or a topic that named none) used as its key.
pub const MAX_SOURCE_CHARS: usize = 128;

/// Decides which rejections get a log line.
#[derive(Debug)]
pub struct RejectionLog {
    window: Duration,
    last_logged: HashMap<String, Instant>,
    next_prune: Option<Instant>,
}

impl RejectionLog {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last_logged: HashMap::new(),
            next_prune: None,
        }
    }

    /// Whether a rejection from `source` at `now` should be logged (the first one per
    /// window). Memory is bounded: sources whose window passed are forgotten, at most
    /// [`MAX_SOURCES`] are remembered (beyond that, new sources are counted, not logged,
    /// until the window frees room), and a source is keyed by its first
    /// [`MAX_SOURCE_CHARS`] characters.
    pub fn should_log(&mut self, source: &str, now: Instant) -> bool {
        let key: String = source.chars().take(MAX_SOURCE_CHARS).collect();
        if let Some(t) = self.last_logged.get(&key) {
            if now.saturating_duration_since(*t) < self.window {
                return false;
            }
        }
        if self.last_logged.len() >= MAX_SOURCES && !self.last_logged.contains_key(&key) {
            // prune at most a few times per window: a flood must not make every
            // rejection a scan of the whole map
            if self.next_prune.is_none_or(|t| now >= t) {
                let window = self.window;
                self.last_logged
                    .retain(|_, t| now.saturating_duration_since(*t) < window);
                self.next_prune = Some(now + window / 8);
            }
            if self.last_logged.len() >= MAX_SOURCES {
                return false;
            }
        }
        self.last_logged.insert(key, now);
        true
    }

    pub fn remembered(&self) -> usize {
        self.last_logged.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_source_and_window() {
        let mut log = RejectionLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(log.should_log("pi-01", t0));
        assert!(!log.should_log("pi-01", t0 + Duration::from_secs(1)));
        assert!(log.should_log("pi-02", t0 + Duration::from_secs(1)));
        assert!(log.should_log("pi-01", t0 + Duration::from_secs(61)));
    }

    #[test]
    fn a_flood_of_invented_sources_stays_bounded() {
        let mut log = RejectionLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let long = "x".repeat(10_000);
        for i in 0..50_000 {
            log.should_log(&format!("edge/v1/dev-{i}/{long}"), t0);
        }
        assert!(log.remembered() <= MAX_SOURCES);
        // known sources keep their rate limit; room frees up after the window
        assert!(!log.should_log("edge/v1/dev-1/x", t0));
        assert!(log.should_log("pi-01", t0 + Duration::from_secs(61)));
    }
}
