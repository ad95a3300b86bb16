//! A node report changed within the agent's session (pressure conditions, images): the
//! Node's status is patched at once and the session goes on.

use edge_protocol::{NodeConditionKind, NodePressureCondition};

use super::*;

fn disk_pressure(report: &NodeReport) -> Option<String> {
    report
        .conditions
        .iter()
        .find(|c| c.kind == NodeConditionKind::DiskPressure)
        .map(|c| c.pressure.to_string())
}

#[test]
fn an_updated_report_patches_the_node_status_without_a_new_session() {
    let mut h = harness();
    send(&h.fleet, "pi-01", UpChannel::Hello, NodeReport::default());
    registered(&h, "pi-01");
    drain(&mut h.ops);
    let update = NodeReport {
        conditions: vec![NodePressureCondition {
            kind: NodeConditionKind::DiskPressure,
            pressure: true,
            since: 1_767_225_600_000,
            message: "nodefs.available 1 < 10".into(),
        }],
        update: true,
        ..Default::default()
    };
    assert_eq!(disk_pressure(&update).as_deref(), Some("true"));
    send(&h.fleet, "pi-01", UpChannel::Hello, update.clone());
    let ops = drain(&mut h.ops);
    let patched = ops
        .iter()
        .find_map(|o| match o {
            KubeOp::PatchNodeStatus { status, .. } => Some(status.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{ops:?}"));
    let disk = patched
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DiskPressure")
        .unwrap();
    assert_eq!(disk.status, "True");
    assert!(
        !ops.iter().any(|o| matches!(o, KubeOp::UpsertNode { .. })),
        "an update is not a new registration: {ops:?}"
    );
    // the same report on a (re)connect is a new session: the Node is claimed again
    send(
        &h.fleet,
        "pi-01",
        UpChannel::Hello,
        NodeReport {
            update: false,
            ..update
        },
    );
    let ops = drain(&mut h.ops);
    assert!(
        ops.iter().any(|o| matches!(o, KubeOp::UpsertNode { .. })),
        "{ops:?}"
    );
}
