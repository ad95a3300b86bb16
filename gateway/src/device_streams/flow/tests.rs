use edge_protocol::{
    DEFAULT_STREAM_WINDOW_BYTES, MAX_STREAM_DATA_BYTES, StreamChannel, StreamCredit, StreamData,
};

use super::{MAX_INPUT_BACKLOG, StreamFlow};

fn bytes(frames: &[StreamData]) -> usize {
    frames.iter().map(|f| f.data.as_slice().len()).sum()
}

#[test]
fn input_waits_for_the_open_then_goes_in_frames_within_the_window() {
    let mut flow = StreamFlow::new(StreamChannel::Stdin);
    assert!(
        flow.push_input(b"hello").is_empty(),
        "nothing before the device answers"
    );
    assert_eq!(flow.input_waiting(), 5);
    let frames = flow.opened(3);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].data.as_slice(), b"hel");
    assert_eq!(frames[0].channel, StreamChannel::Stdin);
    assert_eq!(frames[0].sequence, 0);
    assert!(!frames[0].end);
    assert_eq!(flow.input_waiting(), 2);
    // no credit, no more frames
    assert!(flow.push_input(b"!").is_empty());
    let frames = flow.credit(StreamCredit { bytes: 10 });
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].data.as_slice(), b"lo!");
    assert_eq!(frames[0].sequence, 1);
}

#[test]
fn frames_never_exceed_the_frame_limit_nor_the_window() {
    let mut flow = StreamFlow::new(StreamChannel::Data);
    let window = 3 * MAX_STREAM_DATA_BYTES as u64 + 10;
    flow.opened(window);
    let frames = flow.push_input(&vec![7u8; 6 * MAX_STREAM_DATA_BYTES]);
    assert!(
        frames
            .iter()
            .all(|f| f.data.as_slice().len() <= MAX_STREAM_DATA_BYTES)
    );
    assert_eq!(bytes(&frames) as u64, window);
    assert!(flow.input_full(), "the rest waits and stops the reading");
    assert_eq!(
        flow.input_waiting(),
        6 * MAX_STREAM_DATA_BYTES - window as usize
    );
    assert!(MAX_INPUT_BACKLOG <= flow.input_waiting());
}

#[test]
fn the_end_of_input_follows_the_last_byte() {
    let mut flow = StreamFlow::new(StreamChannel::Stdin);
    flow.opened(2);
    let frames = flow.push_input(b"abcd");
    assert_eq!(frames.len(), 1);
    assert!(flow.end_input().is_empty(), "the end waits behind the data");
    let frames = flow.credit(StreamCredit { bytes: 2 });
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].data.as_slice(), b"cd");
    assert!(frames[0].end);
    // nothing after the end
    assert!(flow.push_input(b"late").is_empty());
    assert!(flow.credit(StreamCredit { bytes: 100 }).is_empty());
}

#[test]
fn an_empty_end_is_sent_when_no_data_waits() {
    let mut flow = StreamFlow::new(StreamChannel::Stdin);
    flow.opened(0);
    let frames = flow.end_input();
    assert_eq!(frames.len(), 1);
    assert!(frames[0].end && frames[0].data.as_slice().is_empty());
    assert!(flow.end_input().is_empty(), "one end only");
}

fn data(sequence: u64, len: usize) -> StreamData {
    StreamData {
        sequence,
        channel: StreamChannel::Stdout,
        data: vec![1u8; len].into(),
        end: false,
    }
}

#[test]
fn device_output_is_checked_and_credited_only_once_delivered() {
    let mut flow = StreamFlow::new(StreamChannel::Stdin);
    let half = (DEFAULT_STREAM_WINDOW_BYTES / 2) as usize;
    let mut sequence = 0;
    let mut received = 0;
    while received < half {
        let len = MAX_STREAM_DATA_BYTES.min(half - received);
        assert_eq!(flow.receive(&data(sequence, len)), Ok(true));
        sequence += 1;
        received += len;
    }
    // a repeat (QoS 1 redelivery) is dropped
    assert_eq!(flow.receive(&data(0, 1)), Ok(false));
    assert_eq!(
        flow.delivered(half - 1),
        None,
        "credit only at half the window"
    );
    assert_eq!(flow.delivered(1), Some(StreamCredit { bytes: half as u64 }));
}

#[test]
fn device_output_beyond_the_window_breaks_the_stream() {
    let mut flow = StreamFlow::new(StreamChannel::Stdin);
    let frames = (DEFAULT_STREAM_WINDOW_BYTES as usize) / MAX_STREAM_DATA_BYTES;
    for sequence in 0..frames as u64 {
        assert_eq!(
            flow.receive(&data(sequence, MAX_STREAM_DATA_BYTES)),
            Ok(true)
        );
    }
    // nothing was written to the client, so no credit: one more byte is too many
    assert!(flow.receive(&data(frames as u64, 1)).is_err());
    // and a gap too
    let mut flow = StreamFlow::new(StreamChannel::Stdin);
    assert!(flow.receive(&data(1, 1)).is_err());
}
