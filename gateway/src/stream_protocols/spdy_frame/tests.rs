use super::*;

fn roundtrip(frame: Frame) {
    let mut wire = Vec::new();
    frame.encode(&mut wire).unwrap();
    let mut decoder = FrameDecoder::default();
    decoder.push(&wire);
    assert_eq!(decoder.next_frame().unwrap(), Some(frame));
    assert_eq!(decoder.next_frame().unwrap(), None);
    assert_eq!(decoder.buffered(), 0);
}

#[test]
fn every_frame_type_survives_encode_then_decode() {
    roundtrip(Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 7,
        slot: 0,
        fin: false,
        unidirectional: true,
        header_block: vec![1, 2, 3],
    });
    roundtrip(Frame::SynReply {
        stream_id: 3,
        fin: true,
        header_block: vec![9; 40],
    });
    roundtrip(Frame::RstStream {
        stream_id: 5,
        status: RstStatus::CANCEL,
    });
    roundtrip(Frame::Settings {
        clear_persisted: true,
        entries: vec![
            Setting {
                flags: 1,
                id: setting_id::INITIAL_WINDOW_SIZE,
                value: 1 << 20,
            },
            Setting {
                flags: 0,
                id: setting_id::MAX_CONCURRENT_STREAMS,
                value: 10,
            },
        ],
    });
    roundtrip(Frame::Ping { id: 7 });
    roundtrip(Frame::GoAway {
        last_good_stream_id: 9,
        status: GoAwayStatus::INTERNAL_ERROR,
    });
    roundtrip(Frame::Headers {
        stream_id: 11,
        fin: false,
        header_block: vec![],
    });
    roundtrip(Frame::WindowUpdate {
        stream_id: 13,
        delta: 4096,
    });
    roundtrip(Frame::Data {
        stream_id: 15,
        fin: true,
        data: b"hello".to_vec(),
    });
}

#[test]
fn wire_layout_matches_the_spdy3_draft() {
    let mut wire = Vec::new();
    Frame::Ping { id: 1 }.encode(&mut wire).unwrap();
    // control bit + version 3, type 6, flags 0, length 4, id.
    assert_eq!(
        wire,
        [0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1]
    );
    wire.clear();
    Frame::Data {
        stream_id: 3,
        fin: true,
        data: b"ab".to_vec(),
    }
    .encode(&mut wire)
    .unwrap();
    assert_eq!(wire, [0, 0, 0, 3, 0x01, 0, 0, 2, b'a', b'b']);
    wire.clear();
    Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 2,
        slot: 0,
        fin: true,
        unidirectional: false,
        header_block: vec![],
    }
    .encode(&mut wire)
    .unwrap();
    assert_eq!(wire[..8], [0x80, 0x03, 0x00, 0x01, 0x01, 0, 0, 10]);
    assert_eq!(wire[16], 2 << 5, "priority sits in the top 3 bits");
}

#[test]
fn partial_frames_wait_for_more_bytes_one_byte_at_a_time() {
    let mut wire = Vec::new();
    let frames = vec![
        Frame::Data {
            stream_id: 1,
            fin: false,
            data: vec![7; 300],
        },
        Frame::Ping { id: 3 },
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 10,
        },
    ];
    for frame in &frames {
        frame.encode(&mut wire).unwrap();
    }
    let mut decoder = FrameDecoder::default();
    let mut got = Vec::new();
    for byte in wire {
        decoder.push(&[byte]);
        while let Some(frame) = decoder.next_frame().unwrap() {
            got.push(frame);
        }
    }
    assert_eq!(got, frames);
}

#[test]
fn oversized_frames_fail_on_the_header_before_their_payload_arrives() {
    let limits = FrameLimits {
        max_data_payload: 100,
        max_control_payload: 50,
    };
    let mut decoder = FrameDecoder::new(limits);
    // Data frame announcing 16 MiB - 1: only the header is sent.
    decoder.push(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff]);
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::FrameTooLarge {
            len: MAX_WIRE_PAYLOAD,
            max: 100
        })
    );
    let mut decoder = FrameDecoder::new(limits);
    decoder.push(&[0x80, 3, 0, 1, 0, 0, 0, 51]);
    assert_eq!(
        decoder.next_frame(),
        Err(FrameError::FrameTooLarge { len: 51, max: 50 })
    );
}

#[test]
fn malformed_control_frames_are_typed_errors() {
    let decode = |bytes: &[u8]| {
        let mut decoder = FrameDecoder::default();
        decoder.push(bytes);
        decoder.next_frame()
    };
    assert_eq!(
        decode(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]),
        Err(FrameError::UnsupportedVersion(2))
    );
    assert_eq!(
        decode(&[0x80, 3, 0, 6, 0, 0, 0, 2, 0, 0]),
        Err(FrameError::InvalidLength {
            frame_type: 6,
            len: 2
        })
    );
    assert_eq!(
        decode(&[0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]),
        Err(FrameError::ZeroStreamId { frame_type: 3 })
    );
    // SETTINGS claiming 1000 entries in a 12-byte payload.
    assert_eq!(
        decode(&[
            0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 3, 0xe8, 0, 0, 0, 7, 0, 0, 0, 1
        ]),
        Err(FrameError::InvalidLength {
            frame_type: 4,
            len: 12
        })
    );
    assert_eq!(
        decode(&[0, 0, 0, 0, 0, 0, 0, 0]),
        Err(FrameError::ZeroStreamId { frame_type: 0 })
    );
    // Unknown control types (CREDENTIAL) are skipped, not errors.
    assert_eq!(
        decode(&[0x80, 3, 0, 10, 0, 0, 0, 2, 1, 2]),
        Ok(Some(Frame::UnknownControl { frame_type: 10 }))
    );
}

#[test]
fn encoding_rejects_values_the_wire_cannot_carry() {
    let mut out = Vec::new();
    assert_eq!(
        Frame::Data {
            stream_id: 0,
            fin: false,
            data: vec![]
        }
        .encode(&mut out),
        Err(FrameError::ZeroStreamId { frame_type: 0 })
    );
    assert_eq!(
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 1 << 31
        }
        .encode(&mut out),
        Err(FrameError::Not31Bit(1 << 31))
    );
    assert!(matches!(
        Frame::Data {
            stream_id: 1,
            fin: false,
            data: vec![0; MAX_WIRE_PAYLOAD + 1]
        }
        .encode(&mut out),
        Err(FrameError::FrameTooLarge { .. })
    ));
}

/// Frames with a valid header and arbitrary payload, so decoding reaches every parser.
fn arbitrary_frames() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let frame = (
        any::<bool>(),
        0u16..12,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(|(control, kind, flags, payload)| {
            let mut out = if control {
                vec![0x80, 0x03, 0, kind as u8]
            } else {
                vec![0, 0, 0, kind as u8 | 1]
            };
            out.push(flags);
            out.extend_from_slice(&length_bytes(payload.len()));
            out.extend_from_slice(&payload);
            out
        });
    proptest::collection::vec(frame, 0..8).prop_map(|frames| frames.concat())
}

/// Every result the decoder yields for `bytes` fed in pieces of `chunk` bytes, up to the
/// first error.
fn decode_in_chunks(bytes: &[u8], chunk: usize) -> Vec<Result<Frame, FrameError>> {
    let mut decoder = FrameDecoder::default();
    let mut results = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        decoder.push(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => results.push(Ok(frame)),
                Ok(None) => break,
                Err(e) => {
                    results.push(Err(e));
                    return results;
                }
            }
        }
    }
    results
}

proptest::proptest! {
    #[test]
    fn decoding_never_panics_and_does_not_depend_on_how_bytes_arrive(
        structured in arbitrary_frames(),
        noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        chunk in 1usize..40,
    ) {
        for bytes in [structured, noise] {
            let whole = decode_in_chunks(&bytes, bytes.len());
            proptest::prop_assert_eq!(decode_in_chunks(&bytes, chunk), whole.clone());
            for frame in whole.into_iter().flatten() {
                let mut wire = Vec::new();
                // Decoded frames encode again (unknown types lose their payload).
                frame.encode(&mut wire).unwrap();
            }
        }
    }
}
