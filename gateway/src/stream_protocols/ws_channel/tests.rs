use super::*;

#[test]
fn binary_messages_carry_the_channel_in_the_first_byte() {
    let codec = ChannelCodec::for_protocol(V4_CHANNEL_PROTOCOL).unwrap();
    assert!(codec.binary());
    assert_eq!(
        codec.encode_data(channel::STDOUT, b"hi").unwrap(),
        [1, b'h', b'i']
    );
    assert_eq!(
        codec.decode(&[0, b'x']).unwrap(),
        Some(ChannelMessage::Data {
            channel: channel::STDIN,
            payload: b"x".to_vec()
        })
    );
    assert_eq!(
        codec.decode(&[]).unwrap(),
        None,
        "empty messages are ignored"
    );
}

#[test]
fn v5_close_signal_half_closes_a_channel() {
    let codec = ChannelCodec::for_protocol(V5_CHANNEL_PROTOCOL).unwrap();
    assert!(codec.supports_close());
    assert_eq!(codec.encode_close(channel::STDIN).unwrap(), [255, 0]);
    assert_eq!(
        codec.decode(&[255, 0]).unwrap(),
        Some(ChannelMessage::Close {
            channel: channel::STDIN
        })
    );
    assert_eq!(codec.decode(&[255]), Err(ChannelError::BadCloseSignal(0)));
    assert_eq!(
        codec.decode(&[255, 0, 1]),
        Err(ChannelError::BadCloseSignal(2))
    );
}

#[test]
fn before_v5_byte_255_is_an_ordinary_channel() {
    let codec = ChannelCodec::for_protocol(V4_CHANNEL_PROTOCOL).unwrap();
    assert_eq!(codec.encode_close(0), Err(ChannelError::CloseNotSupported));
    assert_eq!(
        codec.decode(&[255, 0]).unwrap(),
        Some(ChannelMessage::Data {
            channel: 255,
            payload: vec![0]
        })
    );
}

#[test]
fn base64_variant_uses_an_ascii_digit_and_base64_payload() {
    let codec = ChannelCodec::for_protocol(BASE64_CHANNEL_PROTOCOL).unwrap();
    assert!(!codec.binary());
    // The example of the Kubernetes wsstream documentation: "foo\n" on stdin.
    assert_eq!(
        codec.encode_data(channel::STDIN, b"foo\n").unwrap(),
        b"0Zm9vCg=="
    );
    assert_eq!(
        codec.decode(b"1Cg==").unwrap(),
        Some(ChannelMessage::Data {
            channel: channel::STDOUT,
            payload: b"\n".to_vec()
        })
    );
    assert_eq!(
        codec.decode(b"x"),
        Err(ChannelError::BadBase64Channel(b'x'))
    );
    assert!(matches!(
        codec.decode(b"1!!"),
        Err(ChannelError::BadBase64(_))
    ));
    assert_eq!(
        codec.encode_data(10, b""),
        Err(ChannelError::ChannelOutOfRange(10))
    );
}

#[test]
fn unknown_protocols_are_rejected_and_the_default_is_binary() {
    assert!(ChannelCodec::for_protocol("").unwrap().binary());
    assert_eq!(
        ChannelCodec::for_protocol("v9.channel.k8s.io"),
        Err(ChannelError::UnknownProtocol("v9.channel.k8s.io".into()))
    );
    for protocol in REMOTE_COMMAND_WS_PROTOCOLS {
        ChannelCodec::for_protocol(protocol).unwrap();
    }
}
