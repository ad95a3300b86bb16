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
    }
}

#[test]
fn timestamps_are_removed_and_lines_already_shipped_are_left_out() {
    let raw = format!(
        "{} one\n{} two\n{} three\n",
        ts(100, 5),
        ts(100, 10),
        ts(101, 0)
    );
    let out = new_output(raw.as_bytes(), nanos(100, 5));
    assert_eq!(out.data, b"two\nthree\n");
    assert_eq!(out.last_nanos, Some(nanos(101, 0)));
    let none = new_output(raw.as_bytes(), nanos(101, 0));
    assert!(none.data.is_empty());
    assert_eq!(none.last_nanos, None);
}

#[test]
fn a_line_without_a_timestamp_belongs_to_the_one_before() {
    let raw = format!("{} a\ncontinued\n", ts(200, 0));
    let out = new_output(raw.as_bytes(), 0);
    assert_eq!(out.data, b"a\ncontinued\n");
    assert_eq!(out.last_nanos, Some(nanos(200, 0)));
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
    let out = new_output(raw.as_bytes(), 0);
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
    let mut c = TailCursors::new(nanos(50, 700));
    assert_eq!(c.after("c1"), nanos(50, 700));
    assert_eq!(c.since_seconds("c1"), 50);
    c.shipped("c1", nanos(70, 1));
    assert_eq!(c.after("c1"), nanos(70, 1));
    c.retain(&[]);
    assert_eq!(c.after("c1"), nanos(50, 700));
}
