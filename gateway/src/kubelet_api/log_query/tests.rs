use super::*;

#[test]
fn parses_every_parameter() {
    let q = LogQuery::parse(
            "tailLines=10&timestamps=true&follow=1&limitBytes=500&previous=false&sinceTime=2024-01-01T00%3A00%3A00Z",
        )
        .unwrap();
    assert_eq!(q.tail_lines, Some(10));
    assert!(q.timestamps && q.follow && !q.previous);
    assert_eq!(q.limit_bytes, Some(500));
    assert_eq!(q.since_time, Some(1_704_067_200_000));
    assert_eq!(
        LogQuery::parse("sinceSeconds=5").unwrap().since_seconds,
        Some(5)
    );
}

#[test]
fn rejects_bad_values() {
    assert!(LogQuery::parse("tailLines=-1").is_err());
    assert!(LogQuery::parse("limitBytes=0").is_err());
    assert!(LogQuery::parse("follow=maybe").is_err());
    assert!(LogQuery::parse("sinceTime=yesterday").is_err());
    assert_eq!(
        LogQuery::parse("sinceSeconds=1&sinceTime=2024-01-01T00:00:00Z"),
        Err(LogQueryError::BothSince)
    );
}
