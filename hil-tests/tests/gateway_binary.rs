//! The `edge-gateway` binary honours the CLI contract: `run` with the documented flags
//! writes the ready file once serving, serves /healthz and /metrics, and stops on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};

fn gateway_binary() -> PathBuf {
    let dir = std::env::var("EDGE_TEST_BIN_DIR").expect(
        "EDGE_TEST_BIN_DIR is not set: run `cargo build -p edge-gateway --bins` and \
         `eval \"$(bash scripts/test-env.sh)\"` (or export EDGE_TEST_BIN_DIR=target/debug)",
    );
    let bin = PathBuf::from(dir).join("edge-gateway");
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p edge-gateway --bins",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_writes_the_ready_file_and_serves() {
    let bin = gateway_binary();
    let dir = tempfile::tempdir().unwrap();
    let api = ApiServer::start(ApiServerConfig::new(dir.path().join("api")))
        .await
        .unwrap();
    let ready = dir.path().join("ready.json");
    let mut child = tokio::process::Command::new(&bin)
        .arg("run")
        .arg("--kubeconfig")
        .arg(api.kubeconfig_path())
        .arg("--store-dir")
        .arg(dir.path().join("store"))
        .args(["--mqtt-listen", "127.0.0.1:0"])
        .args(["--kubelet-listen", "127.0.0.1:0"])
        .arg("--kubelet-token-auth")
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--node-address", "127.0.0.1"])
        .args(["--node-lease-renew", "1s", "--device-timeout", "5s"])
        .arg("--kubelet-client-ca")
        .arg(api.kubelet_client_ca_path())
        .arg("--ready-file")
        .arg(&ready)
        .env("EDGE_GATEWAY_NO_TAINT", "false")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut json = None;
    for _ in 0..200 {
        if let Ok(text) = std::fs::read_to_string(&ready) {
            json = Some(serde_json::from_str::<serde_json::Value>(&text).unwrap());
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("edge-gateway exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let json = json.expect("ready file written within 20 s");
    let port = |k: &str| json[k].as_u64().unwrap_or_else(|| panic!("{k} in {json}"));
    let (mqtt, kubelet, metrics) = (
        port("mqtt_port"),
        port("kubelet_port"),
        port("metrics_port"),
    );
    assert!(mqtt > 0 && kubelet > 0 && metrics > 0);
    std::net::TcpStream::connect(("127.0.0.1", u16::try_from(mqtt).unwrap())).unwrap();
    let curl = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("curl")
            .args(&args)
            .output()
            .await
            .expect("curl is needed for this test (apt-get install curl)");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    // /healthz wants credentials, as on a kubelet: the admin's bearer token passes
    let kubeconfig = std::fs::read_to_string(api.kubeconfig_path()).unwrap();
    let token = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(|t| t.trim().trim_matches('"').to_owned())
        .expect("the emulator's kubeconfig has a bearer token");
    let healthz = format!("https://127.0.0.1:{kubelet}/healthz");
    assert!(
        curl(vec!["-sk".into(), healthz.clone()])
            .await
            .starts_with("Unauthorized")
    );
    assert_eq!(
        curl(vec![
            "-sk".into(),
            "-H".into(),
            format!("Authorization: Bearer {token}"),
            healthz
        ])
        .await,
        "ok"
    );
    let text = curl(vec![
        "-s".into(),
        format!("http://127.0.0.1:{metrics}/metrics"),
    ])
    .await;
    assert!(text.contains("edge_gateway_devices 0"), "{text}");
    let pid = child.id().unwrap();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("edge-gateway stops within 10 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn help_explains_every_flag_and_bad_flags_are_clear_errors() {
    let bin = gateway_binary();
    let out = std::process::Command::new(&bin)
        .args(["run", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kubeconfig",
        "--context",
        "--store-dir",
        "--mqtt-listen",
        "--broker-url",
        "--broker-ca",
        "--broker-cert",
        "--broker-key",
        "--kubelet-listen",
        "--kubelet-tls-cert",
        "--kubelet-tls-key",
        "--kubelet-client-ca",
        "--node-address",
        "--provider",
        "--no-taint",
        "--node-lease-renew",
        "--device-timeout",
        "--metrics-listen",
        "--log-filter",
        "--ready-file",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let out = std::process::Command::new(&bin)
        .args(["run", "--device-timeout", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid duration"), "{err}");
    let out = std::process::Command::new(&bin)
        .args([
            "run",
            "--node-address",
            "not-an-ip",
            "--store-dir",
            "/tmp/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be an IP address"));
}
