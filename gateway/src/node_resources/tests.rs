use std::collections::BTreeMap;

use super::*;

fn report(extended: &[(&str, u64)]) -> NodeReport {
    let resources = NodeResources {
        cpu_millis: 4000,
        memory_bytes: 1 << 30,
        ephemeral_storage_bytes: 1 << 34,
        pods: 110,
        extended: extended
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<BTreeMap<_, _>>(),
    };
    NodeReport {
        capacity: resources.clone(),
        allocatable: resources,
        ..Default::default()
    }
}

#[test]
fn extended_resources_cannot_override_or_fake_standard_ones() {
    let (checked, dropped) = checked_report(report(&[
        ("nvidia.com/gpu", 1),
        ("cpu", 1_000_000),
        ("pods", 9999),
        ("kubernetes.io/batteries", 1),
        ("example.kubernetes.io/x", 1),
        ("requests.example.com/x", 1),
        ("example.com/huge", u64::MAX),
        ("Not Valid/x", 1),
    ]))
    .unwrap();
    let kept: Vec<&String> = checked.capacity.extended.keys().collect();
    assert_eq!(kept, vec!["nvidia.com/gpu"]);
    assert_eq!(checked.allocatable.extended.len(), 1);
    assert_eq!(dropped.len(), 7, "{dropped:?}");
    assert_eq!(checked.capacity.cpu_millis, 4000);
}

#[test]
fn standard_resources_beyond_int64_refuse_the_report() {
    let mut r = report(&[]);
    r.allocatable.memory_bytes = u64::MAX;
    let err = checked_report(r).unwrap_err();
    assert!(err.to_string().contains("allocatable.memoryBytes"), "{err}");
}
