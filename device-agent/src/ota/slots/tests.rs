#![allow(clippy::unwrap_used)]
use super::*;
use crate::ota::signature::tests::{key_pair, sign};

struct Fixture {
    dir: tempfile::TempDir,
    slots: SlotDir,
    key: PathBuf,
    pair: ring::signature::Ed25519KeyPair,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (pair, pem) = key_pair();
    let key = dir.path().join("ota-signing.pub");
    std::fs::write(&key, pem).unwrap();
    Fixture {
        slots: SlotDir::new(dir.path().join("ota")),
        key,
        pair,
        dir,
    }
}

impl Fixture {
    fn binary(&self, content: &[u8]) -> PathBuf {
        let path = self.dir.path().join("download");
        std::fs::write(&path, content).unwrap();
        path
    }
}

#[test]
fn a_fresh_directory_runs_the_installed_binary() {
    let f = fixture();
    let state = f.slots.load().unwrap();
    assert_eq!(state, OtaState::default());
    assert_eq!(state.current, Slot::Installed);
    let installed = Path::new("/usr/bin/edge-agent");
    assert_eq!(f.slots.binary(Slot::Installed, installed), installed);
    assert_eq!(
        f.slots.binary(Slot::B, installed),
        f.slots.root().join("bin/b")
    );
}

#[test]
fn staging_verifies_and_fills_the_inactive_slot() {
    let f = fixture();
    let bin = f.binary(b"agent 0.2.0");
    let sig = sign(&f.pair, "0.2.0", &bin);
    let trial = f.slots.stage(&f.key, "0.2.0", &bin, &sig, 60).unwrap();
    assert_eq!(trial.slot, Slot::A);
    assert_eq!(trial.started_at_ms, None);
    let in_slot = f.slots.root().join("bin/a");
    assert_eq!(std::fs::read(&in_slot).unwrap(), b"agent 0.2.0");
    let mode = std::fs::metadata(&in_slot).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let state = f.slots.load().unwrap();
    assert_eq!(
        state.current,
        Slot::Installed,
        "current changes only on commit"
    );
    assert_eq!(state.pending_trial(), Some(&trial));

    // from slot A, the next version goes to B
    let mut state = state;
    state.current = Slot::A;
    state.trial = None;
    f.slots.save(&state).unwrap();
    let bin = f.binary(b"agent 0.3.0");
    let sig = sign(&f.pair, "0.3.0", &bin);
    assert_eq!(
        f.slots.stage(&f.key, "0.3.0", &bin, &sig, 60).unwrap().slot,
        Slot::B
    );
}

#[test]
fn a_bad_signature_leaves_slots_and_state_untouched() {
    let f = fixture();
    let bin = f.binary(b"agent 0.2.0");
    let sig = sign(&f.pair, "0.2.0", &bin);
    let tampered = f.binary(b"agent 0.2.0 with a backdoor");
    let err = f.slots.stage(&f.key, "0.2.0", &tampered, &sig, 60);
    assert!(
        matches!(
            err,
            Err(SlotError::Signature(SignatureError::Invalid { .. }))
        ),
        "{err:?}"
    );
    assert!(!f.slots.root().join("bin/a").exists());
    assert!(!f.slots.root().join("bin/staging").exists());
    assert_eq!(f.slots.load().unwrap(), OtaState::default());
}

#[test]
fn no_pinned_key_refuses_with_a_clear_error() {
    let f = fixture();
    let bin = f.binary(b"agent");
    let sig = sign(&f.pair, "0.2.0", &bin);
    let err = f
        .slots
        .stage(&f.dir.path().join("missing.pub"), "0.2.0", &bin, &sig, 60)
        .unwrap_err();
    assert!(matches!(err, SlotError::NoPinnedKey { .. }));
    assert!(
        err.to_string().contains("agent updates are refused"),
        "{err}"
    );
}

#[test]
fn a_running_trial_is_not_replaced() {
    let f = fixture();
    let bin = f.binary(b"agent 0.2.0");
    let sig = sign(&f.pair, "0.2.0", &bin);
    f.slots.stage(&f.key, "0.2.0", &bin, &sig, 60).unwrap();
    let mut state = f.slots.load().unwrap();
    state.trial.as_mut().unwrap().started_at_ms = Some(1);
    f.slots.save(&state).unwrap();
    let err = f.slots.stage(&f.key, "0.2.0", &bin, &sig, 60).unwrap_err();
    assert!(matches!(err, SlotError::TrialRunning { .. }), "{err}");
}

#[test]
fn a_corrupt_state_file_is_a_typed_error() {
    let f = fixture();
    std::fs::create_dir_all(f.slots.root()).unwrap();
    std::fs::write(f.slots.root().join("state.json"), b"{not json").unwrap();
    assert!(matches!(f.slots.load(), Err(SlotError::Corrupt { .. })));
}

#[test]
fn each_slot_has_the_version_recorded_for_it() {
    let trial = Trial {
        slot: Slot::B,
        version: "0.3.0".into(),
        sha256: "ab".into(),
        deadline_seconds: 60,
        started_at_ms: Some(1),
    };
    let mut state = OtaState {
        current: Slot::A,
        current_version: Some("0.2.0".into()),
        trial: Some(trial),
        last_outcome: None,
    };
    assert_eq!(state.slot_version(Slot::A), Some("0.2.0"));
    assert_eq!(state.slot_version(Slot::B), Some("0.3.0"));
    assert_eq!(state.slot_version(Slot::Installed), None);
    state.trial = None;
    assert_eq!(state.slot_version(Slot::B), None);
    // the installed binary has no signed version, whatever the file says
    state.current = Slot::Installed;
    assert_eq!(state.slot_version(Slot::Installed), None);
}
