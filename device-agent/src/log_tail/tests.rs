use super::*;

fn ts(secs: u64, nanos: u32) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::new(secs, nanos)).to_string()
}

fn nanos(secs: u64, nanos: u32) -> u128 {
    u128::from(secs) * 1_000_000_000 + u128::from(nanos)
}

fn target() -> TailTarget {
    TailTarget {
        container_id: "c1".into(),
        pod_uid: "uid-1".into(),
        namespace: "default".into(),
        pod_name: "web".into(),
        container: "app".into(),
        started_at: 40_000,
    }
}

fn after(at: u128, lines_at: usize) -> Shipped {
    Shipped { at, lines_at }
}

#[test]
fn timestamps_are_removed_and_lines_already_shipped_are_left_out() {
    let raw = format!(
        "{} one\n{} two\n{} three\n",
        ts(100, 5),
        ts(100, 10),
        ts(101, 0)
    );
    let out = new_output(raw.as_bytes(), after(nanos(100, 5), 1));
    assert_eq!(out.data, b"two\nthree\n");
    assert_eq!(out.shipped, Some(after(nanos(101, 0), 1)));
    let none = new_output(raw.as_bytes(), after(nanos(101, 0), 1));
    assert!(none.data.is_empty());
    assert_eq!(none.shipped, None);
}

#[test]
fn lines_stamped_to_the_same_second_are_counted_not_lost() {
    // Podman stamps lines to the second: five lines share one time
    let second = |n: u32, from: u32| -> String {
        (from..from + n)
            .map(|i| format!("{} line {i}\n", ts(300, 0)))
            .collect()
    };
    // the first read saw two lines of that second
    let first = new_output(second(2, 0).as_bytes(), after(0, 0));
    assert_eq!(first.data, b"line 0\nline 1\n");
    assert_eq!(first.shipped, Some(after(nanos(300, 0), 2)));
    // the next read (since that second) sees all five: three are new
    let next = new_output(second(5, 0).as_bytes(), first.shipped.unwrap());
    assert_eq!(next.data, b"line 2\nline 3\nline 4\n");
    assert_eq!(next.shipped, Some(after(nanos(300, 0), 5)));
}

#[test]
fn a_line_without_a_timestamp_belongs_to_the_one_before() {
    let raw = format!("{} a\ncontinued\n", ts(200, 0));
    let out = new_output(raw.as_bytes(), after(0, 0));
    assert_eq!(out.data, b"a\ncontinued\n");
    assert_eq!(out.shipped, Some(after(nanos(200, 0), 2)));
}

#[test]
fn cutting_starts_at_a_line_start() {
    let data = b"aaaa\nbbbb\ncccc\n";
    assert_eq!(cut_to_line_start(data, 100), (&data[..], false));
    // 8 bytes from the end start inside "bbbb": the cut moves to "cccc"
    assert_eq!(cut_to_line_start(data, 8), (&b"cccc\n"[..], true));
    // exactly at a line start
    assert_eq!(cut_to_line_start(data, 10), (&b"bbbb\ncccc\n"[..], true));
    // one line longer than the limit keeps its end
    assert_eq!(cut_to_line_start(b"abcdefgh", 3), (&b"fgh"[..], true));
}

#[test]
fn a_report_entry_holds_at_most_the_limit_and_says_it_was_cut() {
    let line = "x".repeat(79) + "\n";
    let mut raw = String::new();
    for i in 0..400u32 {
        raw.push_str(&format!("{} {line}", ts(1000, i)));
    }
    let out = new_output(raw.as_bytes(), after(0, 0));
    assert_eq!(out.data.len(), 400 * 80);
    let tail = container_tail(&target(), out).expect("new output");
    assert!(tail.data.0.len() <= MAX_LOG_TAIL_BYTES);
    assert_eq!(tail.data.0.len() % 80, 0, "whole lines only");
    assert!(tail.truncated);
    assert_eq!(tail.until, 1_000_000);
    assert_eq!(
        (tail.pod_uid.as_str(), tail.container.as_str()),
        ("uid-1", "app")
    );
}

#[test]
fn nothing_new_is_no_entry() {
    assert_eq!(container_tail(&target(), NewOutput::default()), None);
}

#[test]
fn cursors_start_at_the_agent_start_and_forget_gone_containers() {
    // target() started at 40 s, before the agent (50.7 s): only what came after the agent
    let mut c = TailCursors::new(nanos(50, 700));
    let t = target();
    assert_eq!(c.after(&t), after(nanos(50, 700), 0));
    assert_eq!(c.since_seconds(&t), 50);
    c.shipped("c1", after(nanos(70, 1), 3));
    assert_eq!(c.after(&t), after(nanos(70, 1), 3));
    c.retain(&[]);
    assert_eq!(c.after(&t), after(nanos(50, 700), 0));
    // one started after the agent: all of its output, even lines stamped with the
    // second the agent started in
    let later = TailTarget {
        started_at: 50_800,
        ..target()
    };
    assert_eq!(c.after(&later), after(0, 0));
    let raw = format!("{} first\n", ts(50, 0));
    assert_eq!(new_output(raw.as_bytes(), c.after(&later)).data, b"first\n");
}

/// The cost written down in docs/gateway.md ("Offline log cache"): one report a minute
/// of a container writing one 80-byte line a second, as encoded on `up/logtail`.
#[test]
fn a_minute_of_one_80_byte_line_a_second_encodes_to_about_6_7_kb() {
    let line = format!("{}\n", "x".repeat(79));
    let raw: String = (0..60u64)
        .map(|s| format!("{} {line}", ts(1_780_000_000 + s, 123_456_789)))
        .collect();
    let target = TailTarget {
        container_id: "0".repeat(64),
        pod_uid: "0f6c4b9e-3a4d-4c1e-9b7a-2d5e8f1a6c3b".into(),
        namespace: "default".into(),
        pod_name: "sensor-7d9f8b6c5d-x2k4q".into(),
        container: "sensor".into(),
        started_at: 0,
    };
    let tail = container_tail(&target, new_output(raw.as_bytes(), after(0, 0))).unwrap();
    assert_eq!(tail.data.0.len(), 60 * 80);
    let report = LogTailReport {
        containers: vec![tail],
    };
    let encoded = Message::from(report).encode().unwrap().len();
    let topic = Topic::up(&DeviceId::new("pi-01").unwrap(), UpChannel::LogTail).to_string();
    // MQTT 3.1.1 PUBLISH at QoS 0: fixed header (1 + 2 length bytes), topic (2 + name)
    let publish = encoded + 3 + 2 + topic.len();
    println!(
        "encoded report {encoded} B, MQTT publish {publish} B, per hour {} B",
        60 * publish
    );
    assert!((6_400..=7_000).contains(&encoded), "{encoded}");
}
