use std::collections::BTreeSet;
use std::time::Duration;

use edge_protocol::{ImagePrepullSet, PrepullPhase, RegistryCredential};

use super::*;
use crate::config::LifecycleTimings;
use crate::pull_progress::PullProgress;

const REG: &str = "reg.example:5000";

fn timings() -> LifecycleTimings {
    LifecycleTimings {
        backoff_initial: Duration::from_secs(10),
        backoff_max: Duration::from_secs(300),
        ..LifecycleTimings::default()
    }
}

fn cred() -> RegistryCredential {
    RegistryCredential {
        registry: REG.into(),
        username: "bot".into(),
        password: "pw".into(),
    }
}

fn set(revision: &str, images: &[&str]) -> ImagePrepullSet {
    ImagePrepullSet {
        revision: revision.into(),
        images: images.iter().map(|s| s.to_string()).collect(),
        registry_credentials: vec![cred()],
    }
}

fn phases(plan: &PrepullPlan) -> Vec<(String, PrepullPhase)> {
    plan.status()
        .unwrap()
        .images
        .into_iter()
        .map(|i| (i.image, i.phase))
        .collect()
}

fn pull(image: &str) -> Action {
    Action::Pull {
        image: image.into(),
        credential: crate::image_reference::credential_for(image, &[cred()]).cloned(),
    }
}

/// A plan with `images` all inspected as missing.
fn inspected_missing(images: &[&str], now: u64) -> PrepullPlan {
    let mut p = PrepullPlan::new(timings());
    p.set(set("r1", images), now);
    for image in images {
        assert_eq!(p.next(now), Some(Action::Inspect(image.to_string())));
        p.inspected(image, Ok(None), now);
    }
    p
}

#[test]
fn nothing_is_reported_before_the_first_set_and_an_empty_set_reports_no_images() {
    let mut p = PrepullPlan::new(timings());
    assert_eq!(p.status(), None);
    assert_eq!(p.take_status(0), None);
    assert_eq!(p.next(0), None);
    p.set(set("empty", &[]), 5);
    let s = p.take_status(5).expect("a new set is reported at once");
    assert_eq!(s.revision, "empty");
    assert!(s.images.is_empty());
    assert!(s.complete());
    assert_eq!(p.next(5), None);
    assert_eq!(p.take_status(6), None, "nothing changed since");
}

#[test]
fn present_images_are_found_without_a_pull_and_missing_ones_pulled_one_at_a_time_in_order() {
    let mut p = PrepullPlan::new(timings());
    p.set(set("r1", &["a:1", "reg.example:5000/b:2", "c:3"]), 0);
    assert!(p.take_status(0).is_some());
    // every image is looked up first, in order
    assert_eq!(p.next(1), Some(Action::Inspect("a:1".into())));
    assert_eq!(p.next(1), None, "one action at a time");
    p.inspected("a:1", Ok(None), 1);
    assert_eq!(
        p.next(2),
        Some(Action::Inspect("reg.example:5000/b:2".into()))
    );
    p.inspected("reg.example:5000/b:2", Ok(None), 2);
    assert_eq!(p.next(3), Some(Action::Inspect("c:3".into())));
    p.inspected("c:3", Ok(Some("idc".into())), 3);
    let s = p.take_status(3).expect("c became present: a phase change");
    assert_eq!(s.images[2].phase, PrepullPhase::Present);
    assert_eq!(s.images[2].since, 3);
    assert_eq!(p.pinned_ids(), BTreeSet::from(["idc".to_owned()]));
    // then the missing ones are pulled in set order, one at a time
    assert_eq!(p.next(4), Some(pull("a:1")));
    assert_eq!(p.pulling(), Some("a:1"));
    assert_eq!(p.next(4), None);
    assert_eq!(phases(&p)[0].1, PrepullPhase::Pulling);
    assert_eq!(phases(&p)[1].1, PrepullPhase::Pending);
    p.pulled("a:1", Ok(Some("ida".into())), 10);
    assert_eq!(p.next(10), Some(pull("reg.example:5000/b:2")));
    p.pulled("reg.example:5000/b:2", Ok(Some("idb".into())), 20);
    assert_eq!(p.next(20), None);
    let s = p.take_status(20).unwrap();
    assert!(s.complete(), "{s:?}");
    assert_eq!(p.pinned_ids().len(), 3);
}

#[test]
fn a_pull_uses_the_credential_of_its_registry_only() {
    let mut p = inspected_missing(&["reg.example:5000/b:2", "docker.io/library/x:1"], 0);
    match p.next(0) {
        Some(Action::Pull { credential, .. }) => assert_eq!(credential, Some(cred())),
        other => panic!("{other:?}"),
    }
    p.pulled("reg.example:5000/b:2", Ok(Some("b".into())), 1);
    match p.next(1) {
        Some(Action::Pull { image, credential }) => {
            assert_eq!(image, "docker.io/library/x:1");
            assert_eq!(credential, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_pull_reports_the_message_and_retries_after_a_doubling_back_off() {
    let mut p = inspected_missing(&["a:1", "b:1"], 0);
    p.take_status(0);
    assert_eq!(p.next(0), Some(pull("a:1")));
    p.pulled("a:1", Err("pulling image a:1: unauthorized".into()), 1_000);
    let s = p.take_status(1_000).expect("failed is a phase change");
    assert_eq!(s.images[0].phase, PrepullPhase::Failed);
    assert_eq!(s.images[0].message, "pulling image a:1: unauthorized");
    assert_eq!(s.images[0].since, 1_000);
    assert_eq!(p.retry_in("a:1", 1_000), Some(10_000));
    // the next image goes meanwhile
    assert_eq!(p.next(1_001), Some(pull("b:1")));
    p.pulled("b:1", Ok(Some("b".into())), 2_000);
    assert_eq!(p.next(10_999), None, "still backing off");
    assert_eq!(p.next(11_000), Some(pull("a:1")));
    let s = p.take_status(11_000).unwrap();
    assert_eq!(s.images[0].phase, PrepullPhase::Pulling);
    assert_eq!(s.images[0].message, "", "a new attempt clears the message");
    p.pulled("a:1", Err("again".into()), 12_000);
    assert_eq!(p.retry_in("a:1", 12_000), Some(20_000), "doubled");
    assert_eq!(p.next(31_999), None);
    assert_eq!(p.next(32_000), Some(pull("a:1")));
    p.pulled("a:1", Ok(Some("a".into())), 33_000);
    let s = p.take_status(33_000).unwrap();
    assert!(s.complete());
    assert_eq!(s.images[0].message, "");
}

#[test]
fn a_new_credential_retries_a_failed_pull_at_once_the_same_set_again_does_not() {
    let image = "reg.example:5000/b:2";
    let mut p = inspected_missing(&[image], 0);
    assert_eq!(p.next(0), Some(pull(image)));
    p.pulled(image, Err("unauthorized".into()), 1_000);
    // the same set again (a resend): the back-off holds
    p.set(set("r1", &[image]), 2_000);
    assert_eq!(p.next(2_000), None);
    // a corrected credential: at once, with it
    let mut fixed = set("r2", &[image]);
    fixed.registry_credentials[0].password = "right".into();
    p.set(fixed.clone(), 3_000);
    assert_eq!(
        p.next(3_000),
        Some(Action::Pull {
            image: image.into(),
            credential: Some(fixed.registry_credentials[0].clone()),
        })
    );
}

#[test]
fn no_pre_pull_starts_while_pods_pull_but_inspects_go_on() {
    let mut p = PrepullPlan::new(timings());
    p.hold_pulls(true);
    p.set(set("r1", &["a:1", "b:1"]), 0);
    assert_eq!(p.next(0), Some(Action::Inspect("a:1".into())));
    p.inspected("a:1", Ok(None), 0);
    assert_eq!(p.next(0), Some(Action::Inspect("b:1".into())));
    p.inspected("b:1", Ok(Some("idb".into())), 0);
    assert_eq!(p.next(1), None, "pods are pulling");
    p.hold_pulls(false);
    assert_eq!(p.next(2), Some(pull("a:1")));
    // a pull under way is not stopped by pods starting to pull
    p.hold_pulls(true);
    assert_eq!(p.pulling(), Some("a:1"));
    p.pulled("a:1", Ok(Some("ida".into())), 3);
    assert!(p.take_status(3).unwrap().complete());
}

#[test]
fn a_long_failure_message_is_cut_at_a_character_boundary() {
    let mut p = inspected_missing(&["a:1"], 0);
    assert_eq!(p.next(0), Some(pull("a:1")));
    let long = "é".repeat(MAX_MESSAGE_BYTES);
    p.pulled("a:1", Err(long.clone()), 1);
    let message = p.status().unwrap().images[0].message.clone();
    assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
    assert!(message.len() > MAX_MESSAGE_BYTES - 8);
    assert!(message.ends_with('…'));
    assert!(long.starts_with(message.trim_end_matches('…')));
}

#[test]
fn the_back_off_is_capped() {
    let mut p = inspected_missing(&["a:1"], 0);
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        assert_eq!(p.next(now), Some(pull("a:1")));
        p.pulled("a:1", Err("no".into()), now);
        let wait = p.retry_in("a:1", now).unwrap();
        waits.push(wait / 1_000);
        now += wait;
    }
    assert_eq!(waits, vec![10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn a_new_set_keeps_the_phases_of_images_it_shares_and_cancels_a_pull_it_drops() {
    let mut p = inspected_missing(&["a:1", "b:1", "c:1"], 0);
    assert_eq!(p.next(0), Some(pull("a:1")));
    p.pulled("a:1", Ok(Some("ida".into())), 5);
    assert_eq!(p.next(5), Some(pull("b:1")));
    p.progress(
        "b:1",
        PullProgress {
            bytes_done: 10,
            bytes_total: 100,
        },
    );
    // still pulling b: the new set names it, the pull goes on
    assert!(!p.set(set("r2", &["d:1", "b:1", "a:1"]), 6));
    let s = p.take_status(6).expect("a new set is reported at once");
    assert_eq!(s.revision, "r2");
    let images: Vec<_> = s
        .images
        .iter()
        .map(|i| (i.image.as_str(), i.phase))
        .collect();
    assert_eq!(
        images,
        vec![
            ("d:1", PrepullPhase::Pending),
            ("b:1", PrepullPhase::Pulling),
            ("a:1", PrepullPhase::Present),
        ]
    );
    assert_eq!(s.images[1].bytes_done, 10);
    assert_eq!(s.images[2].since, 5, "kept, not restarted");
    assert_eq!(p.pulling(), Some("b:1"));
    // a set without b cancels its pull; a late result of it changes nothing
    assert!(p.set(set("r3", &["a:1", "d:1"]), 7));
    assert_eq!(p.pulling(), None);
    p.pulled("b:1", Ok(Some("idb".into())), 8);
    assert_eq!(p.pinned_ids(), BTreeSet::from(["ida".to_owned()]));
    assert_eq!(p.next(8), Some(Action::Inspect("d:1".into())));
}

#[test]
fn images_leave_the_pinned_ids_when_a_set_without_them_arrives() {
    let mut p = PrepullPlan::new(timings());
    p.set(set("r1", &["a:1", "b:1"]), 0);
    assert_eq!(p.next(0), Some(Action::Inspect("a:1".into())));
    p.inspected("a:1", Ok(Some("ida".into())), 0);
    assert_eq!(p.next(0), Some(Action::Inspect("b:1".into())));
    p.inspected("b:1", Ok(Some("idb".into())), 0);
    assert_eq!(
        p.pinned_ids(),
        BTreeSet::from(["ida".to_owned(), "idb".to_owned()])
    );
    p.set(set("r2", &["b:1"]), 1);
    assert_eq!(p.pinned_ids(), BTreeSet::from(["idb".to_owned()]));
    p.set(set("r3", &[]), 2);
    assert!(p.pinned_ids().is_empty());
}

#[test]
fn an_image_removed_behind_the_agents_back_is_pulled_again() {
    let mut p = PrepullPlan::new(timings());
    p.set(set("r1", &["a:1", "b:1"]), 0);
    p.next(0);
    p.inspected("a:1", Ok(Some("ida".into())), 0);
    p.next(0);
    p.inspected("b:1", Ok(Some("idb".into())), 0);
    p.take_status(0);
    // both listed: nothing to do
    p.listed(&BTreeSet::from(["ida".to_owned(), "idb".to_owned()]));
    assert_eq!(p.next(60_000), None);
    // a is gone (podman rmi)
    p.listed(&BTreeSet::from(["idb".to_owned()]));
    assert_eq!(p.next(120_000), Some(Action::Inspect("a:1".into())));
    p.inspected("a:1", Ok(None), 120_000);
    let s = p
        .take_status(120_000)
        .expect("present → pending is reported");
    assert_eq!(s.images[0].phase, PrepullPhase::Pending);
    assert_eq!(p.pinned_ids(), BTreeSet::from(["idb".to_owned()]));
    assert_eq!(p.next(120_001), Some(pull("a:1")));
}

#[test]
fn a_tag_pointing_at_a_new_id_stays_present_with_the_new_id() {
    let mut p = PrepullPlan::new(timings());
    p.set(set("r1", &["a:1"]), 0);
    p.next(0);
    p.inspected("a:1", Ok(Some("old".into())), 0);
    p.take_status(0);
    p.listed(&BTreeSet::from(["new".to_owned()]));
    assert_eq!(p.next(1), Some(Action::Inspect("a:1".into())));
    p.inspected("a:1", Ok(Some("new".into())), 1);
    assert_eq!(p.take_status(1), None, "no phase changed");
    assert_eq!(p.pinned_ids(), BTreeSet::from(["new".to_owned()]));
    assert_eq!(p.next(2), None);
}

#[test]
fn byte_progress_is_reported_at_most_every_two_seconds_and_phase_changes_at_once() {
    let mut p = inspected_missing(&["a:1"], 0);
    p.take_status(0);
    assert_eq!(p.next(1_000), Some(pull("a:1")));
    assert!(p.take_status(1_000).is_some(), "pulling is a phase change");
    let bytes = |done| PullProgress {
        bytes_done: done,
        bytes_total: 1_000,
    };
    p.progress("a:1", bytes(100));
    assert_eq!(p.take_due(1_500), None, "too soon");
    p.progress("a:1", bytes(200));
    let (s, progress_only) = p.take_due(3_000).expect("2 s after the last status");
    assert!(progress_only);
    assert_eq!(
        (s.images[0].bytes_done, s.images[0].bytes_total),
        (200, 1_000)
    );
    assert_eq!(p.take_status(6_000), None, "no new bytes");
    p.progress("a:1", bytes(300));
    assert_eq!(p.take_status(4_999), None);
    assert!(p.take_status(5_000).is_some());
    p.progress("a:1", bytes(400));
    p.pulled("a:1", Ok(Some("a".into())), 5_001);
    let (s, progress_only) = p.take_due(5_001).expect("present at once");
    assert!(
        !progress_only,
        "a phase change is never replaced by later progress"
    );
    assert_eq!(s.images[0].phase, PrepullPhase::Present);
    assert_eq!(s.images[0].bytes_done, 1_000, "done in full");
    // bytes of another image (or none pulling) are ignored
    p.progress("b:1", bytes(5));
    assert_eq!(p.take_status(99_999), None);
}

#[test]
fn an_inspect_the_runtime_cannot_answer_leaves_the_image_to_a_pull() {
    let mut p = PrepullPlan::new(timings());
    p.set(set("r1", &["a:1"]), 0);
    assert_eq!(p.next(0), Some(Action::Inspect("a:1".into())));
    p.inspected("a:1", Err("runtime unreachable".into()), 0);
    assert_eq!(p.next(0), Some(pull("a:1")));
}

#[test]
fn validate_keeps_the_limits() {
    let ok = set("r", &["a:1", "reg.example:5000/b@sha256:00"]);
    assert_eq!(validate(&ok), Ok(()));
    assert_eq!(validate(&set("r", &[])), Ok(()));
    let many: Vec<String> = (0..=edge_protocol::MAX_PREPULL_IMAGES)
        .map(|i| format!("img{i}:1"))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        validate(&set("r", &refs)),
        Err(SetRefused::TooManyImages {
            count: edge_protocol::MAX_PREPULL_IMAGES + 1
        })
    );
    assert_eq!(
        validate(&set("r", &refs[..edge_protocol::MAX_PREPULL_IMAGES])),
        Ok(())
    );
    assert_eq!(
        validate(&set("r", &["a:1", ""])),
        Err(SetRefused::EmptyReference { index: 1 })
    );
    let long = "a".repeat(MAX_IMAGE_REFERENCE_BYTES + 1);
    assert_eq!(
        validate(&set("r", &[&long])),
        Err(SetRefused::OversizedReference {
            index: 0,
            bytes: MAX_IMAGE_REFERENCE_BYTES + 1
        })
    );
    assert_eq!(validate(&set("r", &[&long[1..]])), Ok(()));
    assert!(matches!(
        validate(&set("r", &["a :1"])),
        Err(SetRefused::MalformedReference { index: 0, .. })
    ));
    assert_eq!(
        validate(&set("r", &["a:1", "b:1", "a:1"])),
        Err(SetRefused::Duplicate {
            image: "a:1".into()
        })
    );
}
