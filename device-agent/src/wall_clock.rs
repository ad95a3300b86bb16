//! Wall-clock time as the protocol carries it (Unix milliseconds).

use std::time::{SystemTime, UNIX_EPOCH};

use edge_protocol::UnixMillis;

pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
