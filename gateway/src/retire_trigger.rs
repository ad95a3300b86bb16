//! Retiring a device by deleting its Node: a user's `kubectl delete node <id>` of a
//! Node the gateway manages that carries [`RETIRE_LABEL`]`=true` (as a label or an
//! annotation) puts the device on the revocation list, exactly as `edge-gateway retire`
//! does, and the fleet retires it at its next tick. A deleted Node without it comes
//! back at the device's next report, as before.

use std::path::PathBuf;
use std::time::Duration;

use edge_protocol::DeviceId;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::enrollment::{EnrollmentError, RevocationList};
use crate::node_ownership::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};

/// The label (or annotation) that makes deleting a device's Node retire the device.
pub const RETIRE_LABEL: &str = "edge-kube.io/retire";

/// The device a deleted Node retires: the Node's name, when it carries
/// [`RETIRE_LABEL`]`=true` as a label or an annotation (pure).
pub fn retired_by_deletion(node: &Node) -> Option<DeviceId> {
    let marked = |map: Option<&std::collections::BTreeMap<String, String>>| {
        map.and_then(|m| m.get(RETIRE_LABEL))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    let meta = &node.metadata;
    if !marked(meta.labels.as_ref()) && !marked(meta.annotations.as_ref()) {
        return None;
    }
    DeviceId::new(meta.name.clone()?).ok()
}

/// Adds `device` to the revocation list in `store_dir`; `false` if it was on it already.
pub fn add_to_revocation_list(
    store_dir: &std::path::Path,
    device: &DeviceId,
) -> Result<bool, EnrollmentError> {
    let mut list = RevocationList::load(store_dir)?;
    if !list.insert(device.clone()) {
        return Ok(false);
    }
    list.save(store_dir)?;
    Ok(true)
}

/// Watches the Nodes the gateway manages for deletions with the retire label, until
/// `token` is cancelled (retrying with back-off).
pub async fn run(client: kube::Client, store_dir: PathBuf, token: CancellationToken) {
    let api: Api<Node> = Api::all(client);
    let config =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    let stream = watcher::watcher(api, config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = tokio::select! {
            _ = token.cancelled() => break,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(watcher::Event::Delete(node))) => {
                let Some(device) = retired_by_deletion(&node) else {
                    continue;
                };
                match add_to_revocation_list(&store_dir, &device) {
                    Ok(_) => {
                        info!(%device, "Node deleted with {RETIRE_LABEL}=true: retiring the device")
                    }
                    Err(e) => {
                        warn!(%device, error = %e, "cannot put the device of a Node deleted with {RETIRE_LABEL}=true on the revocation list")
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                warn!(error = %e, "node retire watch error; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            None => break,
        }
    }
}

#[cfg(test)]
mod tests;
