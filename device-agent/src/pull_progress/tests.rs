use super::*;

fn line(t: &mut PullTally, layer: &str, status: &str, c: i64, tot: i64) -> Option<PullProgress> {
    t.observe(Some(layer), Some(status), Some(c), Some(tot))
}

#[test]
fn sums_downloading_layers_and_counts_finished_ones_in_full() {
    let mut t = PullTally::default();
    assert_eq!(
        t.observe(Some("a"), Some("Pulling fs layer"), None, None),
        None
    );
    assert_eq!(
        line(&mut t, "a", "Downloading", 100, 1000),
        Some(PullProgress {
            bytes_done: 100,
            bytes_total: 1000
        })
    );
    line(&mut t, "b", "Downloading", 50, 500);
    assert_eq!(
        t.progress(),
        PullProgress {
            bytes_done: 150,
            bytes_total: 1500
        }
    );
    // b finishes without a last Downloading line at 500
    assert_eq!(
        t.observe(Some("b"), Some("Download complete"), None, None),
        Some(PullProgress {
            bytes_done: 600,
            bytes_total: 1500
        })
    );
    // extraction's own counters are not download bytes
    assert_eq!(line(&mut t, "b", "Extracting", 7, 9999), None);
    assert_eq!(t.progress().bytes_total, 1500);
    line(&mut t, "a", "Downloading", 1000, 1000);
    assert_eq!(
        t.progress(),
        PullProgress {
            bytes_done: 1500,
            bytes_total: 1500
        }
    );
}

#[test]
fn a_runtime_without_progress_details_reports_nothing() {
    let mut t = PullTally::default();
    for status in [
        "Trying to pull 127.0.0.1:5000/x:1...",
        "Getting image source signatures",
        "Copying blob sha256:abc",
        "Writing manifest to image destination",
    ] {
        assert_eq!(t.observe(None, Some(status), None, None), None);
        assert_eq!(t.observe(Some("abc"), Some(status), None, None), None);
    }
    assert_eq!(
        t.observe(Some("abc"), Some("Downloading"), None, None),
        None
    );
    assert_eq!(t.progress(), PullProgress::default());
}

#[test]
fn layers_already_present_and_bad_numbers_do_not_count() {
    let mut t = PullTally::default();
    assert_eq!(line(&mut t, "a", "Already exists", 0, 0), None);
    assert_eq!(line(&mut t, "b", "Downloading", -5, -1), None);
    // current beyond total is capped
    line(&mut t, "c", "Downloading", 20, 10);
    assert_eq!(
        t.progress(),
        PullProgress {
            bytes_done: 10,
            bytes_total: 10
        }
    );
    // repeated same numbers: no change reported
    assert_eq!(line(&mut t, "c", "Downloading", 20, 10), None);
}
