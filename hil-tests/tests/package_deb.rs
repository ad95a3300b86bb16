//! The agent's .deb (deploy/debian/build-deb.sh): contents, control fields, and a real
//! `dpkg -i` / `dpkg -r` / `dpkg -P` cycle.
//!
//! Isolation: dpkg runs with `--root=<tempdir>` (its own instdir and admindir, an empty
//! package database) and `--force-script-chrootless`, so the maintainer scripts run
//! without chroot with `DPKG_ROOT` set; they honour it and never call the host's
//! systemctl then. The host's dpkg database and files are not touched. The temporary
//! root has no libc6 registered, so the install of the dynamically linked test binary
//! passes `--force-depends` (the Depends line itself is checked).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn unit() -> PathBuf {
    let unit = repo().join("deploy/systemd/edge-agent.service");
    assert!(
        unit.is_file(),
        "the agent's systemd unit {} is missing",
        unit.display()
    );
    unit
}

fn host_agent() -> PathBuf {
    let dir = std::env::var_os("EDGE_TEST_BIN_DIR").map(PathBuf::from).expect(
        "EDGE_TEST_BIN_DIR is not set: run `cargo build --workspace --bins` and export EDGE_TEST_BIN_DIR=target/debug",
    );
    let bin = dir.join("edge-agent");
    assert!(
        bin.is_file(),
        "{} is missing: cargo build -p edge-agent",
        bin.display()
    );
    bin
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (install dpkg-dev: scripts/install-test-deps.sh)")
    });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn ok(cmd: &mut Command) -> String {
    let dbg = format!("{cmd:?}");
    let (success, out) = run(cmd);
    assert!(success, "{dbg} failed:\n{out}");
    out
}

fn build(arch: &str, binary: &Path, out_dir: &Path) -> (bool, String) {
    run(Command::new("bash")
        .arg(repo().join("deploy/debian/build-deb.sh"))
        .args(["--arch", arch, "--compression", "gzip", "--binary"])
        .arg(binary)
        .arg("--out-dir")
        .arg(out_dir)
        .arg("--unit")
        .arg(unit()))
}

fn dpkg(root: &Path, args: &[&str]) -> String {
    ok(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("dpkg.log").display()))
        .arg("--force-script-chrootless")
        .args(args))
}

fn fresh_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    root
}

#[test]
fn amd64_package_installs_and_removes_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (built, out) = build("amd64", &host_agent(), tmp.path());
    assert!(built, "{out}");
    let deb = PathBuf::from(out.trim().lines().last().unwrap());
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        "edge-agent_0.1.0_amd64.deb"
    );

    let field = |f: &str| {
        ok(Command::new("dpkg-deb").arg("-f").arg(&deb).arg(f))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "edge-agent");
    assert_eq!(field("Architecture"), "amd64");
    assert!(
        field("Depends").contains("libc6"),
        "dynamic binary without libc6 dependency"
    );
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/edge-agent",
        "./lib/systemd/system/edge-agent.service",
        "./etc/edge-agent/agent.toml",
        "./var/lib/edge-agent/",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{contents}"
        );
    }
    let info = ok(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(info.trim(), "/etc/edge-agent/agent.toml");

    // Install into the isolated root.
    let root = fresh_root(tmp.path());
    dpkg(&root, &["--force-depends", "-i", deb.to_str().unwrap()]);
    let status = dpkg(&root, &["-s", "edge-agent"]);
    assert!(status.contains("Status: install ok installed"), "{status}");
    let bin = root.join("usr/bin/edge-agent");
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(host_agent()).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    // The unit as shipped in deploy/systemd, plus a drop-in that runs the packaged
    // binary with the unit's own arguments.
    let installed_unit =
        std::fs::read_to_string(root.join("lib/systemd/system/edge-agent.service")).unwrap();
    assert_eq!(installed_unit, std::fs::read_to_string(unit()).unwrap());
    let drop_in = std::fs::read_to_string(
        root.join("lib/systemd/system/edge-agent.service.d/deb-binary-path.conf"),
    )
    .unwrap();
    let exec_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("ExecStart="))
            .map(|l| l.trim_start_matches(['-', '@', ':', '+', '!']).to_string())
            .collect()
    };
    let unit_exec = exec_lines(&installed_unit);
    let drop_in_exec = exec_lines(&drop_in);
    assert_eq!(drop_in_exec.len(), 2, "{drop_in}");
    assert_eq!(
        drop_in_exec[0], "",
        "the drop-in must reset ExecStart first"
    );
    let (unit_bin, unit_args) = unit_exec[0].split_once(' ').unwrap();
    let (drop_bin, drop_args) = drop_in_exec[1].split_once(' ').unwrap();
    assert!(unit_bin.ends_with("/edge-agent"), "{unit_bin}");
    assert_eq!(drop_bin, "/usr/bin/edge-agent");
    assert_eq!(
        drop_args, unit_args,
        "the drop-in's command line drifted from the unit's"
    );
    let wants = root.join("etc/systemd/system/multi-user.target.wants/edge-agent.service");
    assert_eq!(
        std::fs::read_link(&wants).unwrap(),
        PathBuf::from("/lib/systemd/system/edge-agent.service"),
        "postinst did not enable the unit"
    );
    let state = root.join("var/lib/edge-agent");
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let conf = root.join("etc/edge-agent/agent.toml");
    assert!(
        std::fs::read_to_string(&conf)
            .unwrap()
            .contains("state_dir = \"/var/lib/edge-agent\"")
    );

    // A bundle installed on the device, and local state.
    std::fs::write(root.join("etc/edge-agent/device.key"), "key").unwrap();
    std::fs::write(
        root.join("etc/edge-agent/agent.toml"),
        "device_id = \"pi-01\"\n",
    )
    .unwrap();
    std::fs::write(state.join("store.db"), "state").unwrap();

    // Remove: program and unit gone, service disabled; configuration and state kept.
    dpkg(&root, &["-r", "edge-agent"]);
    assert!(!bin.exists() && !root.join("lib/systemd/system/edge-agent.service").exists());
    assert!(
        std::fs::symlink_metadata(&wants).is_err(),
        "unit still enabled after remove"
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "device_id = \"pi-01\"\n"
    );
    assert!(
        state.join("store.db").exists(),
        "remove deleted the agent's state"
    );
    let status = dpkg(&root, &["-s", "edge-agent"]);
    assert!(
        status.contains("Status: deinstall ok config-files"),
        "{status}"
    );

    // Purge: configuration, device identity and state gone.
    dpkg(&root, &["-P", "edge-agent"]);
    assert!(
        !root.join("etc/edge-agent").exists(),
        "purge left /etc/edge-agent"
    );
    assert!(!state.exists(), "purge left the state directory");
    let (known, _) = run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-s", "edge-agent"]));
    assert!(!known, "the package is still known after purge");
}

#[test]
fn arm64_package_from_the_static_agent_and_wrong_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = std::env::var_os("EDGE_TEST_AGENT_AARCH64")
        .map(PathBuf::from)
        .expect("EDGE_TEST_AGENT_AARCH64 is not set (static aarch64 agent build)");
    let (built, out) = build("arm64", &agent, tmp.path());
    assert!(built, "{out}");
    let deb = PathBuf::from(out.trim().lines().last().unwrap());
    let control = ok(Command::new("dpkg-deb").arg("-f").arg(&deb));
    assert!(control.contains("Architecture: arm64"), "{control}");
    assert!(
        !control.contains("Depends:"),
        "a static binary needs no Depends:\n{control}"
    );

    // A binary of another architecture is refused with a clear message.
    let (built, out) = build("amd64", &agent, tmp.path());
    assert!(!built && out.contains("wrong architecture"), "{out}");
    let (built, out) = build("armhf", &host_agent(), tmp.path());
    assert!(!built && out.contains("wrong architecture"), "{out}");
}

fn armv7_agent() -> PathBuf {
    let path = std::env::var_os("EDGE_TEST_AGENT_ARMV7")
        .map(PathBuf::from)
        .expect(
            "EDGE_TEST_AGENT_ARMV7 is not set (static armv7 agent): \
         export EDGE_TEST_AGENT_ARMV7=$(bash scripts/build-agent-armv7.sh --profile armv7-test)",
        );
    assert!(
        path.is_file(),
        "EDGE_TEST_AGENT_ARMV7={} does not exist: bash scripts/build-agent-armv7.sh --profile armv7-test",
        path.display()
    );
    path
}

#[test]
fn armhf_package_from_the_static_armv7_agent_and_wrong_architecture() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = armv7_agent();
    let (built, out) = build("armhf", &agent, tmp.path());
    assert!(built, "{out}");
    let deb = PathBuf::from(out.trim().lines().last().unwrap());
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        "edge-agent_0.1.0_armhf.deb"
    );
    let info = ok(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains(" Architecture: armhf"), "{info}");
    assert!(
        !info.contains("Depends:"),
        "a static binary needs no Depends:\n{info}"
    );
    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for path in [
        "./usr/bin/edge-agent",
        "./lib/systemd/system/edge-agent.service",
        "./lib/systemd/system/edge-agent.service.d/deb-binary-path.conf",
        "./etc/edge-agent/agent.toml",
        "./var/lib/edge-agent/",
    ] {
        assert!(
            contents.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{contents}"
        );
    }
    // The packaged program is the armv7 agent, byte for byte, and it runs (qemu-arm).
    let unpacked = tmp.path().join("unpacked");
    ok(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked));
    let bin = unpacked.join("usr/bin/edge-agent");
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(&agent).unwrap());
    assert_eq!(
        std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let version = ok(Command::new("/usr/bin/qemu-arm-static")
        .arg(&bin)
        .arg("--version"));
    assert!(version.starts_with("edge-agent "), "{version}");

    // The armv7 binary is no arm64 or amd64 package, and no other binary is armhf.
    let (built, out) = build("arm64", &agent, tmp.path());
    assert!(!built && out.contains("wrong architecture"), "{out}");
    let (built, out) = build("amd64", &agent, tmp.path());
    assert!(!built && out.contains("wrong architecture"), "{out}");
    let aarch64 = std::env::var_os("EDGE_TEST_AGENT_AARCH64")
        .map(PathBuf::from)
        .expect("EDGE_TEST_AGENT_AARCH64 is not set (static aarch64 agent build)");
    let (built, out) = build("armhf", &aarch64, tmp.path());
    assert!(!built && out.contains("wrong architecture"), "{out}");
}
