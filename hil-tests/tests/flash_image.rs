//! The flashing tool `deploy/flash/flash-image.sh` on synthetic Raspberry Pi style images
//! (MBR from sfdisk, FAT boot partition from mkfs.vfat + mcopy, ext4 root from
//! `mkfs.ext4 -d`), checked with debugfs: one device's bundle, or the one bootstrap
//! directory of a fleet (zero-touch enrollment); bad inputs fail with a clear message and
//! leave the input byte for byte as it was.
#![allow(clippy::unwrap_used)]

mod flash_support;

use std::path::Path;
use std::process::Command;

use flash_support::*;

#[test]
fn flashes_a_gpt_image() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "ubuntu-gpt", Arch::Aarch64, true, true);
    relabel_gpt(&image);
    let bundle = bundle(tmp.path(), "jetson-01");
    let agent = aarch64_agent();
    let output = tmp.path().join("jetson-01.img");
    let before = sha256(&image);
    let (ok, log) = flash(
        &[
            os("--image"),
            image.as_os_str(),
            os("--bundle"),
            bundle.as_os_str(),
            os("--output"),
            output.as_os_str(),
            os("--agent-aarch64"),
            agent.as_os_str(),
            os("--unit"),
            unit().as_os_str(),
        ],
        "",
    );
    assert!(ok, "{log}");
    assert_eq!(sha256(&image), before);
    assert_eq!(
        debugfs(&output, &format!("cat {}", unit_exec_path())),
        std::fs::read(&agent).unwrap()
    );
    assert_eq!(debugfs_text(&output, "cat /etc/hostname"), "jetson-01\n");
}

#[test]
fn flashes_agent_bundle_enabled_unit_and_hostname_into_an_aarch64_image() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "raspios", Arch::Aarch64, true, true);
    let bundle = bundle(tmp.path(), "pi-01");
    let agent = aarch64_agent();
    let output = tmp.path().join("pi-01.img");
    let before = sha256(&image);
    let boot_before = boot_partition(&image);

    let (ok, log) = flash(
        &[
            os("--image"),
            image.as_os_str(),
            os("--bundle"),
            bundle.as_os_str(),
            os("--output"),
            output.as_os_str(),
            os("--agent-aarch64"),
            agent.as_os_str(),
            os("--unit"),
            unit().as_os_str(),
        ],
        "",
    );
    assert!(ok, "flashing failed:\n{log}");
    assert!(log.contains("architecture aarch64"), "{log}");
    assert_eq!(sha256(&image), before, "the input image was modified");
    assert_eq!(
        boot_partition(&output),
        boot_before,
        "the boot partition changed"
    );
    assert!(!tmp.path().join("pi-01.img.partial").exists());

    // The agent binary sits where the unit's ExecStart points.
    let exec = unit_exec_path();
    assert_eq!(
        debugfs(&output, &format!("cat {exec}")),
        std::fs::read(&agent).unwrap()
    );
    assert!(debugfs_text(&output, &format!("stat {exec}")).contains("Mode:  0755"));
    for f in ["agent.toml", "ca.pem", "device.pem", "device.key"] {
        assert_eq!(
            debugfs(&output, &format!("cat /etc/edge-agent/{f}")),
            std::fs::read(bundle.join(f)).unwrap(),
            "{f}"
        );
    }
    let key_stat = debugfs_text(&output, "stat /etc/edge-agent/device.key");
    assert!(
        key_stat.contains("Mode:  0600") && key_stat.contains("User:     0   Group:     0"),
        "{key_stat}"
    );
    assert_eq!(
        debugfs(&output, "cat /etc/systemd/system/edge-agent.service"),
        std::fs::read(unit()).unwrap()
    );
    let link = debugfs_text(
        &output,
        "stat /etc/systemd/system/multi-user.target.wants/edge-agent.service",
    );
    assert!(
        link.contains("Type: symlink")
            && link.contains("\"/etc/systemd/system/edge-agent.service\""),
        "{link}"
    );
    assert_eq!(debugfs_text(&output, "cat /etc/hostname"), "pi-01\n");
    let hosts = debugfs_text(&output, "cat /etc/hosts");
    assert!(
        hosts.contains("127.0.1.1\tpi-01\n") && !hosts.contains("raspberrypi"),
        "{hosts}"
    );
    // The filesystem is consistent.
    run(Command::new(tool("e2fsck", "e2fsprogs"))
        .arg("-fn")
        .arg(format!(
            "{}?offset={}",
            output.display(),
            ROOT_START * SECTOR
        )));

    // Running it again onto an existing output needs --force.
    let (ok, log) = flash(
        &[
            os("--image"),
            image.as_os_str(),
            os("--bundle"),
            bundle.as_os_str(),
            os("--output"),
            output.as_os_str(),
            os("--agent-aarch64"),
            agent.as_os_str(),
            os("--unit"),
            unit().as_os_str(),
        ],
        "",
    );
    assert!(!ok && log.contains("--force"), "{log}");
}

#[test]
fn accepts_xz_images_and_picks_the_armv7_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "raspios-armhf", Arch::Armv7, false, true);
    run(Command::new(tool("xz", "xz-utils"))
        .args(["-T0", "-1"])
        .arg(&image));
    let xz = tmp.path().join("raspios-armhf.img.xz");
    assert!(xz.is_file());
    let before = sha256(&xz);
    let armv7_agent = tmp.path().join("edge-agent-armv7");
    let mut agent_bytes = elf_header(Arch::Armv7);
    agent_bytes.extend_from_slice(b"armv7 agent payload");
    std::fs::write(&armv7_agent, &agent_bytes).unwrap();
    let bundle = bundle(tmp.path(), "pi-zero-2");
    let output = tmp.path().join("out.img");

    let (ok, log) = flash(
        &[
            os("--image"),
            xz.as_os_str(),
            os("--bundle"),
            bundle.as_os_str(),
            os("--output"),
            output.as_os_str(),
            os("--agent-armv7"),
            armv7_agent.as_os_str(),
            os("--agent-aarch64"),
            aarch64_agent().as_os_str(),
            os("--unit"),
            unit().as_os_str(),
        ],
        "",
    );
    assert!(ok, "{log}");
    assert!(log.contains("architecture armv7"), "{log}");
    assert_eq!(sha256(&xz), before, "the .xz input was modified");
    let exec = unit_exec_path();
    assert_eq!(debugfs(&output, &format!("cat {exec}")), agent_bytes);
    assert_eq!(debugfs_text(&output, "cat /etc/hostname"), "pi-zero-2\n");
}

/// Runs the tool on bad input; asserts a clear failure that leaves the input untouched
/// and writes no output.
fn assert_refused(tmp: &Path, input: &Path, extra: &[&std::ffi::OsStr], expect: &str) {
    let before = sha256(input);
    let bundle = bundle(tmp, "pi-01");
    let output = tmp.join("refused.img");
    let unit = unit();
    let mut args = vec![
        os("--image"),
        input.as_os_str(),
        os("--bundle"),
        bundle.as_os_str(),
        os("--output"),
        output.as_os_str(),
        os("--unit"),
        unit.as_os_str(),
    ];
    args.extend_from_slice(extra);
    let (ok, log) = flash(&args, "");
    assert!(!ok, "accepted bad input ({expect}):\n{log}");
    assert!(log.contains(expect), "expected {expect:?} in:\n{log}");
    assert!(log.contains("flash-image.sh: error:"), "{log}");
    assert_eq!(sha256(input), before, "input modified");
    assert!(
        !output.exists() && !tmp.join("refused.img.partial").exists(),
        "output left behind"
    );
}

#[test]
fn bad_inputs_fail_clearly_and_leave_the_input_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = aarch64_agent();
    let with_agent = [os("--agent-aarch64"), agent.as_os_str()];

    let junk = tmp.path().join("junk.img");
    std::fs::write(&junk, vec![0x5au8; 3 * 1024 * 1024]).unwrap();
    assert_refused(tmp.path(), &junk, &with_agent, "is not a disk image");

    let bootonly = build_image(tmp.path(), "bootonly", Arch::Aarch64, true, false);
    assert_refused(
        tmp.path(),
        &bootonly,
        &with_agent,
        "no Linux root partition",
    );

    // aarch64 image, but the "aarch64 agent" given is an armv7 binary.
    let arm64 = build_image(tmp.path(), "arm64", Arch::Aarch64, true, true);
    let armv7_agent = tmp.path().join("armv7-agent");
    std::fs::write(&armv7_agent, elf_header(Arch::Armv7)).unwrap();
    assert_refused(
        tmp.path(),
        &arm64,
        &[os("--agent-aarch64"), armv7_agent.as_os_str()],
        "wrong architecture: the image is aarch64 but agent binary",
    );
    // armv7 image and no armv7 agent at all.
    let armhf = build_image(tmp.path(), "armhf", Arch::Armv7, false, true);
    assert_refused(
        tmp.path(),
        &armhf,
        &[
            os("--agent-armv7"),
            os("/nonexistent/edge-agent"),
            os("--agent-aarch64"),
            agent.as_os_str(),
        ],
        "wrong architecture: the image is armv7 but there is no armv7 agent binary",
    );
    // Output onto the input.
    let (ok, log) = flash(
        &[
            os("--image"),
            arm64.as_os_str(),
            os("--bundle"),
            bundle(tmp.path(), "pi-01").as_os_str(),
            os("--output"),
            arm64.as_os_str(),
            os("--unit"),
            unit().as_os_str(),
        ],
        "",
    );
    assert!(
        !ok && log.contains("--output must differ from --image"),
        "{log}"
    );
    // A bundle without its key.
    let broken = bundle(tmp.path(), "pi-03");
    std::fs::remove_file(broken.join("device.key")).unwrap();
    let before = sha256(&arm64);
    let (ok, log) = flash(
        &[
            os("--image"),
            arm64.as_os_str(),
            os("--bundle"),
            broken.as_os_str(),
            os("--output"),
            tmp.path().join("x.img").as_os_str(),
            os("--unit"),
            unit().as_os_str(),
        ],
        "",
    );
    assert!(!ok && log.contains("has no device.key"), "{log}");
    assert_eq!(sha256(&arm64), before);
}

/// A loop device standing in for an SD card; detached on drop.
struct LoopDevice(String);

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

#[test]
fn write_to_needs_a_block_device_and_confirmation() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "card", Arch::Aarch64, true, true);
    let bundle = bundle(tmp.path(), "pi-01");
    let agent = aarch64_agent();
    let output = tmp.path().join("card-out.img");
    let common = |write_to: &Path| {
        vec![
            os("--image").to_owned(),
            image.clone().into_os_string(),
            os("--bundle").to_owned(),
            bundle.clone().into_os_string(),
            os("--output").to_owned(),
            output.clone().into_os_string(),
            os("--agent-aarch64").to_owned(),
            agent.clone().into_os_string(),
            os("--unit").to_owned(),
            unit().into_os_string(),
            os("--force").to_owned(),
            os("--write-to").to_owned(),
            write_to.as_os_str().to_owned(),
        ]
    };
    let regular = tmp.path().join("not-a-card");
    std::fs::write(&regular, b"").unwrap();
    let args = common(&regular);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let (ok, log) = flash(&args, "yes\n");
    assert!(!ok && log.contains("is not a block device"), "{log}");
    assert_eq!(std::fs::metadata(&regular).unwrap().len(), 0);

    // A loop device as the SD card (needs root and /dev/loop-control, like flashing does).
    let card_file = tmp.path().join("card.bin");
    std::fs::File::create(&card_file)
        .unwrap()
        .set_len(IMAGE_BYTES + 1024 * 1024)
        .unwrap();
    let out = run(Command::new(tool("losetup", "mount"))
        .args(["-f", "--show"])
        .arg(&card_file));
    let dev = LoopDevice(String::from_utf8_lossy(&out.stdout).trim().to_string());
    let args = common(Path::new(&dev.0));
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();

    let (ok, log) = flash(&args, "no\n");
    assert!(
        !ok && log.contains("not confirmed; nothing was written"),
        "{log}"
    );
    assert!(log.contains("About to ERASE"), "{log}");
    let card = std::fs::read(&card_file).unwrap();
    assert!(
        card.iter().all(|b| *b == 0),
        "the card was written without confirmation"
    );

    let (ok, log) = flash(&args, "yes\n");
    assert!(ok, "{log}");
    let card = std::fs::read(&card_file).unwrap();
    let prepared = std::fs::read(&output).unwrap();
    assert_eq!(
        &card[..prepared.len()],
        &prepared[..],
        "the card does not hold the prepared image"
    );
}

/// The directory `edge-gateway bootstrap-file` writes (contents are not parsed by the tool).
fn bootstrap_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let b = dir.join("fleet-bootstrap");
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("bootstrap.toml"),
        "bootstrap_broker_url = \"mqtts://gw.example.com:8884\"\ntoken = \"abcdef.0123456789abcdef\"\n",
    )
    .unwrap();
    std::fs::write(b.join("ca.pem"), "-----BEGIN CERTIFICATE-----\nca\n").unwrap();
    std::fs::write(
        b.join("bootstrap.pem"),
        "-----BEGIN CERTIFICATE-----\nboot\n",
    )
    .unwrap();
    std::fs::write(
        b.join("bootstrap.key"),
        "-----BEGIN PRIVATE KEY-----\nkey\n",
    )
    .unwrap();
    b
}

#[test]
fn one_image_for_many_boards_carries_the_bootstrap_directory_and_no_identity() {
    let tmp = tempfile::tempdir().unwrap();
    let image = build_image(tmp.path(), "raspios", Arch::Aarch64, true, true);
    let bootstrap = bootstrap_dir(tmp.path());
    let agent = aarch64_agent();
    let output = tmp.path().join("fleet.img");
    let hostname_before = debugfs_text(&image, "cat /etc/hostname");

    let (ok, log) = flash(
        &[
            os("--image"),
            image.as_os_str(),
            os("--bootstrap"),
            bootstrap.as_os_str(),
            os("--output"),
            output.as_os_str(),
            os("--agent-aarch64"),
            agent.as_os_str(),
            os("--unit"),
            unit().as_os_str(),
        ],
        "",
    );
    assert!(ok, "flashing failed:\n{log}");
    for (f, mode) in [
        ("bootstrap.toml", "0600"),
        ("ca.pem", "0644"),
        ("bootstrap.pem", "0644"),
        ("bootstrap.key", "0600"),
    ] {
        let dest = format!("/etc/edge-agent/bootstrap/{f}");
        assert_eq!(
            debugfs(&output, &format!("cat {dest}")),
            std::fs::read(bootstrap.join(f)).unwrap(),
            "{f}"
        );
        let stat = debugfs_text(&output, &format!("stat {dest}"));
        assert!(stat.contains(&format!("Mode:  {mode}")), "{dest}: {stat}");
    }
    // the agent enrolls first: the unit's drop-in names the bootstrap file
    let drop_in = debugfs_text(
        &output,
        "cat /etc/systemd/system/edge-agent.service.d/bootstrap.conf",
    );
    assert!(
        drop_in.contains("[Service]")
            && drop_in.contains(
                "Environment=EDGE_AGENT_BOOTSTRAP_FILE=/etc/edge-agent/bootstrap/bootstrap.toml"
            ),
        "{drop_in}"
    );
    // no device identity in the image: every board gets the same bytes
    let config = debugfs_text(&output, "cat /etc/edge-agent/agent.toml");
    assert!(!config.contains("device_id ="), "{config}");
    for f in ["device.pem", "device.key"] {
        let stat = debugfs_text(&output, &format!("stat /etc/edge-agent/{f}"));
        assert!(
            !stat.contains("Inode:"),
            "/etc/edge-agent/{f} is in the image: {stat}"
        );
    }
    assert_eq!(
        debugfs_text(&output, "cat /etc/hostname"),
        hostname_before,
        "the host name comes from the board, not the image"
    );
    assert_eq!(
        debugfs(&output, &format!("cat {}", unit_exec_path())),
        std::fs::read(&agent).unwrap()
    );

    // one device's bundle and the fleet's bootstrap directory are exclusive
    let bundle = bundle(tmp.path(), "pi-01");
    let (ok, log) = flash(
        &[
            os("--image"),
            image.as_os_str(),
            os("--bundle"),
            bundle.as_os_str(),
            os("--bootstrap"),
            bootstrap.as_os_str(),
            os("--output"),
            tmp.path().join("both.img").as_os_str(),
        ],
        "",
    );
    assert!(!ok && log.contains("not both"), "{log}");
    std::fs::remove_file(bootstrap.join("bootstrap.key")).unwrap();
    let (ok, log) = flash(
        &[
            os("--image"),
            image.as_os_str(),
            os("--bootstrap"),
            bootstrap.as_os_str(),
            os("--output"),
            tmp.path().join("nokey.img").as_os_str(),
        ],
        "",
    );
    assert!(
        !ok && log.contains("has no bootstrap.key") && log.contains("bootstrap-file"),
        "{log}"
    );
}

/// One image for a fleet of 32-bit boards (Raspberry Pi OS armhf: Pi 2, Pi Zero 2 W):
/// given both static agents, the tool puts the real armv7 build in, and the program in
/// the image runs (qemu-arm). The 64-bit image of the same fleet gets the aarch64 one.
#[test]
fn a_32_bit_image_gets_the_armv7_agent_and_a_64_bit_one_the_aarch64_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let bootstrap = bootstrap_dir(tmp.path());
    let armv7 = armv7_agent();
    let aarch64 = aarch64_agent();
    for (name, arch, want, agent) in [
        ("raspios-armhf", Arch::Armv7, "armv7", &armv7),
        ("raspios-arm64", Arch::Aarch64, "aarch64", &aarch64),
    ] {
        let image = build_image(tmp.path(), name, arch, true, true);
        let output = tmp.path().join(format!("{name}-fleet.img"));
        let (ok, log) = flash(
            &[
                os("--image"),
                image.as_os_str(),
                os("--bootstrap"),
                bootstrap.as_os_str(),
                os("--output"),
                output.as_os_str(),
                os("--agent-armv7"),
                armv7.as_os_str(),
                os("--agent-aarch64"),
                aarch64.as_os_str(),
                os("--unit"),
                unit().as_os_str(),
            ],
            "",
        );
        assert!(ok, "flashing {name} failed:\n{log}");
        assert!(log.contains(&format!("architecture {want}")), "{log}");
        let flashed = debugfs(&output, &format!("cat {}", unit_exec_path()));
        assert_eq!(
            flashed,
            std::fs::read(agent).unwrap(),
            "{name}: not the {want} agent"
        );
        assert_eq!(
            debugfs(&output, "cat /etc/edge-agent/bootstrap/bootstrap.toml"),
            std::fs::read(bootstrap.join("bootstrap.toml")).unwrap()
        );
    }
    // The armv7 program taken back out of the image starts.
    let output = tmp.path().join("raspios-armhf-fleet.img");
    let from_image = tmp.path().join("edge-agent-from-image");
    std::fs::write(
        &from_image,
        debugfs(&output, &format!("cat {}", unit_exec_path())),
    )
    .unwrap();
    std::fs::set_permissions(
        &from_image,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let version = run(Command::new(tool("qemu-arm-static", "qemu-user-static"))
        .arg(&from_image)
        .arg("--version"));
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("edge-agent "),
        "{version:?}"
    );
}
