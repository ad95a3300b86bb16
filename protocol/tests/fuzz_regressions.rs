//! Every input of the protocol fuzz corpora and every crash reproducer
//! (`fuzz/corpus/{protocol_decode,topic_parse}/`, `fuzz/regressions/...`) through the
//! same checks the cargo-fuzz targets run (`fuzz/oracles/protocol.rs`), on the stable
//! toolchain, so the test command keeps them fixed. docs/reliability.md#fuzzing.

#[path = "../../fuzz/oracles/protocol.rs"]
mod oracle;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// (file, bytes) of the target's corpus (must exist) and regressions (may be empty).
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let corpus = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: the fuzz corpus is part of the repository",
                corpus.display()
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if let Ok(dir) = std::fs::read_dir(fuzz_dir().join("regressions").join(target)) {
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
