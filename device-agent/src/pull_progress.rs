//! Bytes of an image pull, pure: the Engine API's `/images/create` stream reports each
//! layer on its own (`{"id": layer, "status": "Downloading", "progressDetail": {"current",
//! "total"}}`); [`PullTally`] sums them into one [`PullProgress`] for the whole image.
//!
//! Only download progress counts (extraction reports its own `current`/`total`, which
//! are not bytes fetched over the link). A layer counts from its first `Downloading`
//! line (its size is unknown before, so `bytes_total` grows while layers start); a layer
//! done downloading counts in full; a layer the runtime already had (`Already exists`)
//! does not count. A runtime that sends no `progressDetail` (Podman's compat API sends
//! only status lines) leaves both sums at 0: "the runtime does not tell".

use std::collections::BTreeMap;

/// Bytes downloaded so far and in all, summed over the layers the runtime reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PullProgress {
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// The layers of one pull and how far each is.
#[derive(Debug, Clone, Default)]
pub struct PullTally {
    /// Layer id → (current, total).
    layers: BTreeMap<String, (u64, u64)>,
}

impl PullTally {
    /// Takes one line of the stream; returns the new sums when they changed.
    pub fn observe(
        &mut self,
        layer: Option<&str>,
        status: Option<&str>,
        current: Option<i64>,
        total: Option<i64>,
    ) -> Option<PullProgress> {
        let (layer, status) = (layer?, status?);
        let before = self.progress();
        let bytes = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        match status {
            "Downloading" => {
                let total = bytes(total).filter(|t| *t > 0)?;
                let current = bytes(current).unwrap_or(0).min(total);
                self.layers.insert(layer.to_owned(), (current, total));
            }
            "Download complete" | "Verifying Checksum" | "Extracting" | "Pull complete" => {
                if let Some(entry) = self.layers.get_mut(layer) {
                    entry.0 = entry.1;
                }
            }
            _ => {}
        }
        let after = self.progress();
        (after != before).then_some(after)
    }

    /// The sums now.
    pub fn progress(&self) -> PullProgress {
        self.layers
            .values()
            .fold(PullProgress::default(), |acc, (current, total)| {
                PullProgress {
                    bytes_done: acc.bytes_done.saturating_add(*current),
                    bytes_total: acc.bytes_total.saturating_add(*total),
                }
            })
    }
}

#[cfg(test)]
mod tests;
