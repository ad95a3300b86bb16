use super::*;

#[test]
fn a_request_for_the_whole_server_is_an_empty_message() {
    assert_eq!(check_request(""), vec![0, 0, 0, 0, 0]);
}

#[test]
fn a_request_names_its_service_in_field_one() {
    assert_eq!(
        check_request("ready"),
        vec![0, 0, 0, 0, 7, 0x0a, 5, b'r', b'e', b'a', b'd', b'y']
    );
    // a name of 300 bytes takes a two-byte varint length (0xac 0x02)
    let long = "s".repeat(300);
    let framed = check_request(&long);
    assert_eq!(&framed[..9], &[0, 0, 0, 1, 0x2f, 0x0a, 0xac, 0x02, b's']);
    assert_eq!(framed.len(), 5 + 303);
}

#[test]
fn responses_decode_to_their_status() {
    assert_eq!(
        check_response(&[0, 0, 0, 0, 2, 0x08, 1]),
        Ok(ServingStatus::SERVING)
    );
    assert_eq!(
        check_response(&[0, 0, 0, 0, 2, 0x08, 2]).map(ServingStatus::name),
        Ok("NOT_SERVING".to_owned())
    );
    // proto3 leaves out the default: an empty message is UNKNOWN
    assert_eq!(
        check_response(&[0, 0, 0, 0, 0]).map(ServingStatus::name),
        Ok("UNKNOWN".to_owned())
    );
    // unknown fields of every wire type are skipped; the last status wins
    let message = [
        0x12, 2, b'h', b'i', // field 2, length-delimited
        0x19, 1, 2, 3, 4, 5, 6, 7, 8, // field 3, fixed64
        0x25, 1, 2, 3, 4, // field 4, fixed32
        0x08, 2, // status NOT_SERVING
        0x28, 0x96, 0x01, // field 5, varint 150
        0x08, 1, // status SERVING
    ];
    let mut framed = vec![0, 0, 0, 0, message.len() as u8];
    framed.extend_from_slice(&message);
    assert_eq!(check_response(&framed), Ok(ServingStatus::SERVING));
    // trailing bytes after the first message are not read
    assert_eq!(
        check_response(&[0, 0, 0, 0, 2, 0x08, 3, 0xff]).map(ServingStatus::name),
        Ok("SERVICE_UNKNOWN".to_owned())
    );
    assert_eq!(ServingStatus(9).name(), "9");
}

#[test]
fn bad_responses_are_typed_errors() {
    assert_eq!(check_response(&[]), Err(HealthProtoError::Empty));
    assert_eq!(check_response(&[0, 0, 0]), Err(HealthProtoError::Truncated));
    assert_eq!(
        check_response(&[0, 0, 0, 0, 3, 0x08, 1]),
        Err(HealthProtoError::Truncated)
    );
    assert_eq!(
        check_response(&[1, 0, 0, 0, 2, 0x08, 1]),
        Err(HealthProtoError::Compressed)
    );
    assert_eq!(
        check_response(&[0, 0, 1, 0, 0]),
        Err(HealthProtoError::TooLarge(65536))
    );
    // wire type 3 (groups) is not used by the message
    assert_eq!(
        check_response(&[0, 0, 0, 0, 2, 0x0b, 1]),
        Err(HealthProtoError::Malformed)
    );
    // a varint that never ends
    assert_eq!(
        check_response(&[0, 0, 0, 0, 2, 0x08, 0x80]),
        Err(HealthProtoError::Truncated)
    );
    let endless = [0x80u8; 11];
    let mut framed = vec![0, 0, 0, 0, 12, 0x08];
    framed.extend_from_slice(&endless);
    assert_eq!(check_response(&framed), Err(HealthProtoError::Malformed));
    // a length-delimited field longer than the message
    assert_eq!(
        check_response(&[0, 0, 0, 0, 3, 0x12, 5, b'x']),
        Err(HealthProtoError::Truncated)
    );
}

#[test]
fn codes_print_as_grpc_names_them() {
    assert_eq!(code_name(0), "OK");
    assert_eq!(code_name(5), "NotFound");
    assert_eq!(code_name(CODE_UNIMPLEMENTED), "Unimplemented");
    assert_eq!(code_name(16), "Unauthenticated");
    assert_eq!(code_name(42), "Code(42)");
    assert_eq!(code_of_http_status(404), CODE_UNIMPLEMENTED);
    assert_eq!(code_of_http_status(503), CODE_UNAVAILABLE);
    assert_eq!(code_of_http_status(401), 16);
    assert_eq!(code_of_http_status(500), 2);
}

#[test]
fn grpc_messages_are_percent_decoded() {
    assert_eq!(percent_decode("unknown%20service"), "unknown service");
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz%4"), "%zz%4");
    assert_eq!(percent_decode("caf%C3%A9"), "café");
}

#[test]
fn durations_print_as_go_prints_them() {
    assert_eq!(go_duration(Duration::from_secs(1)), "1s");
    assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
    assert_eq!(grpc_timeout(Duration::from_millis(999)), "999m");
    assert_eq!(grpc_timeout(Duration::ZERO), "1m");
}
