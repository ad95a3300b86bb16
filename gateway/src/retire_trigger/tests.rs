use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

fn node(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Node {
    let map = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    Node {
        metadata: ObjectMeta {
            name: Some("pi-07".to_owned()),
            labels: map(labels),
            annotations: map(annotations),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn a_node_deleted_with_the_retire_label_or_annotation_retires_its_device() {
    let pi = DeviceId::new("pi-07").unwrap();
    assert_eq!(
        retired_by_deletion(&node(&[(RETIRE_LABEL, "true")], &[])),
        Some(pi.clone())
    );
    assert_eq!(
        retired_by_deletion(&node(&[], &[(RETIRE_LABEL, "True")])),
        Some(pi)
    );
}

#[test]
fn a_node_deleted_without_it_does_not() {
    assert_eq!(retired_by_deletion(&node(&[], &[])), None);
    assert_eq!(
        retired_by_deletion(&node(&[(RETIRE_LABEL, "false")], &[])),
        None
    );
    assert_eq!(
        retired_by_deletion(&node(&[("other", "true")], &[(RETIRE_LABEL, "")])),
        None
    );
}

#[test]
fn the_device_goes_on_the_revocation_list_once() {
    let dir = tempfile::tempdir().unwrap();
    let pi = DeviceId::new("pi-07").unwrap();
    assert!(add_to_revocation_list(dir.path(), &pi).unwrap());
    assert!(!add_to_revocation_list(dir.path(), &pi).unwrap());
    assert!(RevocationList::load(dir.path()).unwrap().contains(&pi));
}
