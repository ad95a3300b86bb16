use super::*;

#[tokio::test]
async fn chunks_reach_only_their_request_from_the_right_device() {
    let streams = LogStreams::default();
    let pi = DeviceId::new("pi-01").unwrap();
    let evil = DeviceId::new("evil").unwrap();
    let (id, mut rx) = streams.open(&pi);
    let chunk = |s: u64, end| LogChunk {
        sequence: s,
        data: "x".into(),
        end_of_stream: end,
        error: None,
    };
    assert_eq!(
        streams.deliver(&evil, &id, chunk(0, false)),
        Err(DeliveryError::WrongDevice)
    );
    streams.deliver(&pi, &id, chunk(0, false)).unwrap();
    streams.deliver(&pi, &id, chunk(1, true)).unwrap();
    assert_eq!(rx.recv().await.unwrap().sequence, 0);
    assert!(rx.recv().await.unwrap().end_of_stream);
    assert_eq!(
        streams.deliver(&pi, &id, chunk(2, false)),
        Err(DeliveryError::UnknownRequest)
    );
    assert_eq!(streams.open_count(), 0);
    let (id2, _rx2) = streams.open(&pi);
    streams.close_device(&pi);
    assert_eq!(
        streams.deliver(&pi, &id2, chunk(0, false)),
        Err(DeliveryError::UnknownRequest)
    );
}

#[tokio::test]
async fn a_slow_reader_holds_a_bounded_number_of_bytes() {
    let streams = LogStreams::default();
    let pi = DeviceId::new("pi-01").unwrap();
    let (id, mut rx) = streams.open(&pi);
    let chunk = |n: usize| LogChunk {
        sequence: 0,
        data: edge_protocol::Base64Bytes(vec![b'x'; n]),
        end_of_stream: false,
        error: None,
    };
    assert_eq!(
        streams.deliver(&pi, &id, chunk(MAX_LOG_CHUNK_BYTES + 1)),
        Err(DeliveryError::Oversized)
    );
    let mut accepted = 0;
    for _ in 0..10_000 {
        if streams
            .deliver(&pi, &id, chunk(MAX_LOG_CHUNK_BYTES))
            .is_ok()
        {
            accepted += MAX_LOG_CHUNK_BYTES;
        }
    }
    assert!(accepted <= MAX_BUFFERED_LOG_BYTES, "{accepted}");
    assert!(rx.recv().await.is_some());
}
