//! Hostile or broken input from devices: counted always, logged once per device (or
//! topic) per rate-limit window, then dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Decides which rejections get a log line.
#[derive(Debug)]
pub struct RejectionLog {
    window: Duration,
    last_logged: HashMap<String, Instant>,
}

impl RejectionLog {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last_logged: HashMap::new(),
        }
    }

    /// Whether a rejection from `source` at `now` should be logged (the first one per
    /// window). Keeps memory bounded by forgetting sources whose window passed.
    pub fn should_log(&mut self, source: &str, now: Instant) -> bool {
        if self.last_logged.len() > 10_000 {
            let window = self.window;
            self.last_logged
                .retain(|_, t| now.saturating_duration_since(*t) < window);
        }
        match self.last_logged.get(source) {
            Some(t) if now.saturating_duration_since(*t) < self.window => false,
            _ => {
                let key = source.chars().take(300).collect();
                self.last_logged.insert(key, now);
                true
            }
        }
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
}
