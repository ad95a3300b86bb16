use std::time::Duration;

use crate::config::{ConfigError, GatewayConfig, RunArgs};
use crate::sharding::lease_name;

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn parse(args: &[&str]) -> Result<GatewayConfig, ConfigError> {
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once("edge-gateway").chain(args.iter().copied()))
        .expect("flags parse");
    GatewayConfig::try_from(cli.run)
}

const EXTERNAL: &[&str] = &["--broker-url", "mqtt://127.0.0.1:1883"];

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    EXTERNAL.iter().chain(extra).copied().collect()
}

#[test]
fn without_a_replica_id_the_gateway_is_alone() {
    assert_eq!(parse(EXTERNAL).expect("valid").shard, None);
}

#[test]
fn a_replica_gets_its_id_namespace_and_the_default_timings() {
    let shard = parse(&with(&[
        "--replica-id",
        "edge-gateway-1",
        "--shard-namespace",
        "edge",
    ]))
    .expect("valid")
    .shard
    .expect("sharded");
    assert_eq!(shard.replica, "edge-gateway-1");
    assert_eq!(shard.namespace, "edge");
    assert_eq!(shard.timings.lease_duration, Duration::from_secs(15));
    assert_eq!(shard.timings.renew_deadline, Duration::from_secs(10));
    assert_eq!(shard.timings.renew_interval, Duration::from_secs(2));
    assert_eq!(
        shard.mqtt_client_id("edge-gateway"),
        "edge-gateway-edge-gateway-1"
    );
}

#[test]
fn a_replica_needs_an_external_broker() {
    let err = parse(&["--replica-id", "a"]).expect_err("embedded broker refused");
    assert!(err.to_string().contains("--broker-url"), "{err}");
}

#[test]
fn bad_ids_and_timings_are_refused() {
    for bad in [
        "--replica-id=Edge_0",
        "--replica-id=-a",
        "--replica-id=",
        "--replica-id=a.b",
    ] {
        assert!(parse(&with(&[bad])).is_err(), "{bad:?}");
    }
    let err = parse(&with(&[
        "--replica-id",
        "a",
        "--shard-lease-duration",
        "10s",
        "--shard-renew-deadline",
        "10s",
    ]))
    .expect_err("deadline not shorter");
    assert!(err.to_string().contains("renew deadline"), "{err}");
    assert!(
        parse(&with(&[
            "--replica-id",
            "a",
            "--shard-renew-interval",
            "6s"
        ]))
        .is_err(),
        "interval over half the deadline"
    );
}

#[test]
fn lease_names_do_not_repeat_the_prefix() {
    assert_eq!(lease_name("edge-gateway-0"), "edge-gateway-0");
    assert_eq!(lease_name("a"), "edge-gateway-a");
}

#[test]
fn a_replica_does_not_enroll_devices() {
    let err = parse(&with(&["--replica-id", "a", "--enrollment"]))
        .expect_err("enrollment on a replica refused");
    assert!(err.to_string().contains("--enrollment"), "{err}");
    assert!(parse(&with(&["--enrollment"])).is_ok());
}
