use super::*;

fn stream(kind: &str, port: &str, request_id: Option<&str>) -> HeaderBlock {
    let mut headers = HeaderBlock::new()
        .with(HEADER_STREAM_TYPE, kind)
        .with(HEADER_PORT, port);
    if let Some(id) = request_id {
        headers.add(HEADER_REQUEST_ID, id);
    }
    headers
}

#[test]
fn data_and_error_streams_pair_by_request_id_in_any_order() {
    let mut pairer = SpdyPortForwardPairer::default();
    assert_eq!(
        pairer.accept(1, &stream("error", "8080", Some("0"))),
        Ok(None)
    );
    assert_eq!(
        pairer.accept(3, &stream("error", "9090", Some("1"))),
        Ok(None)
    );
    assert_eq!(
        pairer.accept(5, &stream("data", "9090", Some("1"))),
        Ok(Some(PortForwardPair {
            request_id: "1".into(),
            port: 9090,
            data_stream: 5,
            error_stream: 3
        }))
    );
    assert_eq!(pairer.pending(), 1);
    pairer.forget_stream(1);
    assert_eq!(pairer.pending(), 0);
}

#[test]
fn without_request_id_the_stream_ids_are_paired_like_the_kubelet_does() {
    let mut pairer = SpdyPortForwardPairer::default();
    assert_eq!(pairer.accept(7, &stream("error", "80", None)), Ok(None));
    let pair = pairer
        .accept(9, &stream("data", "80", None))
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            pair.request_id.as_str(),
            pair.error_stream,
            pair.data_stream
        ),
        ("7", 7, 9)
    );
}

#[test]
fn invalid_streams_are_typed_errors() {
    let mut pairer = SpdyPortForwardPairer::new(1);
    assert_eq!(
        pairer.accept(1, &stream("stdin", "80", None)),
        Err(PortForwardError::InvalidStreamType(Some("stdin".into())))
    );
    for bad in ["0", "65536", "http"] {
        assert_eq!(
            pairer.accept(1, &stream("data", bad, None)),
            Err(PortForwardError::InvalidPort(Some(bad.into())))
        );
    }
    assert_eq!(
        pairer.accept(1, &stream("error", "80", Some("a"))),
        Ok(None)
    );
    assert_eq!(
        pairer.accept(3, &stream("error", "80", Some("a"))),
        Err(PortForwardError::DuplicateStream("error", "a".into()))
    );
    assert_eq!(
        pairer.accept(5, &stream("data", "81", Some("a"))),
        Err(PortForwardError::PortMismatch("a".into()))
    );
    assert_eq!(
        pairer.accept(7, &stream("data", "80", Some("b"))),
        Err(PortForwardError::TooManyPending(1))
    );
}

#[test]
fn websocket_ports_come_from_repeated_or_comma_separated_queries() {
    assert_eq!(
        ws_ports_from_query("port=80&port=443,8080"),
        Ok(vec![80, 443, 8080])
    );
    assert_eq!(ws_ports_from_query("x=1"), Err(PortForwardError::NoPorts));
    assert_eq!(
        ws_ports_from_query("port=0"),
        Err(PortForwardError::InvalidQueryPort("0".into()))
    );
    assert_eq!(
        ws_ports_from_query("port="),
        Err(PortForwardError::InvalidQueryPort("".into()))
    );
}

#[test]
fn websocket_channels_are_two_per_port_with_a_little_endian_port_prefix() {
    assert_eq!(ws_channels_of_port(0), (0, 1));
    assert_eq!(ws_channels_of_port(2), (4, 5));
    assert_eq!(
        ws_channel_role(3, 2),
        Some(WsPortChannel::Error { port_index: 1 })
    );
    assert_eq!(ws_channel_role(4, 2), None);
    assert_eq!(ws_port_prefix(8080), [0x90, 0x1f]);
    let mut prefix = WsPortPrefix::default();
    assert_eq!(prefix.push(&[0x90]), b"");
    assert_eq!(prefix.port(), None);
    assert_eq!(prefix.push(&[0x1f, b'o', b'k']), b"ok");
    assert_eq!(prefix.port(), Some(8080));
    assert_eq!(prefix.push(b"more"), b"more");
}

#[test]
fn error_text_matches_the_kubelet() {
    assert_eq!(
        forward_error_message(80, "web", "u-1", "connection refused"),
        "error forwarding port 80 to pod web, uid u-1: connection refused"
    );
}
