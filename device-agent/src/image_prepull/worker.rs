//! The thin async task around [`PrepullPlan`]: takes sets from the agent loop, carries
//! out the plan's actions one at a time (an inspect, or a pull with its bytes), lists
//! the runtime's images every [`RECHECK_INTERVAL`], and sends the agent loop the
//! statuses to publish and the image ids to keep from garbage collection.
//!
//! Pulls for pods do not wait for it: they go to the runtime on their own, beside the
//! one pre-pull under way, and while any runs no new pre-pull starts.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use edge_protocol::{ImagePrepullSet, ImagePrepullStatus};
use futures::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Action, PrepullPlan};
use crate::config::LifecycleTimings;
use crate::container_runtime::ContainerRuntime;
use crate::engine_api_get::Endpoint;
use crate::pull_progress::PullProgress;
use crate::runtime_images::list_images;
use crate::wall_clock::now_millis;

/// How often the runtime's images are listed to notice set images removed behind the
/// agent's back.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(60);
/// How often the worker looks at back-offs and unsent byte progress.
const TICK: Duration = Duration::from_secs(1);

/// What the worker tells the agent loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrepullUpdate {
    /// Publish this status on `up/prepull` (and keep it for the node report);
    /// `progress`: it tells bytes only (no phase changed since the last one).
    Status {
        status: ImagePrepullStatus,
        progress: bool,
    },
    /// The ids of the set's images on the device changed: keep these from image GC.
    Pinned(BTreeSet<String>),
}

/// The end of an action.
#[derive(Debug)]
enum Done {
    Inspected {
        image: String,
        result: Result<Option<String>, String>,
    },
    Pulled {
        image: String,
        result: Result<Option<String>, String>,
    },
}

/// What the worker works with.
pub struct WorkerParts {
    pub runtime: Arc<dyn ContainerRuntime>,
    /// For the periodic image listing.
    pub endpoint: Endpoint,
    pub timings: LifecycleTimings,
    /// The set kept in the local store, if any.
    pub initial: Option<ImagePrepullSet>,
    pub updates: mpsc::UnboundedSender<PrepullUpdate>,
    /// Whether pods are pulling images now.
    pub pods_pulling: watch::Receiver<bool>,
    pub cancel: CancellationToken,
}

impl std::fmt::Debug for WorkerParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerParts")
            .field("endpoint", &self.endpoint)
            .field("timings", &self.timings)
            .field("initial", &self.initial.as_ref().map(|s| &s.revision))
            .finish_non_exhaustive()
    }
}

/// Starts the worker; returns where to send new (validated) sets.
pub fn spawn(parts: WorkerParts) -> mpsc::UnboundedSender<ImagePrepullSet> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(parts, rx));
    tx
}

/// Awaits the future if there is one, else never.
async fn maybe<F: Future + Unpin>(f: &mut Option<F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn progress_changed(rx: &mut Option<watch::Receiver<PullProgress>>) -> PullProgress {
    if let Some(r) = rx
        && r.changed().await.is_ok()
    {
        return *r.borrow_and_update();
    }
    std::future::pending().await
}

fn start(
    runtime: &Arc<dyn ContainerRuntime>,
    action: Action,
) -> (
    BoxFuture<'static, Done>,
    Option<watch::Receiver<PullProgress>>,
) {
    let rt = runtime.clone();
    match action {
        Action::Inspect(image) => {
            let fut = async move {
                let result = rt.image_id(&image).await.map_err(|e| e.to_string());
                Done::Inspected { image, result }
            };
            (Box::pin(fut), None)
        }
        Action::Pull { image, credential } => {
            tracing::info!(%image, authenticated = credential.is_some(), "pre-pull: pulling image");
            let (tx, rx) = watch::channel(PullProgress::default());
            let fut = async move {
                let sink = move |p: PullProgress| {
                    tx.send_replace(p);
                };
                let result = match rt
                    .pull_with_progress(&image, credential.as_ref(), &sink)
                    .await
                {
                    Ok(()) => rt.image_id(&image).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                Done::Pulled { image, result }
            };
            (Box::pin(fut), Some(rx))
        }
    }
}

async fn run(parts: WorkerParts, mut sets: mpsc::UnboundedReceiver<ImagePrepullSet>) {
    let WorkerParts {
        runtime,
        endpoint,
        timings,
        initial,
        updates,
        mut pods_pulling,
        cancel,
    } = parts;
    let mut plan = PrepullPlan::new(timings);
    plan.hold_pulls(*pods_pulling.borrow_and_update());
    if let Some(set) = initial {
        tracing::info!(revision = %set.revision, images = set.images.len(),
            "pre-pull: resuming the stored set");
        plan.set(set, now_millis());
    }
    let mut op: Option<BoxFuture<'static, Done>> = None;
    let mut progress: Option<watch::Receiver<PullProgress>> = None;
    let mut pinned = BTreeSet::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recheck = tokio::time::interval(RECHECK_INTERVAL);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    recheck.tick().await;
    loop {
        let now = now_millis();
        if op.is_none()
            && let Some(action) = plan.next(now)
        {
            let (fut, rx) = start(&runtime, action);
            op = Some(fut);
            progress = rx;
        }
        if let Some((status, progress)) = plan.take_due(now)
            && updates
                .send(PrepullUpdate::Status { status, progress })
                .is_err()
        {
            break;
        }
        let now_pinned = plan.pinned_ids();
        if now_pinned != pinned {
            pinned = now_pinned;
            if updates.send(PrepullUpdate::Pinned(pinned.clone())).is_err() {
                break;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            set = sets.recv() => {
                let Some(set) = set else { break };
                if plan.set(set, now_millis()) {
                    tracing::info!("pre-pull: the new set no longer names the image being pulled; pull cancelled");
                    op = None;
                    progress = None;
                }
            }
            done = maybe(&mut op) => {
                op = None;
                progress = None;
                on_done(&mut plan, done);
            }
            p = progress_changed(&mut progress) => {
                if let Some(image) = plan.pulling().map(str::to_owned) {
                    plan.progress(&image, p);
                }
            }
            changed = pods_pulling.changed() => match changed {
                Ok(()) => {
                    let hold = *pods_pulling.borrow_and_update();
                    tracing::debug!(hold, "pre-pull: pods pulling images");
                    plan.hold_pulls(hold);
                }
                // the agent loop is gone
                Err(_) => break,
            },
            _ = tick.tick() => {}
            _ = recheck.tick() => match list_images(&endpoint).await {
                Ok(listed) => {
                    let ids: BTreeSet<String> = listed.into_iter().map(|i| i.id).collect();
                    plan.listed(&ids);
                }
                Err(e) => tracing::debug!(error = %e, "pre-pull: cannot list images"),
            },
        }
    }
}

fn on_done(plan: &mut PrepullPlan, done: Done) {
    let now = now_millis();
    match done {
        Done::Inspected { image, result } => {
            match &result {
                Ok(Some(_)) => tracing::info!(%image, "pre-pull: image already present"),
                Ok(None) => tracing::debug!(%image, "pre-pull: image not present"),
                Err(e) => tracing::warn!(%image, error = %e,
                    "pre-pull: cannot tell whether the image is present; pulling it"),
            }
            plan.inspected(&image, result, now);
        }
        Done::Pulled { image, result } => {
            let failed = result.as_ref().err().cloned();
            if let Ok(None) = result {
                tracing::warn!(%image, "pre-pull: pulled, but the runtime does not find the image by that name; \
                    it is not protected from image garbage collection");
            }
            plan.pulled(&image, result, now);
            match failed {
                None => tracing::info!(%image, "pre-pull: image present"),
                Some(error) => {
                    let retry_in = plan.retry_in(&image, now).map(Duration::from_millis);
                    tracing::warn!(%image, %error, ?retry_in,
                        "pre-pull failed; retrying after the back-off (check the image reference, \
                         the registry credentials of the set and the device's link to the registry)");
                }
            }
        }
    }
}
