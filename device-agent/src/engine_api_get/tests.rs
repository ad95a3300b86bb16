#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn parses_plain_and_chunked() {
    let (s, v) =
        parse_response(b"HTTP/1.0 200 OK\r\nContent-Type: json\r\n\r\n[{\"State\":\"stopped\"}]")
            .unwrap();
    assert_eq!(s, 200);
    assert_eq!(v[0]["State"], "stopped");
    let (s, v) = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n",
        )
        .unwrap();
    assert_eq!((s, v["a"].as_i64()), (404, Some(1)));
    assert!(parse_response(b"garbage").is_err());
}
