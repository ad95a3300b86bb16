#![allow(clippy::unwrap_used)]
use super::*;
use crate::ota::slots::Trial;

fn staged(version: &str, slot: Slot, current: Slot) -> OtaState {
    OtaState {
        current,
        current_version: None,
        trial: Some(Trial {
            slot,
            version: version.to_owned(),
            sha256: "00".repeat(32),
            deadline_seconds: 30,
            started_at_ms: None,
        }),
        last_outcome: None,
    }
}

fn saved(actions: &[Action]) -> &OtaState {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Save(s) => Some(s),
            _ => None,
        })
        .unwrap()
}

#[test]
fn without_a_trial_the_current_slot_runs_and_its_exit_ends_the_supervisor() {
    let mut s = Supervisor::new(OtaState {
        current: Slot::B,
        ..OtaState::default()
    });
    assert_eq!(s.start(0), vec![Action::Run(Slot::B)]);
    assert!(
        s.healthy(10).is_empty(),
        "health outside a trial changes nothing"
    );
    assert!(s.tick(1_000_000).is_empty());
    assert_eq!(s.exited(78, 20), vec![Action::Exit(78)]);
}

#[test]
fn a_healthy_trial_is_committed() {
    let mut s = Supervisor::new(staged("0.2.0", Slot::A, Slot::Installed));
    let actions = s.start(1_000);
    assert_eq!(actions.last(), Some(&Action::Run(Slot::A)));
    assert_eq!(
        saved(&actions).trial.as_ref().unwrap().started_at_ms,
        Some(1_000),
        "the start is recorded before the trial runs"
    );
    assert!(s.on_trial());
    assert!(s.tick(29_000).is_empty(), "inside the deadline");
    let actions = s.healthy(5_000);
    let state = saved(&actions);
    assert_eq!(state.current, Slot::A);
    assert_eq!(state.current_version.as_deref(), Some("0.2.0"));
    assert_eq!(state.trial, None);
    assert_eq!(
        state.last_outcome,
        Some(Outcome::Committed {
            version: "0.2.0".into(),
            at_ms: 5_000
        })
    );
    assert!(!s.on_trial());
    // a later crash of the committed version is systemd's business, not a rollback
    assert_eq!(s.exited(1, 9_000), vec![Action::Exit(1)]);
}

#[test]
fn a_trial_past_its_deadline_is_killed_and_rolled_back() {
    let mut s = Supervisor::new(staged("0.2.0", Slot::B, Slot::A));
    s.start(1_000);
    let actions = s.tick(31_000);
    assert_eq!(actions.first(), Some(&Action::Kill));
    assert_eq!(actions.last(), Some(&Action::Run(Slot::A)));
    let state = saved(&actions);
    assert_eq!(state.current, Slot::A);
    assert_eq!(state.trial, None);
    let Some(Outcome::RolledBack {
        version, reason, ..
    }) = &state.last_outcome
    else {
        panic!("{state:?}")
    };
    assert_eq!(version, "0.2.0");
    assert!(
        reason.contains("did not report healthy within 30 s"),
        "{reason}"
    );
    // health reported after the rollback does not commit anything
    assert!(s.healthy(32_000).is_empty());
}

#[test]
fn a_trial_that_exits_is_rolled_back() {
    let mut s = Supervisor::new(staged("0.2.0", Slot::A, Slot::Installed));
    s.start(0);
    let actions = s.exited(101, 2_000);
    assert_eq!(actions.last(), Some(&Action::Run(Slot::Installed)));
    let Some(Outcome::RolledBack { reason, .. }) = &saved(&actions).last_outcome else {
        panic!()
    };
    assert!(reason.contains("exited with status 101"), "{reason}");
}

#[test]
fn a_supervisor_restarted_mid_trial_rolls_back() {
    let mut state = staged("0.2.0", Slot::A, Slot::B);
    state.trial.as_mut().unwrap().started_at_ms = Some(5);
    let mut s = Supervisor::new(state);
    let actions = s.start(100);
    assert_eq!(actions.last(), Some(&Action::Run(Slot::B)));
    assert!(matches!(
        saved(&actions).last_outcome,
        Some(Outcome::RolledBack { .. })
    ));
    assert!(!s.on_trial());
}

#[test]
fn a_trial_staged_while_running_stops_the_agent_then_starts_the_trial() {
    let mut s = Supervisor::new(OtaState::default());
    s.start(0);
    assert!(s.staged(OtaState::default()).is_empty(), "nothing staged");
    assert_eq!(
        s.staged(staged("0.2.0", Slot::A, Slot::Installed)),
        vec![Action::Stop]
    );
    // a second look at the same file while the agent stops does nothing
    assert!(
        s.staged(staged("0.2.0", Slot::A, Slot::Installed))
            .is_empty()
    );
    let actions = s.exited(0, 50);
    assert_eq!(actions.last(), Some(&Action::Run(Slot::A)));
    assert!(s.on_trial());
}
