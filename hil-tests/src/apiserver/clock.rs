//! Timestamps in the formats Kubernetes uses (`Time` to the second, `MicroTime`).

use std::time::Duration;

/// Now as a Kubernetes `Time` (RFC 3339, seconds, UTC).
pub fn now() -> String {
    format_time(jiff::Timestamp::now())
}

/// A timestamp `d` from now as a Kubernetes `Time`.
pub fn after(d: Duration) -> String {
    let ts = jiff::Timestamp::now();
    let later = jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|sd| ts.checked_add(sd).ok())
        .unwrap_or(ts);
    format_time(later)
}

/// Formats as `Time`.
pub fn format_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Now as a Kubernetes `MicroTime`.
pub fn now_micro() -> String {
    let ts = jiff::Timestamp::now();
    format!(
        "{}.{:06}Z",
        ts.strftime("%Y-%m-%dT%H:%M:%S"),
        ts.subsec_microsecond()
    )
}

/// The name of a new Event about `involved`: `<name>.<UnixNano in hex>`, as client-go's
/// event recorders name them (so events list in the order they were recorded). Strictly
/// increasing within the process, so two events in the same nanosecond do not collide.
pub fn event_name(involved: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(jiff::Timestamp::now().as_nanosecond()).unwrap_or(0);
    let prev = LAST.fetch_max(now, Ordering::Relaxed);
    let nanos = if now > prev {
        now
    } else {
        LAST.fetch_add(1, Ordering::Relaxed) + 1
    };
    format!("{involved}.{nanos:x}")
}

/// Parses a `Time` or `MicroTime`.
pub fn parse(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// Seconds elapsed since a timestamp string (negative if in the future).
pub fn age_seconds(s: &str) -> Option<i64> {
    let t = parse(s)?;
    Some(jiff::Timestamp::now().as_second() - t.as_second())
}

/// kube's `duration.HumanDuration` (used in AGE columns): `5s`, `3m2s`, `2d3h`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 * 2 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let r = s % 60;
        return if r == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{r}s")
        };
    }
    if m < 60 * 3 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        let r = m % 60;
        return if r == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{r}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let d = h / 24;
        let r = h % 24;
        return if r == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{r}h")
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    if h < 24 * 365 * 8 {
        let y = h / 24 / 365;
        let dy = (h / 24) % 365;
        return if dy == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{dy}d")
        };
    }
    format!("{}y", h / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(now().ends_with('Z') && now().len() == 20);
        assert_eq!(now_micro().len(), 27);
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(182), "3m2s");
        assert_eq!(human_duration(3600 * 50), "2d2h");
    }
}
