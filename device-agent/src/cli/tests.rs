#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn flags_override_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "device_id = \"from-file\"\nbroker_urls = [\"mqtt://a:1\"]\n[tls]\nca_file = \"ca.pem\"\n",
    )
    .unwrap();
    let cli = Cli::try_parse_from([
        "edge-agent",
        "run",
        "--config",
        path.to_str().unwrap(),
        "--device-id",
        "flag-id",
        "--heartbeat-interval",
        "1s",
        "--label",
        "site=lab",
        "--broker-url",
        "mqtt://b:2",
        "--broker-url",
        "mqtt://c:3",
    ])
    .unwrap();
    let Some(Command::Run(args)) = cli.command else {
        panic!("not run")
    };
    let cfg = args.resolve().unwrap();
    assert_eq!(cfg.device_id.as_str(), "flag-id");
    assert_eq!(cfg.heartbeat_interval, Duration::from_secs(1));
    assert_eq!(cfg.brokers.len(), 2);
    assert_eq!(cfg.labels["site"], "lab");
    assert_eq!(cfg.tls.ca_file.unwrap(), dir.path().join("ca.pem"));
}

#[test]
fn missing_explicit_config_is_an_error() {
    let args = RunArgs {
        config: Some("/nonexistent/agent.toml".into()),
        ..Default::default()
    };
    assert!(matches!(args.resolve(), Err(ConfigError::Read { .. })));
}

#[test]
fn the_ota_directory_and_key_come_from_the_file_or_flags_else_the_ota_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(
        &path,
        "device_id = \"d\"\nbroker_urls = [\"mqtt://a:1\"]\nota_dir = \"/file/ota\"\nota_public_key = \"/file/key.pub\"\n",
    )
    .unwrap();
    let parse = |extra: &[&str]| {
        let mut argv = vec!["edge-agent", "run", "--config", path.to_str().unwrap()];
        argv.extend_from_slice(extra);
        let Some(Command::Run(args)) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not run")
        };
        args.resolve().unwrap().ota
    };
    let ota = parse(&[]);
    assert_eq!(ota.dir, PathBuf::from("/file/ota"));
    assert_eq!(ota.public_key, PathBuf::from("/file/key.pub"));
    let ota = parse(&["--ota-dir", "/flag/ota", "--ota-public-key", "/flag/k.pub"]);
    assert_eq!(ota.dir, PathBuf::from("/flag/ota"));
    assert_eq!(ota.public_key, PathBuf::from("/flag/k.pub"));
    std::fs::write(&path, "device_id = \"d\"\nbroker_urls = [\"mqtt://a:1\"]\n").unwrap();
    let ota = parse(&[]);
    assert_eq!(
        ota.dir,
        PathBuf::from(crate::ota::cli_args::DEFAULT_OTA_DIR)
    );
    assert_eq!(
        ota.public_key,
        PathBuf::from(crate::ota::cli_args::DEFAULT_PUBLIC_KEY)
    );
}
