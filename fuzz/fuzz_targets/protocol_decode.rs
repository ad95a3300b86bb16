//! `Message::decode` and `Message::decode_on` on any bytes (see fuzz/oracles/protocol.rs).
#![no_main]

// Each target uses part of the shared checks.
#[allow(dead_code)]
#[path = "../oracles/protocol.rs"]
mod oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracle::check_decode(data));
