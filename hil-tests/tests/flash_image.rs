//! The flashing tool `deploy/flash/flash-image.sh` on synthetic Raspberry Pi style images
//! (MBR from sfdisk, FAT boot partition from mkfs.vfat + mcopy, ext4 root from
//! `mkfs.ext4 -d`), checked with debugfs; bad inputs fail with a clear message and leave
//! the input byte for byte as it was.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SECTOR: u64 = 512;
const BOOT_START: u64 = 2048;
const BOOT_SECTORS: u64 = 16 * 2048; // 16 MiB
const ROOT_START: u64 = BOOT_START + BOOT_SECTORS;
const ROOT_SECTORS: u64 = 48 * 2048; // 48 MiB
const IMAGE_BYTES: u64 = (ROOT_START + ROOT_SECTORS + 2048) * SECTOR;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn script() -> PathBuf {
    repo().join("deploy/flash/flash-image.sh")
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

fn tool<'a>(name: &'a str, package: &str) -> &'a str {
    let found = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {name} || test -x /sbin/{name} || test -x /usr/sbin/{name}"),
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is missing: install the Debian package {package} (scripts/install-test-deps.sh)"
    );
    name
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Arch {
    Aarch64,
    Armv7,
}

/// A minimal ELF header of the given architecture (what the tool reads to decide).
fn elf_header(arch: Arch) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = if arch == Arch::Aarch64 { 2 } else { 1 }; // class
    h[5] = 1; // little endian
    h[6] = 1; // version
    h[16] = 2; // ET_EXEC
    let machine: u16 = if arch == Arch::Aarch64 { 183 } else { 40 };
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h
}

fn aarch64_agent() -> PathBuf {
    let path = std::env::var_os("EDGE_TEST_AGENT_AARCH64").map(PathBuf::from).expect(
        "EDGE_TEST_AGENT_AARCH64 is not set: run `eval \"$(bash scripts/test-env.sh)\"` and build the static agent \
         (cargo build --release -p edge-agent --target aarch64-unknown-linux-musl)",
    );
    assert!(
        path.is_file(),
        "EDGE_TEST_AGENT_AARCH64={} does not exist",
        path.display()
    );
    path
}

/// Builds a Raspberry Pi style image: MBR, FAT32 boot partition with config.txt, ext4
/// root with /bin/sh of `arch`. `usrmerge` lays /bin out as a symlink to usr/bin.
fn build_image(dir: &Path, name: &str, arch: Arch, usrmerge: bool, with_root: bool) -> PathBuf {
    let root = dir.join(format!("{name}-rootfs"));
    let bin = if usrmerge {
        root.join("usr/bin")
    } else {
        root.join("bin")
    };
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    std::fs::write(bin.join("dash"), elf_header(arch)).unwrap();
    std::os::unix::fs::symlink("dash", bin.join("sh")).unwrap();
    if usrmerge {
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    }
    std::fs::write(root.join("etc/hostname"), "raspberrypi\n").unwrap();
    std::fs::write(
        root.join("etc/hosts"),
        "127.0.0.1\tlocalhost\n127.0.1.1\t\traspberrypi\n",
    )
    .unwrap();

    let rootfs = dir.join(format!("{name}-root.ext4"));
    run(Command::new(tool("mkfs.ext4", "e2fsprogs"))
        .args(["-q", "-F", "-d"])
        .arg(&root)
        .arg(&rootfs)
        .arg(format!("{}k", ROOT_SECTORS / 2)));
    let boot = dir.join(format!("{name}-boot.fat"));
    run(Command::new(tool("mkfs.vfat", "dosfstools"))
        .args(["-C"])
        .arg(&boot)
        .arg((BOOT_SECTORS / 2).to_string()));
    let config = dir.join("config.txt");
    std::fs::write(&config, "arm_64bit=1\n").unwrap();
    run(Command::new(tool("mcopy", "mtools"))
        .arg("-i")
        .arg(&boot)
        .arg(&config)
        .arg("::config.txt"));

    let image = dir.join(format!("{name}.img"));
    let f = std::fs::File::create(&image).unwrap();
    f.set_len(IMAGE_BYTES).unwrap();
    drop(f);
    let mut table = format!("label: dos\nstart={BOOT_START}, size={BOOT_SECTORS}, type=c\n");
    if with_root {
        table.push_str(&format!(
            "start={ROOT_START}, size={ROOT_SECTORS}, type=83\n"
        ));
    }
    let mut sfdisk = Command::new(tool("sfdisk", "fdisk"))
        .arg("-q")
        .arg(&image)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
    let out = sfdisk.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dd = |src: &Path, start: u64| {
        run(Command::new("dd")
            .arg(format!("if={}", src.display()))
            .arg(format!("of={}", image.display()))
            .args([
                "bs=512",
                &format!("seek={start}"),
                "conv=notrunc,sparse",
                "status=none",
            ]));
    };
    dd(&boot, BOOT_START);
    if with_root {
        dd(&rootfs, ROOT_START);
    }
    image
}

fn bundle(dir: &Path, id: &str) -> PathBuf {
    let b = dir.join(format!("{id}-bundle"));
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(
        b.join("agent.toml"),
        format!("device_id = \"{id}\"\nbroker_urls = [\"mqtts://gw.example.com:8883\"]\n"),
    )
    .unwrap();
    std::fs::write(b.join("ca.pem"), "-----BEGIN CERTIFICATE-----\nca\n").unwrap();
    std::fs::write(
        b.join("device.pem"),
        "-----BEGIN CERTIFICATE-----\ndevice\n",
    )
    .unwrap();
    std::fs::write(b.join("device.key"), "-----BEGIN PRIVATE KEY-----\nkey\n").unwrap();
    b
}

fn flash(args: &[&std::ffi::OsStr], stdin: &str) -> (bool, String) {
    tool("debugfs", "e2fsprogs");
    let mut child = Command::new("bash")
        .arg(script())
        .args(args)
        .env_remove("EDGE_AGENT_AARCH64")
        .env_remove("EDGE_AGENT_ARMV7")
        .env_remove("EDGE_AGENT_X86_64")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// Reads from the root filesystem inside `image` with debugfs.
fn debugfs(image: &Path, request: &str) -> Vec<u8> {
    let target = format!("{}?offset={}", image.display(), ROOT_START * SECTOR);
    let out = run(Command::new(tool("debugfs", "e2fsprogs"))
        .arg("-R")
        .arg(request)
        .arg(target));
    out.stdout
}

fn debugfs_text(image: &Path, request: &str) -> String {
    String::from_utf8_lossy(&debugfs(image, request)).into_owned()
}

/// The program the unit's ExecStart runs (where the tool puts the agent).
fn unit_exec_path() -> String {
    let unit_text = std::fs::read_to_string(unit()).unwrap();
    unit_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))
        .unwrap()
        .trim_start_matches(['-', '@', ':', '+', '!'])
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Replaces the image's MBR with a GPT holding the same partitions (Jetson and some
/// Ubuntu images use GPT).
fn relabel_gpt(image: &Path) {
    let table = format!(
        "label: gpt
start={BOOT_START}, size={BOOT_SECTORS}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
         start={ROOT_START}, size={ROOT_SECTORS}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
"
    );
    let mut sfdisk = Command::new(tool("sfdisk", "fdisk"))
        .args(["-q", "--wipe", "never"])
        .arg(image)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sfdisk
        .stdin
        .take()
        .unwrap()
        .write_all(table.as_bytes())
        .unwrap();
    let out = sfdisk.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "sfdisk: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = run(Command::new(tool("sfdisk", "fdisk"))
        .arg("--dump")
        .arg(image));
    assert!(String::from_utf8_lossy(&dump.stdout).contains("label: gpt"));
}

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

fn boot_partition(image: &Path) -> Vec<u8> {
    let bytes = std::fs::read(image).unwrap();
    bytes[(BOOT_START * SECTOR) as usize..((BOOT_START + BOOT_SECTORS) * SECTOR) as usize].to_vec()
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
