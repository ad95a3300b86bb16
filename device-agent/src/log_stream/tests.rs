use super::*;

#[test]
fn options_follow_the_request() {
    let req = LogRequest {
        since_seconds: Some(60),
        tail_lines: Some(5),
        timestamps: true,
        follow: true,
        ..Default::default()
    };
    let o = read_options(&req, 1_000_000);
    assert_eq!(o.since, Some(940));
    assert_eq!(o.tail_lines, Some(5));
    assert!(o.follow && o.timestamps);
    let req = LogRequest {
        since_time: Some(5_000),
        since_seconds: Some(1),
        ..Default::default()
    };
    assert_eq!(read_options(&req, 1_000_000).since, Some(5));
}
