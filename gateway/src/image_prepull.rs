//! Image pre-pull: images pulled onto a selected set of devices ahead of a rollout, at
//! each device's own pace (many have slow links), declared in ConfigMaps labelled
//! `edge-kube.io/image-prepull` in the gateway's pre-pull namespace (see [`spec`]).
//!
//! Each device of this replica is sent the whole set of images the pre-pulls selecting
//! it name (protocol 1.5's `down/prepull`); it pulls them one at a time, keeps them from
//! image garbage collection and reports per image (`up/prepull`, and the last status in
//! its hello). Progress shows per Node (the annotation `edge-kube.io/image-prepull`,
//! Events `ImagesPrepulled` and `ImagePrepullFailed`, and the images in the Node's
//! `status.images`) and per pre-pull (its ConfigMap's `edge-kube.io/prepull-status`
//! annotation and an Event on each phase change).
//!
//! | file | what is there |
//! |---|---|
//! | `spec.rs` | the ConfigMap's data: images, nodeSelector, imagePullSecrets (pure) |
//! | `plan.rs` | each device's set, each Node's progress, each pre-pull's status (pure) |
//! | `runner.rs` | the thin async loop: watches, device messages, Secrets, sends and writes |

use edge_protocol::{DeviceId, ImagePrepullStatus};

pub mod plan;
pub mod runner;
pub mod spec;

/// A Node's pre-pull progress.
pub const NODE_ANNOTATION: &str = "edge-kube.io/image-prepull";
/// A pre-pull's status on its ConfigMap (with `.<replica>` for a sharded replica).
pub const STATUS_ANNOTATION: &str = "edge-kube.io/prepull-status";

/// Device messages about pre-pull, forwarded by the fleet's handle.
#[derive(Debug, Clone)]
pub enum DevicePrepullMessage {
    /// What a hello says about pre-pull.
    Hello {
        device: DeviceId,
        capable: bool,
        status: Option<ImagePrepullStatus>,
    },
    Status {
        device: DeviceId,
        status: ImagePrepullStatus,
    },
}

/// Messages waiting for the pre-pull runner at most.
pub const MESSAGE_QUEUE: usize = 4096;

/// The fleet's side of the pre-pull runner's queue.
pub type PrepullInbox = crate::side_inbox::SideInbox<DevicePrepullMessage>;
