//! Every input of the protocol fuzz corpora and every crash reproducer
//! (`fuzz/corpus/{protocol_decode,topic_parse}/`, `fuzz/regressions/...`) through the
//! same checks the cargo-fuzz targets run (`fuzz/oracles/protocol.rs`), on the stable
//! toolchain, so the test command keeps them fixed. docs/reliability.md#fuzzing.

#[path = "../../fuzz/oracles/corpus.rs"]
mod corpus;
#[path = "../../fuzz/oracles/protocol.rs"]
mod oracle;

use corpus::inputs;

fn run_all(target: &str, check: fn(&[u8])) {
    let mut failed = Vec::new();
    let all = inputs(target);
    for (path, bytes) in &all {
        if std::panic::catch_unwind(|| check(bytes)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} {target} inputs fail: {failed:?}",
        failed.len(),
        all.len()
    );
}

#[test]
fn protocol_decode_corpus_and_regressions_pass() {
    run_all("protocol_decode", oracle::check_decode);
}

#[test]
fn topic_parse_corpus_and_regressions_pass() {
    run_all("topic_parse", oracle::check_topic);
}
