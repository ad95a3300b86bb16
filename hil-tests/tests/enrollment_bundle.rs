//! Enrollment end to end through the CLI entry points the gateway binary uses:
//! the bundle's certificate has CN = device id and chains to the fleet CA (checked with
//! `openssl`), keys are 0600, the CA key never appears in output or in a bundle,
//! re-enrollment and revocation behave, and superseded/revoked certificates reach the CRL.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Parser;
use edge_gateway::enrollment::cli::{
    BrokerConfigArgs, EnrollArgs, RevokeArgs, broker_config, enroll, revoke,
};
use edge_gateway::enrollment::{EnrollmentLayout, RevocationList};
use edge_protocol::DeviceId;

#[derive(Parser)]
struct Enroll {
    #[command(flatten)]
    args: EnrollArgs,
}
#[derive(Parser)]
struct Revoke {
    #[command(flatten)]
    args: RevokeArgs,
}
#[derive(Parser)]
struct BrokerConfig {
    #[command(flatten)]
    args: BrokerConfigArgs,
}

fn enroll_args(store: &Path, id: &str, out: &Path, extra: &[&str]) -> EnrollArgs {
    let mut argv = vec![
        "enroll".to_string(),
        id.to_string(),
        "--store-dir".into(),
        store.display().to_string(),
        "--out-dir".into(),
        out.display().to_string(),
        "--broker-url".into(),
        "mqtts://gw.example.com:8883".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Enroll::try_parse_from(argv).unwrap().args
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().expect(
        "openssl not found: install the Debian package openssl (scripts/install-test-deps.sh)",
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", path.as_ref().display()))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn enroll_writes_a_bundle_that_chains_to_the_fleet_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let bundle: PathBuf = tmp.path().join("pi-01-bundle");
    let mut out = Vec::new();
    let args = enroll_args(
        &store,
        "pi-01",
        &bundle,
        &["--label", "site=lab", "--label", "example.com/rack=r1"],
    );
    let returned = enroll(&args, &mut out).unwrap();
    assert_eq!(returned, bundle);
    let output = String::from_utf8(out).unwrap();

    let layout = EnrollmentLayout::new(&store);
    // The CA was created on first use, its key 0600 and never printed nor bundled.
    assert!(output.contains("created the fleet CA"), "{output}");
    assert_eq!(mode(&layout.ca_key()), 0o600);
    let ca_key = read(layout.ca_key());
    assert!(ca_key.contains("PRIVATE KEY"));
    let key_body: String = ca_key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!output.contains("PRIVATE KEY") && !output.contains(&key_body[50..90]));
    for f in ["agent.toml", "ca.pem", "device.pem", "device.key"] {
        let text = read(bundle.join(f));
        assert!(!text.contains(&key_body[50..90]), "CA key leaked into {f}");
    }

    // Bundle files and modes.
    assert_eq!(mode(&bundle.join("device.key")), 0o600);
    assert_eq!(mode(&bundle.join("device.pem")), 0o644);
    assert_eq!(read(bundle.join("ca.pem")), read(layout.ca_cert()));

    // CN = device id, chains to the fleet CA, is a TLS client certificate.
    let (ok, subject) = openssl(&[
        "x509",
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
        "-in",
        &s(&bundle.join("device.pem")),
    ]);
    assert!(ok, "{subject}");
    assert!(subject.trim().starts_with("subject=CN=pi-01,"), "{subject}");
    let (ok, verify) = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        &s(&layout.ca_cert()),
        &s(&bundle.join("device.pem")),
    ]);
    assert!(
        ok,
        "device certificate does not chain to the fleet CA: {verify}"
    );
    // The key in the bundle belongs to the certificate.
    let (_, cert_pub) = openssl(&[
        "x509",
        "-noout",
        "-pubkey",
        "-in",
        &s(&bundle.join("device.pem")),
    ]);
    let (_, key_pub) = openssl(&["pkey", "-pubout", "-in", &s(&bundle.join("device.key"))]);
    assert_eq!(cert_pub, key_pub);
    // A certificate from another CA does not verify against this one (the check can fail).
    let other = tempfile::tempdir().unwrap();
    let mut sink = Vec::new();
    enroll(
        &enroll_args(
            &other.path().join("s"),
            "pi-01",
            &other.path().join("b"),
            &[],
        ),
        &mut sink,
    )
    .unwrap();
    let (ok, _) = openssl(&[
        "verify",
        "-CAfile",
        &s(&layout.ca_cert()),
        &s(&other.path().join("b/device.pem")),
    ]);
    assert!(!ok, "a foreign certificate verified against our CA");

    // agent.toml: the agent's configuration format.
    let toml = read(bundle.join("agent.toml"));
    for line in [
        "device_id = \"pi-01\"",
        "broker_urls = [\"mqtts://gw.example.com:8883\"]",
        "state_dir = \"/var/lib/edge-agent\"",
        "runtime_socket = \"unix:///var/run/docker.sock\"",
        "heartbeat_interval_seconds = 10",
        "[tls]",
        "ca_file = \"/etc/edge-agent/ca.pem\"",
        "cert_file = \"/etc/edge-agent/device.pem\"",
        "key_file = \"/etc/edge-agent/device.key\"",
        "[labels]",
        "site = \"lab\"",
        "\"example.com/rack\" = \"r1\"",
    ] {
        assert!(
            toml.lines().any(|l| l == line),
            "missing {line:?} in\n{toml}"
        );
    }

    // A second device reuses the same CA.
    let ca_before = read(layout.ca_cert());
    let mut out2 = Vec::new();
    enroll(
        &enroll_args(&store, "pi-02", &tmp.path().join("b2"), &[]),
        &mut out2,
    )
    .unwrap();
    assert!(
        !String::from_utf8(out2)
            .unwrap()
            .contains("created the fleet CA")
    );
    assert_eq!(read(layout.ca_cert()), ca_before);
    let (ok, verify) = openssl(&[
        "verify",
        "-CAfile",
        &s(&layout.ca_cert()),
        &s(&tmp.path().join("b2/device.pem")),
    ]);
    assert!(ok, "{verify}");
}

#[test]
fn bad_input_is_refused_and_nothing_is_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let bundle = tmp.path().join("bundle");
    let mut out = Vec::new();

    // Invalid device id, label, broker URL: refused before anything is written.
    for (id, extra) in [
        ("Pi_01", vec![]),
        ("pi-01", vec!["--label", "kubernetes.io/arch=amd64"]),
        ("pi-01", vec!["--broker-url", "http://x"]),
    ] {
        let err = enroll(&enroll_args(&store, id, &bundle, &extra), &mut out).unwrap_err();
        assert!(!err.to_string().is_empty());
        assert!(!store.exists(), "store written despite bad input: {err}");
    }

    enroll(&enroll_args(&store, "pi-01", &bundle, &[]), &mut out).unwrap();
    let key = read(bundle.join("device.key"));
    // Enrolling again: refused without --reissue, and an existing bundle is never overwritten.
    let err = enroll(
        &enroll_args(&store, "pi-01", &tmp.path().join("b2"), &[]),
        &mut out,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--reissue"), "{err}");
    let err = enroll(
        &enroll_args(&store, "pi-01", &bundle, &["--reissue"]),
        &mut out,
    )
    .unwrap_err();
    assert!(err.to_string().contains("device.key"), "{err}");
    assert_eq!(read(bundle.join("device.key")), key);
}

#[test]
fn reissue_and_revoke_reach_the_crl_and_the_revocation_list() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let mut out = Vec::new();
    enroll(
        &enroll_args(&store, "pi-01", &tmp.path().join("a1"), &[]),
        &mut out,
    )
    .unwrap();
    enroll(
        &enroll_args(&store, "pi-01", &tmp.path().join("a2"), &["--reissue"]),
        &mut out,
    )
    .unwrap();
    enroll(
        &enroll_args(&store, "pi-02", &tmp.path().join("b"), &[]),
        &mut out,
    )
    .unwrap();
    enroll(
        &enroll_args(&store, "pi-03", &tmp.path().join("c"), &[]),
        &mut out,
    )
    .unwrap();

    let revoke_args = Revoke::try_parse_from(["revoke", "pi-02", "--store-dir", &s(&store)])
        .unwrap()
        .args;
    revoke(&revoke_args, &mut out).unwrap();
    revoke(&revoke_args, &mut out).unwrap(); // idempotent
    let list = RevocationList::load(&store).unwrap();
    assert!(list.contains(&DeviceId::new("pi-02").unwrap()));
    assert!(!list.contains(&DeviceId::new("pi-01").unwrap()));
    assert_eq!(list.len(), 1);
    let revoked_txt = read(EnrollmentLayout::new(&store).revoked_list());
    assert!(revoked_txt.lines().any(|l| l == "pi-02"), "{revoked_txt}");

    // A revoked id cannot be enrolled again.
    let err = enroll(
        &enroll_args(&store, "pi-02", &tmp.path().join("b2"), &["--reissue"]),
        &mut out,
    )
    .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");

    let conf_dir = tmp.path().join("mosquitto");
    let args = BrokerConfig::try_parse_from([
        "broker-config",
        "mosquitto",
        "--store-dir",
        &s(&store),
        "--out-dir",
        &s(&conf_dir),
    ])
    .unwrap()
    .args;
    let mut bout = Vec::new();
    broker_config(&args, &mut bout).unwrap();
    let crl = conf_dir.join("crl.pem");
    let (ok, crl_text) = openssl(&[
        "crl",
        "-noout",
        "-text",
        "-CAfile",
        &s(&conf_dir.join("ca.pem")),
        "-in",
        &s(&crl),
    ]);
    assert!(ok, "{crl_text}");
    assert!(
        crl_text.contains("verify OK") || crl_text.contains("Certificate Revocation List"),
        "{crl_text}"
    );
    let serial = |p: PathBuf| {
        let (_, text) = openssl(&["x509", "-noout", "-serial", "-in", &s(&p)]);
        text.trim().trim_start_matches("serial=").to_uppercase()
    };
    let crl_upper = crl_text.to_uppercase();
    let in_crl = |serial: &str| crl_upper.contains(&format!("SERIAL NUMBER: {serial}"));
    assert!(
        in_crl(&serial(tmp.path().join("a1/device.pem"))),
        "superseded cert {} missing:\n{crl_text}",
        serial(tmp.path().join("a1/device.pem"))
    );
    assert!(
        in_crl(&serial(tmp.path().join("b/device.pem"))),
        "revoked cert missing:\n{crl_text}"
    );
    assert!(
        !in_crl(&serial(tmp.path().join("a2/device.pem"))),
        "current cert listed:\n{crl_text}"
    );
    assert!(
        !in_crl(&serial(tmp.path().join("c/device.pem"))),
        "unrevoked cert listed:\n{crl_text}"
    );
    // openssl agrees: the revoked certificate fails a CRL check, a good one passes.
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &s(&conf_dir.join("ca.pem")),
        "-CRLfile",
        &s(&crl),
        &s(&tmp.path().join("b/device.pem")),
    ]);
    assert!(!ok && text.contains("revoked"), "{text}");
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &s(&conf_dir.join("ca.pem")),
        "-CRLfile",
        &s(&crl),
        &s(&tmp.path().join("c/device.pem")),
    ]);
    assert!(ok, "{text}");
    // Server key 0600; the gateway identity is a client cert of the same CA.
    assert_eq!(mode(&conf_dir.join("server.key")), 0o600);
    let layout = EnrollmentLayout::new(&store);
    assert_eq!(mode(&layout.gateway_key()), 0o600);
    let (ok, text) = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        &s(&layout.ca_cert()),
        &s(&layout.gateway_cert()),
    ]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        &s(&layout.ca_cert()),
        &s(&conf_dir.join("server.pem")),
    ]);
    assert!(ok, "{text}");
    let printed = String::from_utf8(bout).unwrap();
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
}

/// The `edge-gateway` binary exposes the three subcommands (the wiring of the contract).
#[test]
fn the_gateway_binary_runs_enroll_revoke_and_broker_config() {
    let bin = PathBuf::from(std::env::var_os("EDGE_TEST_BIN_DIR").expect(
        "EDGE_TEST_BIN_DIR is not set: run `cargo build --workspace --bins` and export EDGE_TEST_BIN_DIR=target/debug",
    ))
    .join("edge-gateway");
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let gateway = |args: &[&str]| {
        let out = Command::new(&bin)
            .args(args)
            .env("EDGE_GATEWAY_STORE_DIR", &store)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let bundle = tmp.path().join("bundle");
    let (ok, out) = gateway(&[
        "enroll",
        "pi-bin",
        "--broker-url",
        "mqtts://gw:8883",
        "--out-dir",
        &s(&bundle),
    ]);
    assert!(ok, "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    assert_eq!(mode(&bundle.join("device.key")), 0o600);
    let (ok, out) = gateway(&["revoke", "pi-bin"]);
    assert!(ok, "{out}");
    assert!(
        RevocationList::load(&store)
            .unwrap()
            .contains(&DeviceId::new("pi-bin").unwrap())
    );
    let conf_dir = tmp.path().join("mq");
    let (ok, out) = gateway(&["broker-config", "mosquitto", "--out-dir", &s(&conf_dir)]);
    assert!(ok, "{out}");
    assert!(read(conf_dir.join("mosquitto.conf")).contains("require_certificate true"));
    let (ok, out) = gateway(&[
        "enroll",
        "Not_Valid",
        "--broker-url",
        "mqtts://gw:8883",
        "--out-dir",
        &s(&tmp.path().join("never")),
    ]);
    assert!(!ok && out.contains("DNS-1123"), "{out}");
}
