use super::*;

fn tol(key: &str, op: &str, effect: &str, secs: Option<i64>) -> Toleration {
    Toleration {
        key: (!key.is_empty()).then(|| key.to_owned()),
        operator: Some(op.to_owned()),
        effect: (!effect.is_empty()).then(|| effect.to_owned()),
        toleration_seconds: secs,
        value: None,
    }
}

const PROVIDER: Taint<'static> = Taint {
    key: "virtual-kubelet.io/provider",
    value: "edge",
    effect: "NoSchedule",
};

#[test]
fn toleration_matching_follows_the_scheduler() {
    assert!(tolerates(
        &tol("virtual-kubelet.io/provider", "Exists", "NoSchedule", None),
        PROVIDER
    ));
    assert!(tolerates(
        &tol("virtual-kubelet.io/provider", "Exists", "", None),
        PROVIDER
    ));
    assert!(tolerates(&tol("", "Exists", "", None), PROVIDER));
    assert!(!tolerates(&tol("", "Equal", "", None), PROVIDER));
    assert!(!tolerates(
        &tol("virtual-kubelet.io/provider", "Exists", "NoExecute", None),
        PROVIDER
    ));
    let mut equal = tol("virtual-kubelet.io/provider", "Equal", "NoSchedule", None);
    equal.value = Some("edge".into());
    assert!(tolerates(&equal, PROVIDER));
    equal.value = Some("other".into());
    assert!(!tolerates(&equal, PROVIDER));
}

#[test]
fn the_cluster_defaults_are_replaced_by_the_budget() {
    let pod = vec![
        tol("virtual-kubelet.io/provider", "Exists", "NoSchedule", None),
        tol(NOT_READY_TAINT_KEY, "Exists", "NoExecute", Some(300)),
        tol(UNREACHABLE_TAINT_KEY, "Exists", "NoExecute", Some(300)),
    ];
    let out = with_budget(&pod, 86_400, 300).expect("changed");
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], pod[0]);
    for t in &out[1..] {
        assert_eq!(t.toleration_seconds, Some(86_400));
        assert_eq!(t.effect.as_deref(), Some("NoExecute"));
    }
}

#[test]
fn missing_tolerations_are_added() {
    let out = with_budget(&[], 3600, 300).expect("changed");
    let keys: Vec<_> = out.iter().map(|t| t.key.clone().unwrap()).collect();
    assert_eq!(keys, [NOT_READY_TAINT_KEY, UNREACHABLE_TAINT_KEY]);
    assert!(out.iter().all(|t| t.toleration_seconds == Some(3600)));
}

#[test]
fn the_pods_own_tolerations_are_kept() {
    // a different duration than the cluster default is the pod's own choice
    let own = vec![
        tol(NOT_READY_TAINT_KEY, "Exists", "NoExecute", Some(60)),
        tol(UNREACHABLE_TAINT_KEY, "Exists", "NoExecute", None),
    ];
    assert_eq!(with_budget(&own, 86_400, 300), None);
    // tolerate-everything (DaemonSet style) covers both taints
    assert_eq!(
        with_budget(&[tol("", "Exists", "", None)], 86_400, 300),
        None
    );
    // own for one taint, default for the other: only the default one changes
    let mixed = vec![
        tol(NOT_READY_TAINT_KEY, "Exists", "NoExecute", Some(60)),
        tol(UNREACHABLE_TAINT_KEY, "Exists", "NoExecute", Some(300)),
    ];
    let out = with_budget(&mixed, 7200, 300).unwrap();
    assert_eq!(out[0].toleration_seconds, Some(60));
    assert_eq!(out[1].toleration_seconds, Some(7200));
}

#[test]
fn a_second_admission_changes_nothing() {
    let once = with_budget(&[], 3600, 300).unwrap();
    assert_eq!(with_budget(&once, 3600, 300), None);
}
