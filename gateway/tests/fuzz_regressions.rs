//! Every input of the gateway fuzz corpus and every crash reproducer
//! (`fuzz/corpus/gateway_on_mqtt/`, `fuzz/regressions/gateway_on_mqtt/`) through the same
//! harness the cargo-fuzz target runs (`fuzz/oracles/gateway.rs`: `Fleet::on_mqtt` then
//! `Fleet::tick`), on the stable toolchain. docs/reliability.md#fuzzing.

#[path = "../../fuzz/oracles/gateway.rs"]
mod oracle;

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let corpus = fuzz.join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the fuzz corpus is part of the repository",
                corpus.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if let Ok(dir) = std::fs::read_dir(fuzz.join("regressions").join(target)) {
        files.extend(dir.filter_map(|e| e.ok().map(|e| e.path())));
    }
    files.sort();
    assert!(!files.is_empty(), "no inputs for {target}");
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, bytes)
        })
        .collect()
}

#[test]
fn gateway_on_mqtt_corpus_and_regressions_pass() {
    // One fleet for all inputs, as in the fuzz run: messages build on each other.
    let harness = oracle::GatewayHarness::new();
    let all = inputs("gateway_on_mqtt");
    let mut failed = Vec::new();
    for (path, bytes) in &all {
        let fed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| harness.feed(bytes)));
        if fed.is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs fail: {failed:?}",
        failed.len(),
        all.len()
    );
}
