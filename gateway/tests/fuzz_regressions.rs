//! Every input of the gateway fuzz corpus and every crash reproducer
//! (`fuzz/corpus/gateway_on_mqtt/`, `fuzz/regressions/gateway_on_mqtt/`) through the same
//! harness the cargo-fuzz target runs (`fuzz/oracles/gateway.rs`: `mqtt_link::dispatch`
//! then `Fleet::tick`), on the stable toolchain. docs/reliability.md#fuzzing.

#[path = "../../fuzz/oracles/corpus.rs"]
mod corpus;
#[path = "../../fuzz/oracles/gateway.rs"]
mod oracle;

use corpus::inputs;

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
