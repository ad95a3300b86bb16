//! The kubelet's restart back-off: the first restart is immediate, then 10 s, 20 s, 40 s
//! ... up to 5 min; a container that ran for 10 min starts over. Times are Unix millis
//! so the reconciler stays pure.

use std::time::Duration;

use edge_protocol::UnixMillis;

use crate::config::LifecycleTimings;

/// Back-off of one container (or one image pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backoff {
    /// Current delay; zero until the first failure.
    delay_ms: u64,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Backoff {
    /// Rebuilds the back-off of a container that already restarted `restarts` times
    /// (after an agent restart the in-memory delay is gone).
    pub fn from_restarts(restarts: u32, timings: &LifecycleTimings) -> Self {
        if restarts == 0 {
            return Self::default();
        }
        let mut b = Self::default();
        for _ in 0..restarts.min(32) {
            b.advance(timings);
        }
        b
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms)
    }

    /// When a failure at `failed_at` may be retried.
    pub fn retry_at(&self, failed_at: UnixMillis) -> UnixMillis {
        failed_at.saturating_add(self.delay_ms)
    }

    /// Whether a failure at `failed_at` is still being backed off at `now`.
    pub fn in_backoff(&self, failed_at: UnixMillis, now: UnixMillis) -> bool {
        now < self.retry_at(failed_at)
    }

    /// Records a retry: the next failure waits twice as long (capped).
    pub fn advance(&mut self, timings: &LifecycleTimings) {
        let initial = ms(timings.backoff_initial);
        let max = ms(timings.backoff_max);
        self.delay_ms = if self.delay_ms == 0 {
            initial
        } else {
            self.delay_ms.saturating_mul(2).min(max)
        };
    }

    pub fn reset(&mut self) {
        self.delay_ms = 0;
    }

    /// A container that ran at least `backoff_reset` starts over.
    pub fn reset_if_ran_long(
        &mut self,
        started: Option<UnixMillis>,
        finished: Option<UnixMillis>,
        timings: &LifecycleTimings,
    ) {
        if let (Some(s), Some(f)) = (started, finished)
            && f.saturating_sub(s) >= ms(timings.backoff_reset)
        {
            self.reset();
        }
    }
}

#[cfg(test)]
mod tests;
