use super::*;

#[test]
fn logs_once_per_source_and_window() {
    let mut log = RejectionLog::new(Duration::from_secs(60));
    let t0 = Instant::now();
    assert!(log.should_log("pi-01", t0));
    assert!(!log.should_log("pi-01", t0 + Duration::from_secs(1)));
    assert!(log.should_log("pi-02", t0 + Duration::from_secs(1)));
    assert!(log.should_log("pi-01", t0 + Duration::from_secs(61)));
}

#[test]
fn a_flood_of_invented_sources_stays_bounded() {
    let mut log = RejectionLog::new(Duration::from_secs(60));
    let t0 = Instant::now();
    let long = "x".repeat(10_000);
    for i in 0..50_000 {
        log.should_log(&format!("edge/v1/dev-{i}/{long}"), t0);
    }
    assert!(log.remembered() <= MAX_SOURCES);
    // known sources keep their rate limit; room frees up after the window
    assert!(!log.should_log("edge/v1/dev-1/x", t0));
    assert!(log.should_log("pi-01", t0 + Duration::from_secs(61)));
}
