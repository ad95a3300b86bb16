#![allow(clippy::unwrap_used)]
use super::*;

use edge_protocol::MAX_STREAM_DATA_BYTES;

const IDLE: Duration = Duration::from_secs(60);

fn stdin(sequence: u64, data: &[u8], end: bool) -> StreamData {
    StreamData {
        sequence,
        channel: StreamChannel::Stdin,
        data: data.to_vec().into(),
        end,
    }
}

fn code(close: StreamClose) -> StreamErrorCode {
    close.error.unwrap().code
}

#[test]
fn input_in_order_is_written_repeats_dropped_gaps_and_overruns_refused() {
    let now = Instant::now();
    let mut s = StreamState::new(1000, 10, Some(StreamChannel::Stdin), IDLE, now);
    assert_eq!(
        s.on_data(stdin(0, b"abc", false), now).unwrap(),
        Inbound::Write {
            data: b"abc".to_vec(),
            end: false
        }
    );
    assert_eq!(
        s.on_data(stdin(0, b"abc", false), now).unwrap(),
        Inbound::Duplicate
    );
    assert_eq!(
        code(s.on_data(stdin(2, b"x", false), now).unwrap_err()),
        StreamErrorCode::Protocol
    );
    // 3 of 10 granted bytes are out; 8 more exceed the window.
    assert_eq!(
        code(s.on_data(stdin(1, b"12345678", false), now).unwrap_err()),
        StreamErrorCode::Protocol
    );
}

#[test]
fn credit_goes_back_after_writing_half_the_window() {
    let now = Instant::now();
    let mut s = StreamState::new(1000, 10, Some(StreamChannel::Stdin), IDLE, now);
    s.on_data(stdin(0, b"abcd", false), now).unwrap();
    assert_eq!(s.written(4), None);
    s.on_data(stdin(1, b"e", false), now).unwrap();
    assert_eq!(s.written(1), Some(StreamCredit { bytes: 5 }));
    // The credited bytes may be sent again.
    s.on_data(stdin(2, b"0123456789", false), now).unwrap();
}

#[test]
fn input_on_the_wrong_channel_or_after_its_end_is_a_protocol_error() {
    let now = Instant::now();
    let mut no_stdin = StreamState::new(1000, 10, None, IDLE, now);
    assert_eq!(
        code(no_stdin.on_data(stdin(0, b"a", false), now).unwrap_err()),
        StreamErrorCode::Protocol
    );
    let mut s = StreamState::new(1000, 10, Some(StreamChannel::Stdin), IDLE, now);
    assert_eq!(
        s.on_data(stdin(0, b"", true), now).unwrap(),
        Inbound::Write {
            data: Vec::new(),
            end: true
        }
    );
    assert_eq!(
        code(s.on_data(stdin(1, b"late", false), now).unwrap_err()),
        StreamErrorCode::Protocol
    );
}

#[test]
fn output_stops_at_the_window_and_resumes_with_credit() {
    let now = Instant::now();
    let mut s = StreamState::new(100, 10, None, IDLE, now);
    assert!(s.wants_output());
    s.push_output(StreamChannel::Stdout, vec![7; 150], now);
    assert!(!s.wants_output(), "a read is held back: read no more");
    let first = s.next_frame().unwrap();
    assert_eq!((first.sequence, first.data.as_slice().len()), (0, 100));
    assert_eq!(s.next_frame(), None, "the window is spent");
    assert!(!s.wants_output());
    assert!(!s.output_flushed());
    s.on_credit(StreamCredit { bytes: 30 });
    let second = s.next_frame().unwrap();
    assert_eq!((second.sequence, second.data.as_slice().len()), (1, 30));
    s.on_credit(StreamCredit { bytes: 1000 });
    let third = s.next_frame().unwrap();
    assert_eq!((third.sequence, third.data.as_slice().len()), (2, 20));
    assert!(s.output_flushed());
    assert!(s.wants_output());
    // All read output went out and the window is spent again: read nothing more.
    s.push_output(StreamChannel::Stdout, vec![1; 980], now);
    assert_eq!(s.next_frame().unwrap().data.as_slice().len(), 980);
    assert!(s.output_flushed());
    assert!(!s.wants_output(), "no window left");
    assert_eq!(s.next_frame(), None);
    let end = s.end_of(StreamChannel::Stdout).unwrap();
    assert!(end.end && end.data.as_slice().is_empty());
    assert_eq!(end.sequence, 4);
}

#[test]
fn frames_never_exceed_the_protocol_limit_and_keep_their_channel() {
    let now = Instant::now();
    let mut s = StreamState::new(10 * 1024 * 1024, 10, None, IDLE, now);
    s.push_output(
        StreamChannel::Stderr,
        vec![1; MAX_STREAM_DATA_BYTES + 5],
        now,
    );
    let a = s.next_frame().unwrap();
    let b = s.next_frame().unwrap();
    assert_eq!(a.data.as_slice().len(), MAX_STREAM_DATA_BYTES);
    assert_eq!(b.data.as_slice().len(), 5);
    assert_eq!(
        (a.channel, b.channel),
        (StreamChannel::Stderr, StreamChannel::Stderr)
    );
    assert_eq!(s.next_frame(), None);
}

#[test]
fn the_idle_deadline_moves_with_data_either_way() {
    let start = Instant::now();
    let mut s = StreamState::new(100, 100, Some(StreamChannel::Stdin), IDLE, start);
    assert_eq!(s.idle_deadline(), start + IDLE);
    let later = start + Duration::from_secs(10);
    s.on_data(stdin(0, b"a", false), later).unwrap();
    assert_eq!(s.idle_deadline(), later + IDLE);
    let later2 = later + Duration::from_secs(5);
    s.push_output(StreamChannel::Stdout, b"b".to_vec(), later2);
    assert_eq!(s.idle_deadline(), later2 + IDLE);
    // Credit alone is no activity.
    s.on_credit(StreamCredit { bytes: 1 });
    assert_eq!(s.idle_deadline(), later2 + IDLE);
    assert_eq!(code(s.idle_close()), StreamErrorCode::IdleTimeout);
}
