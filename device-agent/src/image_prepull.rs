//! Image pre-pull on the device (protocol 1.5, [`edge_protocol::image_prepull`]): the
//! gateway's [`ImagePrepullSet`] on `down/prepull` is desired state. The agent checks it
//! ([`validate`]), keeps it in the local store (it survives restarts and outages) and
//! hands it to the worker, which pulls the images that are missing, one at a time in
//! the set's order, and reports an [`edge_protocol::ImagePrepullStatus`] on
//! `up/prepull`.
//!
//! | file | what is there |
//! |---|---|
//! | `image_prepull.rs` | [`validate`]: the limits a set must keep |
//! | `plan.rs` | [`PrepullPlan`], pure: per-image phases, the next action (inspect or pull), back-off of failed pulls, rechecks, when a status is due, the image ids kept from garbage collection |
//! | `worker.rs` | [`worker::spawn`], the thin async task around the plan: runtime inspects and pulls (with bytes), the periodic image listing, statuses and pinned ids to the agent loop |

mod plan;
pub mod worker;

use edge_protocol::{ImagePrepullSet, MAX_PREPULL_IMAGES};

pub use plan::{Action, MAX_MESSAGE_BYTES, PROGRESS_INTERVAL_MS, PrepullPlan};

/// Longest image reference a set may name (registry, path, tag and digest together).
pub const MAX_IMAGE_REFERENCE_BYTES: usize = 1024;

/// Why a set was refused (the previous set stays in force).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetRefused {
    #[error("it names {count} images, more than the {MAX_PREPULL_IMAGES} a set may name")]
    TooManyImages { count: usize },
    #[error("image #{index} has an empty reference")]
    EmptyReference { index: usize },
    #[error(
        "image #{index} has a reference of {bytes} bytes, more than {MAX_IMAGE_REFERENCE_BYTES}"
    )]
    OversizedReference { index: usize, bytes: usize },
    #[error("image #{index} {image:?} contains whitespace or control characters")]
    MalformedReference { index: usize, image: String },
    #[error("image {image:?} is named twice")]
    Duplicate { image: String },
}

/// Whether `set` keeps the limits: at most [`MAX_PREPULL_IMAGES`] images, each a
/// non-empty reference of at most [`MAX_IMAGE_REFERENCE_BYTES`] without whitespace or
/// control characters, each once.
pub fn validate(set: &ImagePrepullSet) -> Result<(), SetRefused> {
    if set.images.len() > MAX_PREPULL_IMAGES {
        return Err(SetRefused::TooManyImages {
            count: set.images.len(),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for (index, image) in set.images.iter().enumerate() {
        if image.is_empty() {
            return Err(SetRefused::EmptyReference { index });
        }
        if image.len() > MAX_IMAGE_REFERENCE_BYTES {
            return Err(SetRefused::OversizedReference {
                index,
                bytes: image.len(),
            });
        }
        if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SetRefused::MalformedReference {
                index,
                image: image.clone(),
            });
        }
        if !seen.insert(image.as_str()) {
            return Err(SetRefused::Duplicate {
                image: image.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
