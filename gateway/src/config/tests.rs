use super::*;

#[test]
fn durations() {
    assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
    assert!(parse_duration("ten").is_err());
    assert!(parse_duration("1d").is_err());
}

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn parse(args: &[&str]) -> Result<GatewayConfig, ConfigError> {
    use clap::Parser;
    let cli =
        Cli::try_parse_from(std::iter::once("edge-gateway").chain(args.iter().copied())).unwrap();
    GatewayConfig::try_from(cli.run)
}

#[test]
fn embedded_broker_defaults_to_loopback() {
    let config = parse(&[]).unwrap();
    let BrokerConfig::Embedded {
        listen,
        insecure_listen,
    } = config.broker
    else {
        panic!("not embedded: {:?}", config.broker);
    };
    assert!(listen.ip().is_loopback(), "{listen}");
    assert!(!insecure_listen);
}

#[test]
fn embedded_broker_beyond_loopback_needs_the_insecure_flag() {
    let err = parse(&["--mqtt-listen", "0.0.0.0:1883"]).unwrap_err();
    assert!(err.to_string().contains("broker-config mosquitto"), "{err}");
    let config = parse(&[
        "--mqtt-listen",
        "0.0.0.0:1883",
        "--embedded-broker-insecure-listen",
    ])
    .unwrap();
    assert_eq!(
        config.broker,
        BrokerConfig::Embedded {
            listen: "0.0.0.0:1883".parse().unwrap(),
            insecure_listen: true
        }
    );
    // An external broker is not affected by --mqtt-listen.
    assert!(
        parse(&[
            "--mqtt-listen",
            "0.0.0.0:1883",
            "--broker-url",
            "mqtt://b:1883"
        ])
        .is_ok()
    );
}

#[test]
fn metrics_beyond_loopback_needs_the_insecure_flag() {
    assert!(parse(&[]).unwrap().metrics_listen.ip().is_loopback());
    let err = parse(&["--metrics-listen", "0.0.0.0:9464"]).unwrap_err();
    assert!(err.to_string().contains("nodes/metrics"), "{err}");
    let config = parse(&[
        "--metrics-listen",
        "0.0.0.0:9464",
        "--metrics-insecure-listen",
    ])
    .unwrap();
    assert_eq!(config.metrics_listen, "0.0.0.0:9464".parse().unwrap());
    assert!(config.metrics_insecure_listen);
}

#[test]
fn broker_urls() {
    assert_eq!(
        parse_broker_url("mqtt://localhost:1884").unwrap(),
        ("localhost".into(), 1884, false)
    );
    assert_eq!(
        parse_broker_url("mqtts://gw.example.com").unwrap(),
        ("gw.example.com".into(), 8883, true)
    );
    assert!(parse_broker_url("http://x:1").is_err());
    assert!(parse_broker_url("mqtt://:1").is_err());
}

#[test]
fn a_broker_cluster_is_every_node_comma_separated() {
    let config = parse(&["--broker-url", "mqtt://n1:1883, mqtt://n2:1884,mqtt://n3"]).unwrap();
    let BrokerConfig::External {
        host,
        port,
        failover,
        tls,
        ..
    } = config.broker
    else {
        panic!("not external: {:?}", config.broker);
    };
    assert_eq!((host.as_str(), port, tls), ("n1", 1883, false));
    assert_eq!(failover, [("n2".to_owned(), 1884), ("n3".to_owned(), 1883)]);
    // one scheme for every node: a cluster is either TLS or not
    assert!(matches!(
        parse(&["--broker-url", "mqtts://n1,mqtt://n2"]),
        Err(ConfigError::Invalid(_))
    ));
    assert!(matches!(
        parse(&["--broker-url", "mqtt://n1,http://n2"]),
        Err(ConfigError::BrokerUrl(_))
    ));
    assert!(matches!(
        parse(&["--broker-url", ","]),
        Err(ConfigError::BrokerUrl(_))
    ));
}
