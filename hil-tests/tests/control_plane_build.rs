//! The real control plane of the test bed: `scripts/build-control-plane.sh` (and
//! `scripts/build-metrics-server.sh`, built the same way) says what to install when Go or
//! the module proxy is missing (never a silent skip), and what it built is the release
//! `hil-tests/controlplane/go.mod` pins, as `kubectl version` shows.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_hil_tests::controlplane::ControlPlane;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Go builds of the test bed: script and the directory under the target dir it
/// builds into.
const BUILD_SCRIPTS: [(&str, &str); 2] = [
    ("build-control-plane.sh", "controlplane"),
    ("build-metrics-server.sh", "metrics-server"),
];

fn run_script(name: &str, envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new("bash");
    c.arg(root().join("scripts").join(name));
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// `k8s.io/kubernetes vX.Y.Z` from the pinned go.mod.
fn pinned_version() -> String {
    let gomod = std::fs::read_to_string(root().join("hil-tests/controlplane/go.mod")).unwrap();
    gomod
        .lines()
        .map(|l| l.trim().trim_start_matches("require ").trim())
        .find_map(|l| l.strip_prefix("k8s.io/kubernetes v"))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|v| format!("v{v}"))
        .expect("no k8s.io/kubernetes in hil-tests/controlplane/go.mod")
}

#[test]
fn a_missing_go_toolchain_stops_the_build_with_what_to_install() {
    for (name, _) in BUILD_SCRIPTS {
        let out = run_script(name, &[("GO", "/nonexistent/bin/go")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: exit 0 without Go: {err}");
        assert!(
            err.contains("the Go toolchain is missing") && err.contains("Install Go >= 1.26"),
            "{name}: {err}"
        );
    }
}

#[test]
fn an_unreachable_module_proxy_stops_the_build_with_what_to_set() {
    for (name, output) in BUILD_SCRIPTS {
        let tmp = tempfile::tempdir().unwrap();
        // A port nobody listens on; an empty module cache so the proxy would be needed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = format!("http://127.0.0.1:{port}");
        let modcache = tmp.path().join("modcache");
        let target = tmp.path().join("target");
        let out = run_script(
            name,
            &[
                ("GOPROXY", proxy.as_str()),
                ("GOMODCACHE", modcache.to_str().unwrap()),
                ("CARGO_TARGET_DIR", target.to_str().unwrap()),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{name}: exit 0 without a proxy: {err}"
        );
        assert!(
            err.contains("cannot reach the Go module proxy") && err.contains("GOPROXY"),
            "{name}: {err}"
        );
        assert!(
            !target.join(output).exists(),
            "{name}: a build dir was made for a build that did not happen"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_version_shows_the_pinned_upstream_release() {
    let cp = tokio::task::spawn_blocking(ControlPlane::shared)
        .await
        .unwrap()
        .unwrap();
    let json = cp.kubectl_admin(&["version", "-o", "json"]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let want = pinned_version();
    assert_eq!(v["serverVersion"]["gitVersion"], want.as_str(), "{json}");
    assert_eq!(v["clientVersion"]["gitVersion"], want.as_str(), "{json}");
    assert_eq!(cp.server_version(), format!("Kubernetes {want}"));
}
