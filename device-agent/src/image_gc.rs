//! Image garbage collection, pure: which images were last used when (the runtime does
//! not say, so the agent remembers it from container listings, as the kubelet's image
//! manager does), and which unused images to remove when the image filesystem is fuller
//! than the high threshold, oldest-used first, until it is below the low threshold.
//! Images of the current image pre-pull set ([`ImageTracker::pin`], by the image ids
//! the runtime gave for the set's references) are never removed; once a set without
//! them arrives they are ordinary images again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use edge_protocol::{MAX_NODE_IMAGES, NodeImage, UnixMillis};

/// The kubelet's `imageGCHighThresholdPercent` / `imageGCLowThresholdPercent` and
/// `imageMinimumGCAge`.
pub const DEFAULT_HIGH_THRESHOLD_PERCENT: u8 = 85;
pub const DEFAULT_LOW_THRESHOLD_PERCENT: u8 = 80;
pub const DEFAULT_MINIMUM_AGE: Duration = Duration::from_secs(120);

/// An image as the runtime lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedImage {
    pub id: String,
    pub names: Vec<String>,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    image: ListedImage,
    first_detected: UnixMillis,
    last_used: UnixMillis,
}

/// When to collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    pub high_percent: u8,
    pub low_percent: u8,
    /// Images first seen more recently than this are never removed.
    pub minimum_age: Duration,
}

impl Default for GcPolicy {
    fn default() -> Self {
        Self {
            high_percent: DEFAULT_HIGH_THRESHOLD_PERCENT,
            low_percent: DEFAULT_LOW_THRESHOLD_PERCENT,
            minimum_age: DEFAULT_MINIMUM_AGE,
        }
    }
}

/// What to remove and how much that should free.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcPlan {
    /// Image ids, in removal order.
    pub remove: Vec<String>,
    pub bytes_to_free: u64,
    pub bytes_planned: u64,
}

/// The images on the device and when each was last used by a container.
#[derive(Debug, Clone, Default)]
pub struct ImageTracker {
    images: BTreeMap<String, Record>,
    in_use: BTreeSet<String>,
    /// Image ids the pre-pull set holds.
    pinned: BTreeSet<String>,
}

impl ImageTracker {
    /// Takes a fresh image list and the image ids every container (running or not, the
    /// agent's or not) uses.
    pub fn observe(&mut self, listed: Vec<ListedImage>, used: BTreeSet<String>, now: UnixMillis) {
        let mut next = BTreeMap::new();
        for image in listed {
            let mut record = self.images.remove(&image.id).unwrap_or(Record {
                first_detected: now,
                last_used: now,
                image: image.clone(),
            });
            record.image = image;
            if used.contains(&record.image.id) {
                record.last_used = now;
            }
            next.insert(record.image.id.clone(), record);
        }
        self.images = next;
        self.in_use = used;
    }

    /// The image ids of the current pre-pull set: never removed (replaces the last ones).
    pub fn pin(&mut self, ids: BTreeSet<String>) {
        self.pinned = ids;
    }

    /// Images listed while the containers could not be: the images in use stay those of
    /// the last listing.
    pub fn observe_images_only(&mut self, listed: Vec<ListedImage>, now: UnixMillis) {
        let used = std::mem::take(&mut self.in_use);
        self.observe(listed, used, now);
    }

    /// The images for the node report, largest first, at most [`MAX_NODE_IMAGES`].
    pub fn node_images(&self) -> Vec<NodeImage> {
        let mut v: Vec<NodeImage> = self
            .images
            .values()
            .map(|r| NodeImage {
                names: if r.image.names.is_empty() {
                    vec![r.image.id.clone()]
                } else {
                    r.image.names.clone()
                },
                size_bytes: r.image.size_bytes,
            })
            .collect();
        v.sort_by(|a, b| b.size_bytes.cmp(&a.size_bytes).then(a.names.cmp(&b.names)));
        v.truncate(MAX_NODE_IMAGES);
        v
    }

    /// What to remove from an image filesystem of `capacity` bytes with `available`
    /// free: nothing below the high threshold; otherwise unused images older than the
    /// minimum age and not pinned by the pre-pull set, least recently used first, until
    /// the usage would be at the low threshold.
    pub fn plan(&self, capacity: u64, available: u64, policy: GcPolicy, now: UnixMillis) -> GcPlan {
        if capacity == 0 {
            return GcPlan::default();
        }
        let used = capacity.saturating_sub(available);
        if u128::from(used) * 100 < u128::from(capacity) * u128::from(policy.high_percent) {
            return GcPlan::default();
        }
        let target_free = u64::try_from(
            u128::from(capacity) * u128::from(100 - policy.low_percent.min(100)) / 100,
        )
        .unwrap_or(u64::MAX);
        let bytes_to_free = target_free.saturating_sub(available);
        let min_age = u64::try_from(policy.minimum_age.as_millis()).unwrap_or(u64::MAX);
        let mut unused: Vec<&Record> = self
            .images
            .values()
            .filter(|r| !self.in_use.contains(&r.image.id))
            .filter(|r| !self.pinned.contains(&r.image.id))
            .filter(|r| now.saturating_sub(r.first_detected) >= min_age)
            .collect();
        unused.sort_by_key(|r| (r.last_used, r.first_detected, r.image.id.clone()));
        let mut plan = GcPlan {
            bytes_to_free,
            ..GcPlan::default()
        };
        for r in unused {
            if plan.bytes_planned >= bytes_to_free {
                break;
            }
            plan.remove.push(r.image.id.clone());
            plan.bytes_planned = plan.bytes_planned.saturating_add(r.image.size_bytes);
        }
        plan
    }
}

#[cfg(test)]
mod tests;
