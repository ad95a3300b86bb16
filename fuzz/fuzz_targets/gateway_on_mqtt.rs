//! The gateway's MQTT entry point, `mqtt_link::dispatch` (decoding, then the fleet), on
//! any topic and payload (see fuzz/oracles/gateway.rs). One fleet for the whole run, so messages build on each other
//! (a hello, then status reports for that device, ...).
#![no_main]

use std::sync::OnceLock;

#[path = "../oracles/gateway.rs"]
mod oracle;

static HARNESS: OnceLock<oracle::GatewayHarness> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HARNESS.get_or_init(oracle::GatewayHarness::new).feed(data);
});
