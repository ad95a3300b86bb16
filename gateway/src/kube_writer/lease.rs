//! The device's node Lease in `kube-node-lease`: renewed while the device is online,
//! created (owned by its Node) when missing.

use edge_protocol::DeviceId;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{Worker, is_status};

/// Namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// A new Lease for the device, owned by its Node when the Node's uid is known.
fn new_lease(device: &DeviceId, node_uid: Option<String>, spec: LeaseSpec) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(device.to_string()),
            namespace: Some(NODE_LEASE_NAMESPACE.to_owned()),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Node".to_owned(),
                    name: device.to_string(),
                    uid,
                    ..Default::default()
                }]
            }),
            ..Default::default()
        },
        spec: Some(spec),
    }
}

impl Worker {
    /// Renews the device's Lease now, creating it if it does not exist.
    pub(super) async fn renew_lease(
        &mut self,
        device: DeviceId,
        node_uid: Option<String>,
        duration_seconds: i32,
    ) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), NODE_LEASE_NAMESPACE);
        let now = MicroTime(jiff::Timestamp::now());
        let spec = LeaseSpec {
            holder_identity: Some(device.to_string()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(now),
            ..Default::default()
        };
        let patch = json!({ "spec": spec });
        match leases
            .patch(
                device.as_str(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => {
                let lease = new_lease(&device, node_uid, spec);
                if let Err(e) = leases.create(&PostParams::default(), &lease).await {
                    self.failed("create_lease", device.as_str(), &e);
                }
            }
            Err(e) => self.failed("renew_lease", device.as_str(), &e),
        }
    }
}
