//! systemd readiness and watchdog (`Type=notify`, `WatchdogSec=`): no-ops when the agent
//! is not started by systemd (no `NOTIFY_SOCKET`).

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the agent is up.
pub fn ready(status: &str) {
    if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::debug!(error = %e, "sd_notify READY failed");
    }
}

pub fn status(status: &str) {
    let _ = sd_notify::notify(false, &[NotifyState::Status(status)]);
}

pub fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// Pets the watchdog.
pub fn watchdog() {
    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
}

/// How often to pet the watchdog (half its timeout), if systemd set one: like
/// `sd_watchdog_enabled(3)`, `WATCHDOG_USEC` counts when `WATCHDOG_PID` is absent or ours.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}
