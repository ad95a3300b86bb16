//! `Topic::parse` on any string (see fuzz/oracles/protocol.rs).
#![no_main]

// Each target uses part of the shared checks.
#[allow(dead_code)]
#[path = "../oracles/protocol.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check_topic(data));
