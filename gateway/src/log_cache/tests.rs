#![allow(clippy::unwrap_used)]
use super::offline_answer::{OfflineLogError, OfflinePod, OfflineSince, offline_answer};
use super::*;
use crate::kubelet_api::log_query::LogQuery;

fn report(uid: &str, data: &str, until: u64, truncated: bool) -> ContainerLogTail {
    ContainerLogTail {
        pod_uid: uid.into(),
        namespace: "default".into(),
        pod_name: "web".into(),
        container: "app".into(),
        data: data.as_bytes().to_vec().into(),
        truncated,
        until,
    }
}

fn numbered(from: u32, to: u32) -> String {
    (from..to).map(|i| format!("line {i:04}\n")).collect()
}

#[test]
fn the_tail_keeps_the_newest_bytes_from_a_line_start() {
    let mut tail = CachedTail::default();
    // 10 bytes a line, 100 bytes kept: lines 95..100 after five reports of 20 lines
    for r in 0..5u32 {
        assert!(tail.append(
            &report("u", &numbered(r * 20, r * 20 + 20), u64::from(r) + 1, false),
            95
        ));
    }
    assert_eq!(
        String::from_utf8(tail.data.0.clone()).unwrap(),
        numbered(91, 100)
    );
    assert!(tail.truncated);
    assert_eq!(tail.until, 5);
}

#[test]
fn older_reports_are_ignored_and_a_cut_report_replaces_the_tail() {
    let mut tail = CachedTail::default();
    assert!(tail.append(&report("u", "a\n", 10, false), 1000));
    // stamped to the same second: still new lines
    assert!(tail.append(&report("u", "b\n", 10, false), 1000));
    assert!(
        !tail.append(&report("u", "old\n", 9, false), 1000),
        "overtaken"
    );
    assert_eq!(tail.data.0, b"a\nb\n");
    assert!(!tail.truncated);
    // the device left older new output out: what came before it would be a gap
    assert!(tail.append(&report("u", "z\n", 20, true), 1000));
    assert_eq!(tail.data.0, b"z\n");
    assert!(tail.truncated);
}

#[test]
fn tails_survive_a_restart_and_are_forgotten_with_their_pod() {
    let dir = tempfile::tempdir().unwrap();
    let device = DeviceId::new("pi-01").unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let cache = LogCache::open(store, 1024);
        cache.append(&device, &report("u1", "one\n", 5, false));
        cache.append(&device, &report("u2", "two\n", 6, false));
    }
    let store = Store::open(dir.path()).unwrap();
    let cache = LogCache::open(store.clone(), 1024);
    let tail = cache.get(&device, "u1", "app").unwrap();
    assert_eq!((tail.data.0.as_slice(), tail.until), (&b"one\n"[..], 5));
    cache.forget_pod("u1");
    assert!(cache.get(&device, "u1", "app").is_none());
    cache.retain_pods(&device, &BTreeSet::new());
    assert!(cache.is_empty());
    assert!(
        store.load_log_tails().is_empty(),
        "removed from the store too"
    );
}

#[test]
fn a_limit_of_zero_turns_the_cache_off_and_empties_it() {
    let dir = tempfile::tempdir().unwrap();
    let device = DeviceId::new("pi-01").unwrap();
    let store = Store::open(dir.path()).unwrap();
    LogCache::open(store.clone(), 1024).append(&device, &report("u1", "x\n", 1, false));
    let off = LogCache::open(store.clone(), 0);
    off.append(&device, &report("u1", "y\n", 2, false));
    assert!(off.is_empty());
    assert!(store.load_log_tails().is_empty());
}

fn offline_pod(opted_out: bool) -> OfflinePod {
    OfflinePod {
        device: "pi-01".into(),
        since: OfflineSince(Some("2026-12-06T03:20:00Z".parse().unwrap())),
        pod: "default/web".into(),
        container: "app".into(),
        opted_out,
    }
}

fn cached(data: &str, until: u64) -> CachedTail {
    CachedTail {
        data: data.as_bytes().to_vec().into(),
        until,
        truncated: false,
    }
}

fn answer(query: &str, tail: &CachedTail) -> String {
    let q = LogQuery::parse(query).unwrap();
    String::from_utf8(offline_answer(&offline_pod(false), Some(tail), &q, 100_000).unwrap())
        .unwrap()
}

#[test]
fn the_offline_answer_starts_with_the_notice_then_the_tail() {
    let tail = cached(&numbered(0, 5), 90_000);
    assert_eq!(
        answer("", &tail),
        format!(
            "# edge-gateway: device pi-01 is offline since 2026-12-06T03:20:00Z; this is the \
             last 50 bytes of output the gateway holds (cached tail, not the live log)\n{}",
            numbered(0, 5)
        )
    );
    let body = answer("tailLines=2", &tail);
    assert!(body.ends_with("\nline 0003\nline 0004\n"), "{body}");
    assert!(body.contains("the last 20 bytes"), "{body}");
    let body = answer("limitBytes=12", &tail);
    assert!(body.ends_with(")\nline 0000\nli"), "{body}");
    // the last line is at 90 s; asking from 20 s ago (80 s) shows it, from 5 s ago not
    assert!(answer("sinceSeconds=20", &tail).ends_with("line 0004\n"));
    assert!(answer("sinceSeconds=5", &tail).contains("the last 0 bytes"));
    assert!(answer("timestamps=true&follow=true", &tail).contains("no per-line timestamps"));
}

#[test]
fn opted_out_or_uncached_pods_get_an_error_saying_since_when() {
    let q = LogQuery::default();
    let err = offline_answer(&offline_pod(true), Some(&cached("x\n", 1)), &q, 0).unwrap_err();
    assert!(matches!(err, OfflineLogError::OptedOut { .. }));
    assert!(
        err.to_string()
            .contains("offline since 2026-12-06T03:20:00Z"),
        "{err}"
    );
    let err = offline_answer(&offline_pod(false), None, &q, 0).unwrap_err();
    assert!(matches!(err, OfflineLogError::NoCachedOutput { .. }));
    assert!(
        err.to_string()
            .contains("offline since 2026-12-06T03:20:00Z"),
        "{err}"
    );
    let prev = LogQuery {
        previous: true,
        ..LogQuery::default()
    };
    let err = offline_answer(&offline_pod(false), Some(&cached("x\n", 1)), &prev, 0);
    assert!(matches!(err, Err(OfflineLogError::NoPrevious { .. })));
}
