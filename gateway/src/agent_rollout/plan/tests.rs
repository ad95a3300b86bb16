use super::*;
use crate::agent_rollout::spec::RolloutSpec;

const NOW: u64 = 10_000_000;

fn spec(pairs: &[(&str, &str)]) -> RolloutSpec {
    let mut data: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    data.entry("version".into()).or_insert_with(|| "2.0".into());
    RolloutSpec::parse(&data).unwrap()
}

fn node(name: &str) -> NodeView {
    NodeView {
        name: name.into(),
        labels: BTreeMap::new(),
        agent_version: "1.0".into(),
        ready: true,
        progress: None,
        ours: true,
        blocked: None,
    }
}

fn with(name: &str, phase: NodePhase, since: u64) -> NodeView {
    NodeView {
        progress: Some(NodeProgress::new("2.0", phase, since)),
        ..node(name)
    }
}

fn ordered(plan: &Plan) -> Vec<&str> {
    plan.orders.iter().map(String::as_str).collect()
}

#[test]
fn devices_are_ordered_in_waves_of_max_unavailable_by_name() {
    let nodes: Vec<_> = ["d", "a", "c", "b", "e"].into_iter().map(node).collect();
    let p = plan(&spec(&[("maxUnavailable", "2")]), &nodes, NOW);
    assert_eq!(ordered(&p), ["a", "b"]);
    assert_eq!(p.marks.len(), 2);
    assert!(
        p.marks
            .iter()
            .all(|m| m.progress.phase == NodePhase::Ordered)
    );
    assert_eq!((p.status.updating, p.status.pending), (2, 3));
    assert_eq!(p.status.phase, RolloutPhase::Progressing);

    // a and b busy: nothing more until one of them ends
    let nodes = vec![
        with("a", NodePhase::Downloading, NOW),
        with("b", NodePhase::Staged, NOW),
        node("c"),
        node("d"),
    ];
    assert!(
        plan(&spec(&[("maxUnavailable", "2")]), &nodes, NOW)
            .orders
            .is_empty()
    );

    // a committed: one more
    let nodes = vec![
        NodeView {
            agent_version: "2.0".into(),
            ..with("a", NodePhase::Committed, NOW)
        },
        with("b", NodePhase::Staged, NOW),
        node("c"),
        node("d"),
    ];
    let p = plan(&spec(&[("maxUnavailable", "2")]), &nodes, NOW);
    assert_eq!(ordered(&p), ["c"]);
    assert_eq!(p.status.updated, 1);
    assert_eq!(p.marks.len(), 1, "only c's order: {:?}", p.marks);
}

#[test]
fn a_new_agent_on_trial_is_not_updated_until_committed() {
    // the trial agent already reports the new version; its supervisor has not committed it
    let on_trial = NodeView {
        agent_version: "2.0".into(),
        ..with("a", NodePhase::Staged, NOW)
    };
    let p = plan(&spec(&[]), &[on_trial, node("b")], NOW);
    assert!(p.orders.is_empty() && p.marks.is_empty(), "{p:?}");
    assert_eq!((p.status.updating, p.status.updated), (1, 0));
    // rolled back after it connected: failed, never counted as updated
    let rolled_back = NodeView {
        agent_version: "2.0".into(),
        ..with("a", NodePhase::RolledBack, NOW)
    };
    let p = plan(&spec(&[]), &[rolled_back], NOW);
    assert_eq!((p.status.failed, p.status.updated), (1, 0));
    assert!(p.marks.is_empty());
}

#[test]
fn a_node_that_already_runs_the_version_is_marked_committed_once() {
    let already = NodeView {
        agent_version: "2.0".into(),
        ..node("a")
    };
    let p = plan(&spec(&[]), std::slice::from_ref(&already), NOW);
    assert!(p.orders.is_empty());
    assert_eq!(p.status.phase, RolloutPhase::Complete);
    assert_eq!(p.marks[0].progress.phase, NodePhase::Committed);
    let marked = NodeView {
        progress: Some(p.marks[0].progress.clone()),
        ..already
    };
    assert!(plan(&spec(&[]), &[marked], NOW).marks.is_empty());
}

#[test]
fn a_device_busy_with_an_earlier_version_is_not_ordered_and_counts() {
    let busy = NodeView {
        progress: Some(NodeProgress::new("1.5", NodePhase::Staged, NOW - 1000)),
        ..node("a")
    };
    let p = plan(&spec(&[]), &[busy.clone(), node("b")], NOW);
    assert!(p.orders.is_empty(), "{p:?}");
    assert_eq!(p.status.updating, 1);
    // stalled long ago: free again
    let stalled = NodeView {
        progress: Some(NodeProgress::new("1.5", NodePhase::Staged, 0)),
        ..busy
    };
    assert_eq!(ordered(&plan(&spec(&[]), &[stalled], NOW)), ["a"]);
}

#[test]
fn a_failure_pauses_the_rollout_unless_tolerated() {
    let mut failed = with("a", NodePhase::RolledBack, NOW);
    if let Some(p) = failed.progress.as_mut() {
        p.message = "did not report healthy within 120 s".into();
    }
    let nodes = vec![failed, node("b"), node("c")];
    let p = plan(&spec(&[]), &nodes, NOW);
    assert!(p.orders.is_empty());
    assert_eq!(p.status.phase, RolloutPhase::Paused);
    assert_eq!(p.status.failed, 1);
    assert_eq!(
        p.status.failures.get("a").map(String::as_str),
        Some("did not report healthy within 120 s")
    );
    assert!(
        p.status.message.contains("maxFailures"),
        "{}",
        p.status.message
    );

    let p = plan(&spec(&[("maxFailures", "1")]), &nodes, NOW);
    assert_eq!(ordered(&p), ["b"]);
    assert_eq!(p.status.phase, RolloutPhase::Progressing);
}

#[test]
fn a_paused_rollout_orders_nothing() {
    let p = plan(&spec(&[("paused", "true")]), &[node("a")], NOW);
    assert!(p.orders.is_empty() && p.marks.is_empty());
    assert_eq!(p.status.phase, RolloutPhase::Paused);
}

#[test]
fn only_selected_online_devices_of_this_replica_are_ordered() {
    let mut canary = node("c1");
    canary.labels.insert("ring".into(), "canary".into());
    let offline = NodeView {
        ready: false,
        labels: canary.labels.clone(),
        ..node("c2")
    };
    let theirs = NodeView {
        ours: false,
        labels: canary.labels.clone(),
        ..node("c0")
    };
    let nodes = vec![node("stable"), canary, offline, theirs];
    let p = plan(
        &spec(&[("nodeSelector", "ring=canary"), ("maxUnavailable", "10")]),
        &nodes,
        NOW,
    );
    assert_eq!(ordered(&p), ["c1"]);
    assert_eq!(p.status.selected, 3);
    assert_eq!(
        p.status.pending, 1,
        "the offline one; the other replica counts its own"
    );
}

#[test]
fn another_replicas_failure_pauses_this_one_and_its_pending_devices_do_not_hold_it() {
    let failed_there = NodeView {
        ours: false,
        ..with("a", NodePhase::RolledBack, NOW)
    };
    let p = plan(&spec(&[]), &[failed_there, node("b")], NOW);
    assert_eq!(p.status.phase, RolloutPhase::Paused);
    assert!(p.orders.is_empty());

    let pending_there = NodeView {
        ours: false,
        ..node("a")
    };
    let done_here = NodeView {
        progress: Some(NodeProgress::new("2.0", NodePhase::Committed, 1)),
        ..node("b")
    };
    let p = plan(&spec(&[]), &[pending_there, done_here], NOW);
    assert_eq!(p.status.phase, RolloutPhase::Complete, "{:?}", p.status);
}

#[test]
fn other_replicas_devices_in_progress_count_against_max_unavailable() {
    let theirs = NodeView {
        ours: false,
        ..with("a", NodePhase::Downloading, NOW)
    };
    let p = plan(&spec(&[]), &[theirs, node("b")], NOW);
    assert!(p.orders.is_empty());
    assert_eq!(p.status.updating, 1);
}

#[test]
fn devices_that_cannot_update_are_blocked_not_failed() {
    let blocked = NodeView {
        blocked: Some("no release of 2.0 for arm".into()),
        ..node("a")
    };
    let updated = NodeView {
        progress: Some(NodeProgress::new("2.0", NodePhase::Committed, 1)),
        ..node("b")
    };
    let p = plan(&spec(&[]), &[blocked, updated], NOW);
    assert!(p.orders.is_empty() && p.marks.is_empty());
    assert_eq!((p.status.blocked, p.status.failed), (1, 0));
    assert_eq!(p.status.phase, RolloutPhase::Complete);
    assert!(p.status.blocked_nodes.contains_key("a"));
    assert!(p.status.message.contains("cannot be updated"));
}

#[test]
fn a_device_stuck_past_the_progress_deadline_fails() {
    let deadline = 15 * 60 * 1000;
    let stuck = with("a", NodePhase::Downloading, NOW - deadline - 1);
    let p = plan(&spec(&[]), &[stuck], NOW);
    assert_eq!(p.status.failed, 1);
    assert_eq!(p.status.phase, RolloutPhase::Paused);
    let mark = &p.marks[0];
    assert_eq!(mark.progress.phase, NodePhase::Failed);
    assert!(mark.progress.message.contains("progressDeadline"));

    let fine = with("a", NodePhase::Downloading, NOW - deadline + 1);
    assert_eq!(plan(&spec(&[]), &[fine], NOW).status.failed, 0);

    // offline: it keeps its place until it is back, and does not fail
    let offline = NodeView {
        ready: false,
        ..with("a", NodePhase::Downloading, NOW - deadline - 1)
    };
    let p = plan(&spec(&[]), &[offline, node("b")], NOW);
    assert_eq!((p.status.failed, p.status.updating), (0, 1));
    assert!(p.orders.is_empty() && p.marks.is_empty());
}

#[test]
fn an_unanswered_order_is_sent_again() {
    let quiet = with(
        "a",
        NodePhase::Ordered,
        NOW - ORDER_RESEND.as_millis() as u64 - 1,
    );
    let p = plan(&spec(&[]), &[quiet], NOW);
    assert_eq!(ordered(&p), ["a"]);
    assert!(p.marks.is_empty(), "the order keeps its time");
    let recent = with("a", NodePhase::Ordered, NOW - 1000);
    assert!(plan(&spec(&[]), &[recent], NOW).orders.is_empty());
}

#[test]
fn progress_of_an_earlier_version_does_not_count() {
    let earlier = NodeView {
        progress: Some(NodeProgress::new("1.5", NodePhase::RolledBack, 1)),
        ..node("a")
    };
    let p = plan(&spec(&[]), &[earlier], NOW);
    assert_eq!(ordered(&p), ["a"]);
    assert_eq!(p.status.failed, 0);
}

#[test]
fn a_percentage_is_of_the_selected_nodes() {
    let nodes: Vec<_> = (0..10).map(|i| node(&format!("n{i}"))).collect();
    let p = plan(&spec(&[("maxUnavailable", "30%")]), &nodes, NOW);
    assert_eq!(p.orders.len(), 3);
}
