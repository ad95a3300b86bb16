use super::*;

fn node(name: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> DeviceNodeView {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    DeviceNodeView {
        name: name.into(),
        labels: map(labels),
        annotations: map(annotations),
    }
}

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn annotation_wins_over_label_and_default() {
    let n = node("a", &[(AUTONOMY_KEY, "2h")], &[(AUTONOMY_KEY, "72h")]);
    let b = node_budget(&n, DAY);
    assert_eq!(b.duration, Duration::from_secs(72 * 3600));
    assert_eq!(b.source, BudgetSource::NodeAnnotation);
    let n = node("a", &[(AUTONOMY_KEY, "90m")], &[]);
    assert_eq!(node_budget(&n, DAY).duration, Duration::from_secs(5400));
    assert_eq!(node_budget(&n, DAY).source, BudgetSource::NodeLabel);
    let b = node_budget(&node("a", &[], &[]), DAY);
    assert_eq!((b.duration, b.source), (DAY, BudgetSource::GatewayDefault));
}

#[test]
fn an_unreadable_value_falls_back_and_is_reported() {
    let b = node_budget(&node("a", &[], &[(AUTONOMY_KEY, "forever")]), DAY);
    assert_eq!(b.duration, DAY);
    assert_eq!(b.invalid.as_deref(), Some("forever"));
}

#[test]
fn pods_can_opt_out_or_bring_their_own() {
    let ann = |v: &str| BTreeMap::from([(AUTONOMY_KEY.to_string(), v.to_string())]);
    assert_eq!(pod_autonomy(None), PodAutonomy::FromNodes);
    assert_eq!(pod_autonomy(Some(&ann("off"))), PodAutonomy::Off);
    assert_eq!(pod_autonomy(Some(&ann(" OFF "))), PodAutonomy::Off);
    assert_eq!(
        pod_autonomy(Some(&ann("10m"))),
        PodAutonomy::Own(Duration::from_secs(600))
    );
    assert_eq!(
        pod_autonomy(Some(&ann("x"))),
        PodAutonomy::Invalid("x".into())
    );
}

#[test]
fn an_unbound_pod_gets_the_largest_budget_it_may_land_on() {
    let devices = vec![
        node("field-1", &[("site", "field")], &[(AUTONOMY_KEY, "48h")]),
        node("field-2", &[("site", "field")], &[(AUTONOMY_KEY, "12h")]),
        node("lab-1", &[("site", "lab")], &[(AUTONOMY_KEY, "1h")]),
    ];
    let field = BTreeMap::from([("site".to_string(), "field".to_string())]);
    let b = budget_for_unbound_pod(None, Some(&field), &devices, DAY);
    assert_eq!(b.duration, Duration::from_secs(48 * 3600));
    // nodeName wins over the selector
    let b = budget_for_unbound_pod(Some("lab-1"), Some(&field), &devices, DAY);
    assert_eq!(b.duration, Duration::from_secs(3600));
    // no selector: any device
    let b = budget_for_unbound_pod(None, None, &devices, DAY);
    assert_eq!(b.duration, Duration::from_secs(48 * 3600));
    // no device matches: the default
    let none = BTreeMap::from([("site".to_string(), "moon".to_string())]);
    let b = budget_for_unbound_pod(None, Some(&none), &devices, DAY);
    assert_eq!((b.duration, b.source), (DAY, BudgetSource::GatewayDefault));
}
