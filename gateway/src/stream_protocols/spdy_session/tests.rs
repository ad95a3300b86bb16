use super::*;

/// The client end of a connection: its own header contexts and a frame decoder.
struct Client {
    compressor: HeaderCompressor,
    decompressor: HeaderDecompressor,
}

impl Client {
    fn new() -> Self {
        Self {
            compressor: HeaderCompressor::new().unwrap(),
            decompressor: HeaderDecompressor::new(DEFAULT_MAX_HEADER_BLOCK),
        }
    }

    fn syn(&mut self, stream_id: u32, stream_type: &str, fin: bool) -> Vec<u8> {
        let headers = HeaderBlock::new().with("streamType", stream_type);
        let frame = Frame::SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin,
            unidirectional: false,
            header_block: self.compressor.compress(&headers).unwrap(),
        };
        wire(&frame)
    }
}

fn wire(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode(&mut out).unwrap();
    out
}

fn events(session: &mut Session) -> Vec<SessionEvent> {
    std::iter::from_fn(|| session.poll_event()).collect()
}

fn output(session: &mut Session) -> Vec<Frame> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

fn data(stream_id: u32, fin: bool, bytes: &[u8]) -> Vec<u8> {
    wire(&Frame::Data {
        stream_id,
        fin,
        data: bytes.to_vec(),
    })
}

#[test]
fn stream_opens_with_headers_and_gets_a_decodable_reply() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdin", false)).unwrap();
    let [
        SessionEvent::StreamOpened {
            stream_id: 1,
            headers,
        },
    ] = &events(&mut session)[..]
    else {
        panic!("expected one StreamOpened");
    };
    assert_eq!(headers.get("streamtype"), Some("stdin"));
    session.reply(1, &HeaderBlock::new(), false).unwrap();
    let [
        Frame::SynReply {
            stream_id: 1,
            fin: false,
            header_block,
        },
    ] = &output(&mut session)[..]
    else {
        panic!("expected a SYN_REPLY");
    };
    assert!(
        client
            .decompressor
            .decompress(header_block)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn data_flows_both_ways_and_fin_on_both_sides_closes_the_stream() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdin", false)).unwrap();
    session.reply(1, &HeaderBlock::new(), false).unwrap();
    events(&mut session);
    output(&mut session);
    session.receive(&data(1, true, b"input")).unwrap();
    assert_eq!(
        events(&mut session),
        [
            SessionEvent::Data {
                stream_id: 1,
                data: b"input".to_vec()
            },
            SessionEvent::RemoteFinished { stream_id: 1 },
        ]
    );
    assert_eq!(session.send_data(1, b"output", true).unwrap(), 6);
    assert_eq!(
        output(&mut session),
        [Frame::Data {
            stream_id: 1,
            fin: true,
            data: b"output".to_vec()
        }]
    );
    assert_eq!(
        events(&mut session),
        [SessionEvent::StreamClosed { stream_id: 1 }]
    );
    assert_eq!(session.open_streams(), 0);
    assert_eq!(
        session.send_data(1, b"late", false),
        Err(SessionError::NotWritable(1))
    );
}

#[test]
fn data_after_the_peer_finished_resets_the_stream() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "error", true)).unwrap();
    output(&mut session);
    session.receive(&data(1, false, b"x")).unwrap();
    assert_eq!(
        output(&mut session),
        [Frame::RstStream {
            stream_id: 1,
            status: RstStatus::STREAM_ALREADY_CLOSED
        }]
    );
    session.receive(&data(99, false, b"x")).unwrap();
    assert_eq!(
        output(&mut session),
        [Frame::RstStream {
            stream_id: 99,
            status: RstStatus::INVALID_STREAM
        }]
    );
}

#[test]
fn even_or_decreasing_stream_ids_fail_the_session_with_goaway() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    assert!(matches!(
        session.receive(&client.syn(2, "stdin", false)),
        Err(SessionError::Protocol(_))
    ));
    assert_eq!(
        output(&mut session),
        [Frame::GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::PROTOCOL_ERROR
        }]
    );
    assert_eq!(session.receive(&[]), Err(SessionError::Closed));

    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(5, "stdin", false)).unwrap();
    assert!(session.receive(&client.syn(3, "stdout", false)).is_err());
}

#[test]
fn streams_over_the_concurrency_cap_are_refused_but_keep_zlib_in_sync() {
    let config = SessionConfig {
        max_concurrent_streams: 1,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdin", false)).unwrap();
    session.receive(&client.syn(3, "stdout", false)).unwrap();
    assert_eq!(
        output(&mut session),
        [Frame::RstStream {
            stream_id: 3,
            status: RstStatus::REFUSED_STREAM
        }]
    );
    session
        .receive(&wire(&Frame::RstStream {
            stream_id: 1,
            status: RstStatus::CANCEL,
        }))
        .unwrap();
    // The refused stream's header block was still decompressed: the next one decodes.
    session.receive(&client.syn(5, "stderr", false)).unwrap();
    let opened: Vec<_> = events(&mut session)
        .into_iter()
        .filter_map(|e| match e {
            SessionEvent::StreamOpened { stream_id, headers } => {
                Some((stream_id, headers.get("streamtype").map(str::to_owned)))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        opened,
        [(1, Some("stdin".into())), (5, Some("stderr".into()))]
    );
}

#[test]
fn reset_from_the_peer_is_reported_and_forgets_the_stream() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdin", false)).unwrap();
    events(&mut session);
    session
        .receive(&wire(&Frame::RstStream {
            stream_id: 1,
            status: RstStatus::CANCEL,
        }))
        .unwrap();
    assert_eq!(
        events(&mut session),
        [SessionEvent::StreamReset {
            stream_id: 1,
            status: RstStatus::CANCEL
        }]
    );
    assert_eq!(session.open_streams(), 0);
}

#[test]
fn client_pings_are_echoed_and_our_own_are_not() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    session.receive(&wire(&Frame::Ping { id: 1 })).unwrap();
    session.receive(&wire(&Frame::Ping { id: 2 })).unwrap();
    assert_eq!(output(&mut session), [Frame::Ping { id: 1 }]);
}

#[test]
fn goaway_refuses_new_streams_and_reports_the_peers() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdin", false)).unwrap();
    session.go_away(GoAwayStatus::OK);
    session.receive(&client.syn(3, "stdout", false)).unwrap();
    assert_eq!(
        output(&mut session),
        [
            Frame::GoAway {
                last_good_stream_id: 1,
                status: GoAwayStatus::OK
            },
            Frame::RstStream {
                stream_id: 3,
                status: RstStatus::REFUSED_STREAM
            },
        ]
    );
    events(&mut session);
    session
        .receive(&wire(&Frame::GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::OK,
        }))
        .unwrap();
    assert_eq!(
        events(&mut session),
        [SessionEvent::GoAway {
            last_good_stream_id: 0,
            status: GoAwayStatus::OK
        }]
    );
}

#[test]
fn enforced_send_window_holds_back_data_until_window_update() {
    let config = SessionConfig {
        enforce_flow_control: true,
        max_send_frame: 16 * 1024,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdout", false)).unwrap();
    session.reply(1, &HeaderBlock::new(), false).unwrap();
    events(&mut session);
    output(&mut session);
    let payload = vec![1u8; 70 * 1024];
    assert_eq!(session.send_data(1, &payload, true).unwrap(), 64 * 1024);
    let frames = output(&mut session);
    assert_eq!(frames.len(), 4, "64 KiB in 16 KiB frames");
    assert!(
        frames
            .iter()
            .all(|f| matches!(f, Frame::Data { fin: false, .. }))
    );
    assert_eq!(
        session.send_data(1, &payload[64 * 1024..], true).unwrap(),
        0
    );
    session
        .receive(&wire(&Frame::WindowUpdate {
            stream_id: 1,
            delta: 8192,
        }))
        .unwrap();
    assert_eq!(
        events(&mut session),
        [SessionEvent::WindowOpened { stream_id: 1 }]
    );
    assert_eq!(
        session.send_data(1, &payload[64 * 1024..], true).unwrap(),
        6 * 1024
    );
    assert!(matches!(
        &output(&mut session)[..],
        [Frame::Data { fin: true, .. }]
    ));
}

#[test]
fn settings_initial_window_shifts_open_streams_windows() {
    let config = SessionConfig {
        enforce_flow_control: true,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdout", false)).unwrap();
    session.reply(1, &HeaderBlock::new(), false).unwrap();
    let settings = Frame::Settings {
        clear_persisted: false,
        entries: vec![crate::stream_protocols::spdy_frame::Setting {
            flags: 0,
            id: setting_id::INITIAL_WINDOW_SIZE,
            value: 10,
        }],
    };
    session.receive(&wire(&settings)).unwrap();
    assert_eq!(session.send_data(1, &[0; 100], false).unwrap(), 10);
}

#[test]
fn enforced_receive_window_resets_overruns_and_release_sends_window_update() {
    let config = SessionConfig {
        enforce_flow_control: true,
        initial_window: 1000,
        ..SessionConfig::default()
    };
    let mut session = Session::new(config).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdin", false)).unwrap();
    session.receive(&data(1, false, &[0; 600])).unwrap();
    session.release(1, 600);
    assert_eq!(
        output(&mut session),
        [Frame::WindowUpdate {
            stream_id: 1,
            delta: 600
        }]
    );
    session.receive(&data(1, false, &[0; 1000])).unwrap();
    session.receive(&data(1, false, &[0; 1])).unwrap();
    assert_eq!(
        output(&mut session),
        [Frame::RstStream {
            stream_id: 1,
            status: RstStatus::FLOW_CONTROL_ERROR
        }]
    );
}

#[test]
fn without_enforcement_windows_never_block_as_kubernetes_peers_expect() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    session.receive(&client.syn(1, "stdin", false)).unwrap();
    session.reply(1, &HeaderBlock::new(), false).unwrap();
    session
        .receive(&data(1, false, &vec![0; 200 * 1024]))
        .unwrap();
    assert_eq!(
        session.send_data(1, &vec![0; 200 * 1024], false).unwrap(),
        200 * 1024
    );
    assert!(
        events(&mut session)
            .iter()
            .all(|e| !matches!(e, SessionEvent::StreamReset { .. }))
    );
}

#[test]
fn frames_split_across_reads_decode_once_complete() {
    let mut session = Session::new(SessionConfig::default()).unwrap();
    let mut client = Client::new();
    let bytes = client.syn(1, "stdin", false);
    let (a, b) = bytes.split_at(5);
    session.receive(a).unwrap();
    assert!(events(&mut session).is_empty());
    session.receive(b).unwrap();
    assert_eq!(events(&mut session).len(), 1);
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_session(
        prefix in proptest::collection::vec(0u8..3, 0..4),
        noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
    ) {
        let mut session = Session::new(SessionConfig::default()).unwrap();
        let mut client = Client::new();
        // Start from valid streams so that noise also hits open-stream paths.
        for (i, kind) in prefix.iter().enumerate() {
            let name = ["stdin", "stdout", "error"][usize::from(*kind)];
            session.receive(&client.syn(2 * i as u32 + 1, name, false)).unwrap();
        }
        let _ = session.receive(&noise);
        let mut out = Vec::new();
        session.write_output(&mut out).unwrap();
        while session.poll_event().is_some() {}
    }
}
