//! A retired device's Kubernetes objects removed: its Node (only if ours, uid
//! precondition), its Lease, and every pod bound to it, deleted as the node lifecycle
//! controller evicts (a `Warning DeviceRetired` Event on each pod, then the deletion, so
//! the pods' controllers create replacements the scheduler puts elsewhere). The device
//! runs nothing any more (it was told to stop), so the deletion does not wait for it
//! (grace 0, uid precondition), as the pod GC does for pods of a deleted Node.

use edge_protocol::DeviceId;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use tracing::{info, warn};

use super::event_reason::EventReason;
use super::events::EventPod;
use super::lease::NODE_LEASE_NAMESPACE;
use super::{KubeFeedback, Worker, is_status};
use crate::node_ownership::{NodeOwnership, ownership};
use crate::status_mapping::now_time;

fn delete_exactly(uid: Option<String>) -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..Default::default()
    }
}

impl Worker {
    /// Deletes the retired device's Node, Lease and pods; reports whether all of it is
    /// done (the fleet tries again otherwise).
    pub(super) async fn retire_node(&mut self, device: DeviceId, why: String) {
        let done = self.delete_node(&device).await
            & self.delete_lease(&device).await
            & self.evict_pods(&device, &why).await;
        let _ = self.feedback.send(if done {
            info!(%device, "retired device's Node, Lease and pods deleted");
            KubeFeedback::NodeRetired { device }
        } else {
            KubeFeedback::RetireFailed { device }
        });
    }

    /// Deletes the Node if it is ours; a foreign Node is left alone (and counts as done).
    async fn delete_node(&mut self, device: &DeviceId) -> bool {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node = match nodes.get_opt(device.as_str()).await {
            Ok(Some(node)) => node,
            Ok(None) => return true,
            Err(e) => {
                self.failed("get_node", device.as_str(), &e);
                return false;
            }
        };
        if let NodeOwnership::Foreign { why } = ownership(&node, &self.settings) {
            warn!(%device, why, "the retired device's name is a Node the gateway does not own; left alone");
            return true;
        }
        match nodes
            .delete(device.as_str(), &delete_exactly(node.metadata.uid))
            .await
        {
            Ok(_) => true,
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => true,
            Err(e) => {
                self.failed("delete_node", device.as_str(), &e);
                false
            }
        }
    }

    async fn delete_lease(&mut self, device: &DeviceId) -> bool {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), NODE_LEASE_NAMESPACE);
        match leases
            .delete(device.as_str(), &DeleteParams::default())
            .await
        {
            Ok(_) => true,
            Err(e) if is_status(&e, 404) => true,
            Err(e) => {
                self.failed("delete_lease", device.as_str(), &e);
                false
            }
        }
    }

    /// Every pod bound to the device's Node: a Warning Event, then deleted.
    async fn evict_pods(&mut self, device: &DeviceId, why: &str) -> bool {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let listed = match pods
            .list(&ListParams::default().fields(&format!("spec.nodeName={device}")))
            .await
        {
            Ok(list) => list.items,
            Err(e) => {
                self.failed("list_pods", device.as_str(), &e);
                return false;
            }
        };
        let mut done = true;
        for pod in listed {
            let (Some(namespace), Some(name), Some(uid)) = (
                pod.metadata.namespace.as_deref(),
                pod.metadata.name.as_deref(),
                pod.metadata.uid.as_deref(),
            ) else {
                continue;
            };
            let message =
                format!("Deleting pod {namespace}/{name}: its node {device} was retired ({why})");
            let event = EventPod {
                node: device.as_str(),
                namespace,
                name,
                uid,
            }
            .warning(
                EventReason::DeviceRetired,
                &message,
                now_time(jiff::Timestamp::now()),
            )
            .build();
            self.record_event(Box::new(event)).await;
            let namespaced: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            match namespaced
                .delete(name, &delete_exactly(Some(uid.to_owned())))
                .await
            {
                Ok(_) => {
                    info!(%device, pod = %format!("{namespace}/{name}"), "pod of a retired device deleted")
                }
                Err(e) if is_status(&e, 404) || is_status(&e, 409) => {}
                Err(e) => {
                    self.failed("delete_pod", &format!("{namespace}/{name}"), &e);
                    done = false;
                }
            }
        }
        done
    }
}
