#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn default_file_parses_and_validates() {
    let file = ConfigFile::parse(DEFAULT_CONFIG_TOML).unwrap();
    let cfg = AgentConfig::from_file(file).unwrap();
    assert_eq!(cfg.device_id.as_str(), "pi-01");
    assert_eq!(cfg.brokers[0].port, 8883);
    assert!(cfg.brokers[0].tls);
    assert_eq!(cfg.heartbeat_interval, Duration::from_secs(10));
    assert_eq!(cfg.timings, LifecycleTimings::default());
    assert_eq!(cfg.runtime_socket, DEFAULT_RUNTIME_SOCKET);
    assert_eq!(cfg.sandbox, SandboxSettings::default());
    assert_eq!(cfg.sandbox.image, DEFAULT_SANDBOX_IMAGE);
}

#[test]
fn contract_example_parses() {
    let text = r#"
device_id = "pi-01"
broker_urls = ["mqtts://gateway.example.com:8883"]
state_dir = "/var/lib/edge-agent"
runtime_socket = "unix:///var/run/docker.sock"
heartbeat_interval_seconds = 10
[tls]
ca_file = "/etc/edge-agent/ca.pem"
cert_file = "/etc/edge-agent/device.pem"
key_file = "/etc/edge-agent/device.key"
[labels]
site = "lab"
"#;
    let cfg = AgentConfig::from_file(ConfigFile::parse(text).unwrap()).unwrap();
    assert_eq!(cfg.labels.get("site").map(String::as_str), Some("lab"));
}

#[test]
fn errors_say_what_to_do() {
    let e = AgentConfig::from_file(ConfigFile::default()).unwrap_err();
    assert!(e.to_string().contains("--device-id"), "{e}");
    let f = ConfigFile {
        device_id: Some("a".into()),
        broker_urls: Some(vec!["mqtts://h".into()]),
        ..Default::default()
    };
    assert!(matches!(
        AgentConfig::from_file(f),
        Err(ConfigError::TlsMissing { .. })
    ));
    assert!(ConfigFile::parse("unknown_key = 1").is_err());
}

#[test]
fn broker_urls() {
    assert_eq!(
        BrokerUrl::parse("mqtt://127.0.0.1:1884").unwrap(),
        BrokerUrl {
            host: "127.0.0.1".into(),
            port: 1884,
            tls: false
        }
    );
    assert_eq!(BrokerUrl::parse("mqtt://h").unwrap().port, 1883);
    assert_eq!(BrokerUrl::parse("mqtts://[::1]:99").unwrap().host, "::1");
    for bad in ["h:1", "http://h:1", "mqtt://:1", "mqtt://h:x"] {
        assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
    assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(parse_duration("soon").is_err());
}

#[test]
fn log_tail_interval_defaults_to_a_minute_and_zero_turns_it_off() {
    let base = || ConfigFile::parse(DEFAULT_CONFIG_TOML).unwrap();
    let cfg = AgentConfig::from_file(ConfigFile {
        log_tail_interval_seconds: None,
        ..base()
    })
    .unwrap();
    assert_eq!(cfg.log_tail_interval, Some(Duration::from_secs(60)));
    let off = ConfigFile {
        log_tail_interval_seconds: Some(0.0),
        ..base()
    };
    assert_eq!(AgentConfig::from_file(off).unwrap().log_tail_interval, None);
    let short = ConfigFile {
        log_tail_interval_seconds: Some(2.0),
        ..base()
    };
    assert_eq!(
        AgentConfig::from_file(short).unwrap().log_tail_interval,
        Some(Duration::from_secs(2))
    );
    let negative = ConfigFile {
        log_tail_interval_seconds: Some(-1.0),
        ..base()
    };
    assert!(AgentConfig::from_file(negative).is_err());
}

#[test]
fn stats_are_sampled_every_15_seconds_unless_set_and_0_turns_them_off() {
    let with = |v: Option<u32>| {
        AgentConfig::from_file(ConfigFile {
            device_id: Some("a".into()),
            broker_urls: Some(vec!["mqtt://h".into()]),
            stats_interval_seconds: v,
            ..Default::default()
        })
        .unwrap()
        .stats_interval
    };
    assert_eq!(with(None), Some(Duration::from_secs(15)));
    assert_eq!(with(Some(5)), Some(Duration::from_secs(5)));
    assert_eq!(with(Some(0)), None);
}

#[test]
fn gpu_devices_and_request_mode() {
    use crate::gpu_request::GpuRequestMode;
    let base = || ConfigFile::parse(DEFAULT_CONFIG_TOML).unwrap();
    let cfg = AgentConfig::from_file(base()).unwrap();
    assert_eq!(cfg.gpu_devices, None, "detected unless configured");
    assert_eq!(cfg.gpu_request, GpuRequestMode::Auto);
    let set = AgentConfig::from_file(ConfigFile {
        gpu_devices: Some(vec![" GPU-1 ".into(), String::new(), "2".into()]),
        gpu_request: Some("cdi".into()),
        ..base()
    })
    .unwrap();
    assert_eq!(set.gpu_devices, Some(vec!["GPU-1".into(), "2".into()]));
    assert_eq!(set.gpu_request, GpuRequestMode::Cdi);
    let bad = AgentConfig::from_file(ConfigFile {
        gpu_request: Some("gpus".into()),
        ..base()
    })
    .unwrap_err();
    assert!(bad.to_string().contains("not a GPU request mode"), "{bad}");
}
