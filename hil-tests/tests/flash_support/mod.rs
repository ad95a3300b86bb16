//! What the flashing tool's tests share: synthetic Raspberry Pi style images (MBR from
//! sfdisk, FAT boot partition from mkfs.vfat + mcopy, ext4 root from `mkfs.ext4 -d`),
//! device bundles, running `deploy/flash/flash-image.sh`, and reading the result back
//! with debugfs.
#![allow(clippy::unwrap_used)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const SECTOR: u64 = 512;
pub const BOOT_START: u64 = 2048;
pub const BOOT_SECTORS: u64 = 16 * 2048; // 16 MiB
pub const ROOT_START: u64 = BOOT_START + BOOT_SECTORS;
pub const ROOT_SECTORS: u64 = 48 * 2048; // 48 MiB
pub const IMAGE_BYTES: u64 = (ROOT_START + ROOT_SECTORS + 2048) * SECTOR;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn script() -> PathBuf {
    repo().join("deploy/flash/flash-image.sh")
}

pub fn unit() -> PathBuf {
    let unit = repo().join("deploy/systemd/edge-agent.service");
    assert!(
        unit.is_file(),
        "the agent's systemd unit {} is missing",
        unit.display()
    );
    unit
}

pub fn tool<'a>(name: &'a str, package: &str) -> &'a str {
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

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    Aarch64,
    Armv7,
}

/// A minimal ELF header of the given architecture (what the tool reads to decide).
pub fn elf_header(arch: Arch) -> Vec<u8> {
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

pub fn aarch64_agent() -> PathBuf {
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

/// The static armv7 agent (32-bit images), built by scripts/build-agent-armv7.sh.
pub fn armv7_agent() -> PathBuf {
    let path = std::env::var_os("EDGE_TEST_AGENT_ARMV7")
        .map(PathBuf::from)
        .expect(
            "EDGE_TEST_AGENT_ARMV7 is not set: build the static armv7 agent with \
         `export EDGE_TEST_AGENT_ARMV7=$(bash scripts/build-agent-armv7.sh --profile armv7-test)`",
        );
    assert!(
        path.is_file(),
        "EDGE_TEST_AGENT_ARMV7={} does not exist: bash scripts/build-agent-armv7.sh --profile armv7-test",
        path.display()
    );
    path
}

/// Builds a Raspberry Pi style image: MBR, FAT32 boot partition with config.txt, ext4
/// root with /bin/sh of `arch`. `usrmerge` lays /bin out as a symlink to usr/bin.
pub fn build_image(dir: &Path, name: &str, arch: Arch, usrmerge: bool, with_root: bool) -> PathBuf {
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
    write_partition_table(&image, &["-q"], &table);
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

pub fn bundle(dir: &Path, id: &str) -> PathBuf {
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

pub fn flash(args: &[&std::ffi::OsStr], stdin: &str) -> (bool, String) {
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

pub fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// Reads from the root filesystem inside `image` with debugfs.
pub fn debugfs(image: &Path, request: &str) -> Vec<u8> {
    let target = format!("{}?offset={}", image.display(), ROOT_START * SECTOR);
    let out = run(Command::new(tool("debugfs", "e2fsprogs"))
        .arg("-R")
        .arg(request)
        .arg(target));
    out.stdout
}

pub fn debugfs_text(image: &Path, request: &str) -> String {
    String::from_utf8_lossy(&debugfs(image, request)).into_owned()
}

/// The program the unit's ExecStart runs (where the tool puts the agent).
pub fn unit_exec_path() -> String {
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
pub fn relabel_gpt(image: &Path) {
    let table = format!(
        "label: gpt
start={BOOT_START}, size={BOOT_SECTORS}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7
         start={ROOT_START}, size={ROOT_SECTORS}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4
"
    );
    write_partition_table(image, &["-q", "--wipe", "never"], &table);
    let dump = run(Command::new(tool("sfdisk", "fdisk"))
        .arg("--dump")
        .arg(image));
    assert!(String::from_utf8_lossy(&dump.stdout).contains("label: gpt"));
}

pub fn boot_partition(image: &Path) -> Vec<u8> {
    let bytes = std::fs::read(image).unwrap();
    bytes[(BOOT_START * SECTOR) as usize..((BOOT_START + BOOT_SECTORS) * SECTOR) as usize].to_vec()
}

/// Writes `table` (sfdisk's script format) into `image` with sfdisk and `args`.
pub fn write_partition_table(image: &Path, args: &[&str], table: &str) {
    use std::io::Write;
    let mut sfdisk = Command::new(tool("sfdisk", "fdisk"))
        .args(args)
        .arg(image)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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
}
