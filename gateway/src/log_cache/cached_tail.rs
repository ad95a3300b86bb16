//! One container's cached tail: reports appended, bounded to the newest bytes at a
//! line start (pure).

use edge_protocol::{Base64Bytes, ContainerLogTail, UnixMillis, cut_to_line_start};
use serde::{Deserialize, Serialize};

/// The newest output of a container the gateway holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CachedTail {
    /// Contiguous output, oldest first.
    pub data: Base64Bytes,
    /// Time of the last line (Unix milliseconds).
    pub until: UnixMillis,
    /// Older output was written than `data` holds.
    pub truncated: bool,
}

impl CachedTail {
    /// Appends a report; returns whether the tail changed. A report older than the tail
    /// (overtaken in transit) is ignored; one as old is not (runtimes that stamp lines
    /// to the second report several with one time). One that was cut by the device
    /// (older new output was left out) replaces the tail, so the tail never holds a gap.
    pub fn append(&mut self, report: &ContainerLogTail, limit: usize) -> bool {
        if report.data.0.is_empty() || report.until < self.until {
            return false;
        }
        if report.truncated {
            self.data.0.clear();
            self.truncated = true;
        }
        self.data.0.extend_from_slice(&report.data.0);
        self.until = report.until;
        self.bound(limit);
        true
    }

    /// Drops the oldest bytes beyond `limit`, at a line start.
    pub fn bound(&mut self, limit: usize) {
        let (kept, cut) = cut_to_line_start(&self.data.0, limit);
        if cut {
            self.data.0 = kept.to_vec();
            self.truncated = true;
        }
    }
}
