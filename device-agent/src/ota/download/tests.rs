#![allow(clippy::unwrap_used)]
use super::*;
use edge_protocol::binary::Base64Bytes;

const CHUNK: u64 = AGENT_UPDATE_CHUNK_BYTES;

fn order(version: &str, size: u64) -> AgentUpdateOrder {
    AgentUpdateOrder {
        version: version.to_owned(),
        sha256: "ab".repeat(32),
        size_bytes: size,
        signature: Base64Bytes(vec![7; 64]),
        health_deadline_seconds: 60,
    }
}

fn capable(running: &str) -> OrderContext {
    OrderContext {
        running_version: running.to_owned(),
        capable: Ok(()),
        trial_version: None,
        last_outcome: None,
        part_len: 0,
    }
}

fn chunk(version: &str, offset: u64, len: u64) -> AgentUpdateChunk {
    AgentUpdateChunk {
        version: version.to_owned(),
        offset,
        data: Base64Bytes(vec![(offset % 251) as u8; len as usize]),
        error: None,
    }
}

fn fetches(effects: &[Effect]) -> Vec<(u64, u64)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Fetch(f) => Some((f.offset, f.length)),
            _ => None,
        })
        .collect()
}

fn statuses(effects: &[Effect]) -> Vec<(AgentUpdateStatus, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Status {
                status,
                phase_changed,
            } => Some((status.clone(), *phase_changed)),
            _ => None,
        })
        .collect()
}

fn the_status(effects: &[Effect]) -> AgentUpdateStatus {
    let s = statuses(effects);
    assert_eq!(s.len(), 1, "{effects:?}");
    s[0].0.clone()
}

/// A downloader that started `0.2.0` of `size` bytes at t=1000.
fn started(size: u64) -> (Downloader, Vec<Effect>) {
    let mut d = Downloader::default();
    let effects = d.order(order("0.2.0", size), capable("0.1.0"), 1000);
    (d, effects)
}

#[test]
fn a_fresh_order_starts_downloading_with_two_fetches_and_reports_it() {
    let (d, effects) = started(3 * CHUNK + 5);
    assert_eq!(
        effects[0],
        Effect::ClearIncoming {
            keep: Some("0.2.0".into())
        }
    );
    let (status, changed) = statuses(&effects)[0].clone();
    assert!(changed);
    assert_eq!(status.phase, AgentUpdatePhase::Downloading);
    assert_eq!(
        (
            status.version.as_str(),
            status.bytes_received,
            status.total_bytes
        ),
        ("0.2.0", 0, 3 * CHUNK + 5)
    );
    assert_eq!(status.since, 1000);
    assert_eq!(fetches(&effects), vec![(0, CHUNK), (CHUNK, CHUNK)]);
    assert_eq!(d.status(), Some(&status));
    assert_eq!(d.downloading(), Some("0.2.0"));
}

#[test]
fn chunks_in_order_are_written_and_keep_two_fetches_out_until_complete() {
    let size = 3 * CHUNK + 5;
    let (mut d, _) = started(size);
    let e = d.chunk(chunk("0.2.0", 0, CHUNK), 1100).unwrap();
    assert!(
        matches!(&e[0], Effect::Write { version, offset: 0, data } if version == "0.2.0" && data.len() as u64 == CHUNK)
    );
    assert_eq!(fetches(&e), vec![(2 * CHUNK, CHUNK)]);
    let e = d.chunk(chunk("0.2.0", CHUNK, CHUNK), 1200).unwrap();
    assert_eq!(
        fetches(&e),
        vec![(3 * CHUNK, 5)],
        "the last fetch asks for the rest"
    );
    let e = d.chunk(chunk("0.2.0", 2 * CHUNK, CHUNK), 1300).unwrap();
    assert!(fetches(&e).is_empty());
    assert!(!e.iter().any(|e| matches!(e, Effect::Stage(_))));
    let e = d.chunk(chunk("0.2.0", 3 * CHUNK, 5), 1400).unwrap();
    assert!(matches!(&e[0], Effect::Write { offset, .. } if *offset == 3 * CHUNK));
    assert_eq!(e.last(), Some(&Effect::Stage(order("0.2.0", size))));
    // complete: nothing more is taken, nothing is fetched again
    assert_eq!(
        d.chunk(chunk("0.2.0", 3 * CHUNK, 5), 1500),
        Err(ChunkRefused::Complete {
            version: "0.2.0".into()
        })
    );
    assert!(d.tick(1400 + STALL_MS * 2).is_empty());
    assert!(d.reconnected(1400 + STALL_MS * 2).is_empty());
}

#[test]
fn hostile_or_stray_chunks_are_refused_and_change_nothing() {
    let mut idle = Downloader::default();
    assert!(matches!(
        idle.chunk(chunk("0.2.0", 0, 10), 1),
        Err(ChunkRefused::NoDownload { .. })
    ));
    let size = CHUNK + 100;
    let (mut d, _) = started(size);
    assert!(matches!(
        d.chunk(chunk("0.3.0", 0, 10), 1100),
        Err(ChunkRefused::OtherVersion { .. })
    ));
    assert_eq!(
        d.chunk(chunk("0.2.0", CHUNK, 100), 1100),
        Err(ChunkRefused::UnexpectedOffset {
            got: CHUNK,
            expected: 0
        })
    );
    assert_eq!(
        d.chunk(chunk("0.2.0", 0, 0), 1100),
        Err(ChunkRefused::Empty { offset: 0 })
    );
    assert_eq!(
        d.chunk(chunk("0.2.0", 0, CHUNK + 1), 1100),
        Err(ChunkRefused::Oversized {
            got: CHUNK + 1,
            allowed: CHUNK,
            offset: 0
        })
    );
    d.chunk(chunk("0.2.0", 0, CHUNK), 1100).unwrap();
    // past the announced size
    assert_eq!(
        d.chunk(chunk("0.2.0", CHUNK, 101), 1100),
        Err(ChunkRefused::Oversized {
            got: 101,
            allowed: 100,
            offset: CHUNK
        })
    );
    let e = d.chunk(chunk("0.2.0", CHUNK, 100), 1200).unwrap();
    assert_eq!(e.last(), Some(&Effect::Stage(order("0.2.0", size))));
}

#[test]
fn a_short_chunk_realigns_the_fetches_from_where_the_file_ends() {
    let (mut d, _) = started(4 * CHUNK);
    let e = d.chunk(chunk("0.2.0", 0, 1000), 1100).unwrap();
    assert_eq!(fetches(&e), vec![(1000, CHUNK), (1000 + CHUNK, CHUNK)]);
    // the answer to the old fetch at CHUNK does not fit any more
    assert!(matches!(
        d.chunk(chunk("0.2.0", CHUNK, CHUNK), 1200),
        Err(ChunkRefused::UnexpectedOffset { .. })
    ));
    let e = d.chunk(chunk("0.2.0", 1000, CHUNK), 1300).unwrap();
    assert_eq!(fetches(&e), vec![(1000 + 2 * CHUNK, CHUNK)]);
}

#[test]
fn a_quiet_download_fetches_again_from_the_current_offset_after_the_stall_time_or_a_reconnect() {
    let (mut d, _) = started(4 * CHUNK);
    d.chunk(chunk("0.2.0", 0, CHUNK), 2000).unwrap();
    assert!(d.tick(2000 + STALL_MS - 1).is_empty());
    let e = d.tick(2000 + STALL_MS);
    assert_eq!(fetches(&e), vec![(CHUNK, CHUNK), (2 * CHUNK, CHUNK)]);
    assert!(
        d.tick(2000 + STALL_MS + 1).is_empty(),
        "the clock restarts with the new fetches"
    );
    let e = d.reconnected(2000 + STALL_MS + 2);
    assert_eq!(fetches(&e), vec![(CHUNK, CHUNK), (2 * CHUNK, CHUNK)]);
    // nothing under way: nothing to fetch
    assert!(Downloader::default().reconnected(1).is_empty());
    assert!(Downloader::default().tick(STALL_MS * 3).is_empty());
}

#[test]
fn progress_is_reported_every_ten_percent_or_every_five_seconds_not_per_chunk() {
    // 20 chunks: 5 % each
    let (mut d, _) = started(20 * CHUNK);
    let e = d.chunk(chunk("0.2.0", 0, CHUNK), 1100).unwrap();
    assert!(statuses(&e).is_empty(), "5 % after 0.1 s: no report");
    let e = d.chunk(chunk("0.2.0", CHUNK, CHUNK), 1200).unwrap();
    let (status, changed) = statuses(&e)[0].clone();
    assert!(!changed, "progress is no phase change");
    assert_eq!(
        (status.phase, status.bytes_received, status.since),
        (AgentUpdatePhase::Downloading, 2 * CHUNK, 1000)
    );
    assert_eq!(d.status().unwrap().bytes_received, 2 * CHUNK);
    let e = d.chunk(chunk("0.2.0", 2 * CHUNK, CHUNK), 1300).unwrap();
    assert!(statuses(&e).is_empty());
    let e = d.chunk(chunk("0.2.0", 3 * CHUNK, CHUNK), 1400).unwrap();
    assert_eq!(the_status(&e).bytes_received, 4 * CHUNK, "another 10 %");
    // a trickle: reported once 5 s passed since the last report
    let e = d
        .chunk(
            chunk("0.2.0", 4 * CHUNK, 10),
            1400 + PROGRESS_INTERVAL_MS - 1,
        )
        .unwrap();
    assert!(statuses(&e).is_empty(), "10 % not reached, 5 s not passed");
    let e = d
        .chunk(
            chunk("0.2.0", 4 * CHUNK + 10, 10),
            1400 + PROGRESS_INTERVAL_MS,
        )
        .unwrap();
    assert_eq!(the_status(&e).bytes_received, 4 * CHUNK + 20);
}

#[test]
fn the_running_version_is_committed_the_trial_staged_a_rolled_back_one_not_retried() {
    let mut d = Downloader::default();
    let e = d.order(order("0.2.0", 10), capable("0.2.0"), 5);
    assert_eq!(
        e,
        vec![Effect::Status {
            status: AgentUpdateStatus {
                version: "0.2.0".into(),
                phase: AgentUpdatePhase::Committed,
                bytes_received: 10,
                total_bytes: 10,
                message: String::new(),
                since: 5,
            },
            phase_changed: true,
        }]
    );
    let trial = OrderContext {
        trial_version: Some("0.2.0".into()),
        ..capable("0.2.0")
    };
    let e = d.order(order("0.2.0", 10), trial, 6);
    assert_eq!(the_status(&e).phase, AgentUpdatePhase::Staged);
    assert_eq!(e.len(), 1);
    let rolled_back = OrderContext {
        last_outcome: Some(Outcome::RolledBack {
            version: "0.3.0".into(),
            reason: "version 0.3.0 did not report healthy within 60 s".into(),
            at_ms: 1,
        }),
        ..capable("0.2.0")
    };
    let e = d.order(order("0.3.0", 10), rolled_back.clone(), 7);
    let s = the_status(&e);
    assert_eq!(
        (s.phase, s.message.as_str()),
        (
            AgentUpdatePhase::RolledBack,
            "version 0.3.0 did not report healthy within 60 s"
        )
    );
    assert_eq!(e.len(), 1, "no fetch, no file: {e:?}");
    assert_eq!(d.downloading(), None);
    // another version than the rolled back one is downloaded
    let e = d.order(order("0.3.1", 10), rolled_back, 8);
    assert_eq!(fetches(&e), vec![(0, 10)]);
}

#[test]
fn an_agent_that_cannot_update_itself_fails_the_order_with_the_reason() {
    let mut d = Downloader::default();
    let ctx = OrderContext {
        capable: Err("no supervisor".into()),
        ..capable("0.1.0")
    };
    let e = d.order(order("0.2.0", 10), ctx, 9);
    let s = the_status(&e);
    assert_eq!(
        (s.phase, s.message.as_str(), s.since),
        (AgentUpdatePhase::Failed, "no supervisor", 9)
    );
    assert_eq!(e.len(), 1);
    assert_eq!(d.downloading(), None);
}

#[test]
fn orders_that_are_not_valid_fail_without_touching_files() {
    let long = "9".repeat(500);
    let cases: Vec<(AgentUpdateOrder, &str)> = vec![
        (order("../../etc/x", 10), "version"),
        (order("", 10), "version"),
        (order(&long, 10), "version"),
        (
            AgentUpdateOrder {
                sha256: "AB".repeat(32),
                ..order("0.2.0", 10)
            },
            "sha256",
        ),
        (
            AgentUpdateOrder {
                sha256: "ab".into(),
                ..order("0.2.0", 10)
            },
            "sha256",
        ),
        (order("0.2.0", 0), "bytes"),
        (order("0.2.0", MAX_AGENT_BINARY_BYTES + 1), "bytes"),
        (
            AgentUpdateOrder {
                signature: Base64Bytes(vec![1; 63]),
                ..order("0.2.0", 10)
            },
            "signature",
        ),
    ];
    for (bad, word) in cases {
        let mut d = Downloader::default();
        let e = d.order(bad.clone(), capable("0.1.0"), 1);
        assert_eq!(e.len(), 1, "{bad:?}: {e:?}");
        let s = the_status(&e);
        assert_eq!(s.phase, AgentUpdatePhase::Failed);
        assert!(s.message.contains(word), "{word}: {}", s.message);
        assert!(s.version.chars().count() <= MAX_ECHOED_VERSION + 1);
        assert_eq!(d.downloading(), None);
    }
    // the largest binary allowed is fine
    let e = Downloader::default().order(order("0.2.0", MAX_AGENT_BINARY_BYTES), capable("0"), 1);
    assert_eq!(fetches(&e).len(), WINDOW);
}

#[test]
fn a_download_resumes_from_the_part_file_unless_it_is_longer_than_the_binary() {
    let mut d = Downloader::default();
    let ctx = OrderContext {
        part_len: CHUNK + 7,
        ..capable("0.1.0")
    };
    let e = d.order(order("0.2.0", 3 * CHUNK), ctx, 1);
    assert_eq!(the_status(&e).bytes_received, CHUNK + 7);
    assert_eq!(
        fetches(&e),
        vec![(CHUNK + 7, CHUNK), (2 * CHUNK + 7, CHUNK - 7)]
    );
    let mut d = Downloader::default();
    let ctx = OrderContext {
        part_len: 3 * CHUNK + 1,
        ..capable("0.1.0")
    };
    let e = d.order(order("0.2.0", 3 * CHUNK), ctx, 1);
    assert_eq!(fetches(&e)[0], (0, CHUNK));
    // complete already: straight to verification
    let mut d = Downloader::default();
    let ctx = OrderContext {
        part_len: 10,
        ..capable("0.1.0")
    };
    let e = d.order(order("0.2.0", 10), ctx, 1);
    assert!(fetches(&e).is_empty());
    assert_eq!(e.last(), Some(&Effect::Stage(order("0.2.0", 10))));
}

#[test]
fn a_new_order_replaces_the_download_and_the_same_order_only_repeats_the_status() {
    let (mut d, _) = started(4 * CHUNK);
    d.chunk(chunk("0.2.0", 0, CHUNK), 1100).unwrap();
    let e = d.order(order("0.2.0", 4 * CHUNK), capable("0.1.0"), 1200);
    assert_eq!(
        e,
        vec![Effect::Status {
            status: d.status().unwrap().clone(),
            phase_changed: false
        }]
    );
    let e = d.order(order("0.3.0", 2 * CHUNK), capable("0.1.0"), 1300);
    assert_eq!(
        e[0],
        Effect::ClearIncoming {
            keep: Some("0.3.0".into())
        }
    );
    let (s, changed) = statuses(&e)[0].clone();
    assert!(changed);
    assert_eq!((s.version.as_str(), s.bytes_received), ("0.3.0", 0));
    assert_eq!(fetches(&e), vec![(0, CHUNK), (CHUNK, CHUNK)]);
    assert!(matches!(
        d.chunk(chunk("0.2.0", CHUNK, CHUNK), 1400),
        Err(ChunkRefused::OtherVersion { .. })
    ));
    // the same version signed again (another digest): what was written does not count
    let resigned = AgentUpdateOrder {
        sha256: "cd".repeat(32),
        ..order("0.3.0", 2 * CHUNK)
    };
    d.chunk(chunk("0.3.0", 0, CHUNK), 1500).unwrap();
    let ctx = OrderContext {
        part_len: CHUNK,
        ..capable("0.1.0")
    };
    let e = d.order(resigned, ctx, 1600);
    assert_eq!(fetches(&e)[0], (0, CHUNK));
    // an order answered at once also ends a download under way (and its part file)
    let e = d.order(order("0.1.0", 10), capable("0.1.0"), 1700);
    assert_eq!(e[0], Effect::ClearIncoming { keep: None });
    assert_eq!(the_status(&e).phase, AgentUpdatePhase::Committed);
    assert_eq!(d.downloading(), None);
}

#[test]
fn an_error_chunk_ends_the_update_as_failed_with_the_gateways_message() {
    let (mut d, _) = started(4 * CHUNK);
    d.chunk(chunk("0.2.0", 0, CHUNK), 1100).unwrap();
    let e = d
        .chunk(
            AgentUpdateChunk {
                version: "0.2.0".into(),
                offset: 999,
                data: Base64Bytes::default(),
                error: Some("no such version for this device".into()),
            },
            1200,
        )
        .unwrap();
    assert_eq!(e[0], Effect::ClearIncoming { keep: None });
    let s = the_status(&e);
    assert_eq!(s.phase, AgentUpdatePhase::Failed);
    assert!(s.message.contains("no such version for this device"));
    assert_eq!((s.bytes_received, s.since), (CHUNK, 1200));
    assert!(d.chunk(chunk("0.2.0", CHUNK, CHUNK), 1300).is_err());
    assert!(d.tick(1200 + STALL_MS).is_empty());
}

#[test]
fn verification_ends_as_staged_or_failed_and_removes_the_part_file() {
    let (mut d, _) = started(10);
    let e = d.chunk(chunk("0.2.0", 0, 10), 1100).unwrap();
    assert_eq!(e.last(), Some(&Effect::Stage(order("0.2.0", 10))));
    assert!(
        statuses(&e).is_empty(),
        "no progress report for a complete download"
    );
    assert!(d.staged("0.3.0", 1200).is_empty(), "not the one verified");
    assert!(d.local_failure("0.3.0", "x".into(), 1200).is_empty());
    let e = d.staged("0.2.0", 1300);
    assert_eq!(e[0], Effect::ClearIncoming { keep: None });
    let (s, changed) = statuses(&e)[0].clone();
    assert!(changed);
    assert_eq!(
        (s.phase, s.bytes_received, s.total_bytes, s.since),
        (AgentUpdatePhase::Staged, 10, 10, 1300)
    );
    assert_eq!(d.downloading(), None);

    let (mut d, _) = started(10);
    // staged only once complete
    assert!(d.staged("0.2.0", 1050).is_empty());
    d.chunk(chunk("0.2.0", 0, 10), 1100).unwrap();
    let e = d.local_failure("0.2.0", "the signature does not verify".into(), 1300);
    assert_eq!(e[0], Effect::ClearIncoming { keep: None });
    let s = the_status(&e);
    assert_eq!(
        (s.phase, s.message.as_str()),
        (AgentUpdatePhase::Failed, "the signature does not verify")
    );
    // a failed update is tried again when the gateway orders it again
    let e = d.order(order("0.2.0", 10), capable("0.1.0"), 1400);
    assert_eq!(fetches(&e), vec![(0, 10)]);
}

#[test]
fn a_staged_version_becomes_committed_or_rolled_back_when_the_state_file_says_so() {
    let staged = |version: &str| AgentUpdateStatus {
        version: version.into(),
        phase: AgentUpdatePhase::Staged,
        ..Default::default()
    };
    let committed = |version: &str| AgentUpdateStatus {
        version: version.into(),
        phase: AgentUpdatePhase::Committed,
        since: 77,
        ..Default::default()
    };
    let mut d = Downloader::new(Some(staged("0.2.0")));
    assert!(d.settled(None).is_empty());
    assert!(d.settled(Some(staged("0.2.0"))).is_empty());
    assert!(d.settled(Some(committed("0.3.0"))).is_empty());
    let e = d.settled(Some(committed("0.2.0")));
    assert_eq!(
        e,
        vec![Effect::Status {
            status: committed("0.2.0"),
            phase_changed: true
        }]
    );
    assert_eq!(d.status(), Some(&committed("0.2.0")));
    assert!(d.settled(Some(committed("0.2.0"))).is_empty(), "once");
    // not while another version downloads
    let (mut d, _) = started(10);
    assert!(d.settled(Some(committed("0.2.0"))).is_empty());
}

#[test]
fn the_state_file_gives_the_status_an_agent_starts_with() {
    use super::super::slots::Trial;
    let sizes = |slot: Slot| match slot {
        Slot::A => Some(100),
        Slot::B => Some(200),
        Slot::Installed => None,
    };
    assert_eq!(status_from_state(&OtaState::default(), 5, sizes), None);
    let trial = Trial {
        slot: Slot::B,
        version: "0.2.0".into(),
        sha256: "ab".into(),
        deadline_seconds: 60,
        started_at_ms: Some(3),
    };
    let mut state = OtaState {
        current: Slot::A,
        current_version: Some("0.1.0".into()),
        trial: Some(trial.clone()),
        last_outcome: Some(Outcome::Committed {
            version: "0.1.0".into(),
            at_ms: 1,
        }),
    };
    let s = status_from_state(&state, 5, sizes).unwrap();
    assert_eq!(
        (
            s.version.as_str(),
            s.phase,
            s.since,
            s.bytes_received,
            s.total_bytes
        ),
        ("0.2.0", AgentUpdatePhase::Staged, 3, 200, 200)
    );
    state.trial = Some(Trial {
        started_at_ms: None,
        ..trial
    });
    assert_eq!(status_from_state(&state, 5, sizes).unwrap().since, 5);
    state.trial = None;
    let s = status_from_state(&state, 5, sizes).unwrap();
    assert_eq!(
        (s.version.as_str(), s.phase, s.since, s.total_bytes),
        ("0.1.0", AgentUpdatePhase::Committed, 1, 100)
    );
    // a committed version no longer current (the installed binary reinstalled): no size
    state.current_version = None;
    assert_eq!(status_from_state(&state, 5, sizes).unwrap().total_bytes, 0);
    state.last_outcome = Some(Outcome::RolledBack {
        version: "0.2.0".into(),
        reason: "exited".into(),
        at_ms: 4,
    });
    let s = status_from_state(&state, 5, sizes).unwrap();
    assert_eq!(
        (
            s.version.as_str(),
            s.phase,
            s.message.as_str(),
            s.since,
            s.total_bytes
        ),
        ("0.2.0", AgentUpdatePhase::RolledBack, "exited", 4, 0)
    );
}

#[test]
fn an_order_without_a_health_deadline_gets_the_default() {
    assert_eq!(health_deadline_seconds(&order("1", 1)), 60);
    let none = AgentUpdateOrder {
        health_deadline_seconds: 0,
        ..order("1", 1)
    };
    assert_eq!(
        health_deadline_seconds(&none),
        DEFAULT_HEALTH_DEADLINE_SECONDS
    );
}
