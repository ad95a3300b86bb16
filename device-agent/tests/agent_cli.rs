//! The command line contract: default config, help, install, clear errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::agent_binary;
use edge_agent::config::{AgentConfig, ConfigFile};

fn agent(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(agent_binary())
        .args(args)
        .env_remove("EDGE_AGENT_DEVICE_ID")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn print_default_config_is_a_valid_commented_file() {
    let (ok, out, _) = agent(&["--print-default-config"]);
    assert!(ok);
    assert!(out.contains("# "), "commented");
    let cfg = AgentConfig::from_file(ConfigFile::parse(&out).unwrap()).unwrap();
    assert_eq!(cfg.device_id.as_str(), "pi-01");
    assert_eq!(
        cfg.state_dir,
        std::path::PathBuf::from("/var/lib/edge-agent")
    );
}

#[test]
fn help_explains_every_flag() {
    let (ok, out, _) = agent(&["run", "--help"]);
    assert!(ok);
    for flag in [
        "--config",
        "--device-id",
        "--broker-url",
        "--state-dir",
        "--runtime-socket",
        "--heartbeat-interval",
        "--label",
        "--tls-ca-file",
        "--tls-cert-file",
        "--tls-key-file",
        "EDGE_AGENT_DEVICE_ID",
    ] {
        assert!(out.contains(flag), "{flag} missing from run --help:\n{out}");
    }
    let (ok, out, _) = agent(&["--help"]);
    assert!(ok);
    for word in ["run", "install", "--print-default-config"] {
        assert!(out.contains(word), "{word} missing from --help");
    }
}

#[test]
fn bad_configuration_fails_with_a_clear_message() {
    let (ok, _, err) = agent(&[
        "run",
        "--device-id",
        "Not_Valid",
        "--broker-url",
        "mqtt://h:1",
    ]);
    assert!(!ok);
    assert!(err.contains("lower-case"), "{err}");
    let (ok, _, err) = agent(&["run", "--config", "/nonexistent/agent.toml"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent/agent.toml"), "{err}");
    let (ok, _, err) = agent(&[
        "run",
        "--device-id",
        "pi-1",
        "--broker-url",
        "mqtts://h:8883",
    ]);
    assert!(!ok);
    assert!(err.contains("ca_file"), "{err}");
}

#[test]
fn install_copies_the_bundle_with_a_private_key() {
    let bundle = tempfile::tempdir().unwrap();
    let prefix = tempfile::tempdir().unwrap();
    std::fs::write(
        bundle.path().join("agent.toml"),
        "device_id = \"pi-07\"\nbroker_urls = [\"mqtts://gw.example:8883\"]\n[tls]\nca_file = \"/etc/edge-agent/ca.pem\"\ncert_file = \"/etc/edge-agent/device.pem\"\nkey_file = \"/etc/edge-agent/device.key\"\n",
    )
    .unwrap();
    for f in ["ca.pem", "device.pem", "device.key"] {
        std::fs::write(bundle.path().join(f), format!("-- {f} --")).unwrap();
    }
    let (ok, out, err) = agent(&[
        "install",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--prefix",
        prefix.path().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("installed"), "{out}");
    let etc = prefix.path().join("etc/edge-agent");
    for f in ["agent.toml", "ca.pem", "device.pem", "device.key"] {
        assert!(etc.join(f).exists(), "{f}");
    }
    let mode = std::fs::metadata(etc.join("device.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (ok, _, err) = agent(&[
        "install",
        "--bundle",
        "/nonexistent-bundle",
        "--prefix",
        prefix.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("edge-gateway enroll"), "{err}");
}
