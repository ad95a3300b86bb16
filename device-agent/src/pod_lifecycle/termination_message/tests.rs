#![allow(clippy::unwrap_used)]
use edge_protocol::{ContainerState, RestartPolicy, TerminationMessagePolicy};

use super::super::lifecycle_hooks::tests::{UID, app_state, exited, pod, running, snap, started};
use super::super::{Effect, Input, Outcome};

#[test]
fn the_termination_message_is_read_once_and_reported_in_state_and_last_state() {
    let mut p = pod(None, None);
    p.restart_policy = RestartPolicy::Always;
    p.containers[0].termination_message_policy = TerminationMessagePolicy::FallbackToLogsOnError;
    p.containers[0].readiness_probe = None;
    let (mut lc, _) = started(&p);
    let list = vec![snap(&p, "c1", 0, exited(3))];
    let fx = lc.handle(Input::Containers {
        list: list.clone(),
        now: 20,
    });
    let asks: Vec<&Effect> = fx
        .iter()
        .filter(|e| matches!(e, Effect::ReadTerminationMessage { .. }))
        .collect();
    assert_eq!(
        asks,
        [&Effect::ReadTerminationMessage {
            container_id: "c1".into(),
            pod_uid: UID.into(),
            container_name: "app".into(),
            restart_count: 0,
            fallback_to_logs: true,
        }]
    );
    let again = lc.handle(Input::Containers { list, now: 21 });
    assert!(
        !again
            .iter()
            .any(|e| matches!(e, Effect::ReadTerminationMessage { .. })),
        "asked once: {again:?}"
    );
    lc.handle(Input::Done(Outcome::TerminationMessage {
        container_id: "c1".into(),
        message: Some("sensor unplugged".into()),
    }));
    let message_of = |s: Option<ContainerState>| match s {
        Some(ContainerState::Terminated { message, .. }) => message,
        _ => None,
    };
    // restarted: the message stays with the previous instance, in lastState
    lc.handle(Input::Containers {
        list: vec![snap(&p, "c2", 1, running()), snap(&p, "c1", 0, exited(3))],
        now: 40,
    });
    let (state, last, _) = app_state(&lc);
    assert!(matches!(state, ContainerState::Running { .. }), "{state:?}");
    assert_eq!(message_of(last).as_deref(), Some("sensor unplugged"));
}

#[test]
fn a_file_policy_or_a_clean_exit_never_falls_back_to_the_log() {
    let mut p = pod(None, None);
    p.containers[0].readiness_probe = None;
    let (mut lc, _) = started(&p);
    let fx = lc.handle(Input::Containers {
        list: vec![snap(&p, "c1", 0, exited(1))],
        now: 20,
    });
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::ReadTerminationMessage {
            fallback_to_logs: false,
            ..
        }
    )));
    lc.handle(Input::Done(Outcome::TerminationMessage {
        container_id: "c1".into(),
        message: Some("bye".into()),
    }));
    let (state, _, _) = app_state(&lc);
    assert!(
        matches!(&state, ContainerState::Terminated { message: Some(m), .. } if m == "bye"),
        "{state:?}"
    );
    p.containers[0].termination_message_policy = TerminationMessagePolicy::FallbackToLogsOnError;
    let (mut lc, _) = started(&p);
    let fx = lc.handle(Input::Containers {
        list: vec![snap(&p, "c1", 0, exited(0))],
        now: 20,
    });
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::ReadTerminationMessage {
            fallback_to_logs: false,
            ..
        }
    )));
}
