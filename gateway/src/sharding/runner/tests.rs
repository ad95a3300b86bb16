use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;

use super::{holder_identity, lease_seen};

fn lease(value: serde_json::Value) -> Lease {
    serde_json::from_value(value).expect("a Lease")
}

#[test]
fn a_replica_lease_is_read_as_a_sighting() {
    let seen = lease_seen(&lease(serde_json::json!({
        "metadata": {"name": "edge-gateway-1", "resourceVersion": "7",
                     "labels": {"edge-kube.io/gateway-replica": "edge-gateway-1"}},
        "spec": {"holderIdentity": "edge-gateway-1_0000abcd", "leaseDurationSeconds": 15,
                 "renewTime": "2026-12-06T12:00:00.123456Z"}
    })))
    .expect("a replica Lease");
    assert_eq!(seen.member, "edge-gateway-1");
    assert_eq!(seen.holder.as_deref(), Some("edge-gateway-1_0000abcd"));
    assert_eq!(seen.duration, Duration::from_secs(15));
    assert!(
        seen.renew_time
            .expect("renewTime")
            .starts_with("2026-12-06T12:00:00.123456")
    );
}

#[test]
fn without_renew_time_the_resource_version_tells_changes() {
    let seen = lease_seen(&lease(serde_json::json!({
        "metadata": {"name": "edge-gateway-2", "resourceVersion": "42",
                     "labels": {"edge-kube.io/gateway-replica": "edge-gateway-2"}},
        "spec": {"holderIdentity": "", "leaseDurationSeconds": -3}
    })))
    .expect("a replica Lease");
    assert_eq!(seen.renew_time.as_deref(), Some("42"));
    assert_eq!(
        seen.holder.as_deref(),
        Some(""),
        "released: the membership ignores it"
    );
    assert_eq!(
        seen.duration,
        Duration::ZERO,
        "a negative duration counts as expired"
    );
}

#[test]
fn other_leases_are_not_replicas() {
    assert!(
        lease_seen(&lease(serde_json::json!({
            "metadata": {"name": "pi-07"},
            "spec": {"holderIdentity": "pi-07"}
        })))
        .is_none()
    );
}

#[test]
fn each_start_has_its_own_holder_identity_under_the_replica_id() {
    let a = holder_identity("edge-gateway-0");
    assert!(a.starts_with("edge-gateway-0_"), "{a}");
    assert_eq!(a.len(), "edge-gateway-0_".len() + 8);
}
