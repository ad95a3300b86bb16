//! The inputs a fuzz target's regression test replays: its committed corpus (which must
//! exist) and its crash reproducers (which may not), read in a stable order.
//!
//! Shared through `#[path]` by `protocol/tests/fuzz_regressions.rs` and
//! `gateway/tests/fuzz_regressions.rs` (both one folder below the repository root).

use std::path::{Path, PathBuf};

pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// (file, bytes) of the target's corpus (must exist) and regressions (may be empty).
pub fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
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
