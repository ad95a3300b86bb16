//! A whole arm64 machine under `qemu-system-aarch64` (TCG): a disk image booted with a
//! given kernel and initrd, QEMU's user network (the guest reaches the host's loopback
//! at 10.0.2.2), the serial console kept in a log for failure messages. Killed on drop.
//!
//! The image, kernel and initrd come from `scripts/build-vm-image.sh`, whose cache
//! directory test.sh exports as [`VM_IMAGE_DIR_ENV`].

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::stack::{ChildProcess, StackError, StackResult};

/// The directory `scripts/build-vm-image.sh` printed (disk.img, vmlinuz, initrd.img,
/// cmdline.txt).
pub const VM_IMAGE_DIR_ENV: &str = "EDGE_TEST_VM_IMAGE_DIR";

/// The emulator binary (Debian package qemu-system-arm).
pub const QEMU_SYSTEM_AARCH64: &str = "qemu-system-aarch64";

/// The cached VM image of `scripts/build-vm-image.sh`.
#[derive(Debug, Clone)]
pub struct VmImage {
    pub dir: PathBuf,
    /// The partitioned raw disk image (Raspberry Pi style: FAT boot, ext4 root).
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The kernel command line (root on the image's root partition, serial console).
    pub cmdline: String,
}

impl VmImage {
    /// From [`VM_IMAGE_DIR_ENV`]; an error that says how to build the image when it is
    /// not set or incomplete.
    pub fn from_env() -> StackResult<Self> {
        let hint = "build it with `bash scripts/build-vm-image.sh` (as root, about 10 minutes \
                    once, then cached) and export EDGE_TEST_VM_IMAGE_DIR=\"$(bash \
                    scripts/build-vm-image.sh --print)\"; scripts/test.sh does both";
        let dir = std::env::var_os(VM_IMAGE_DIR_ENV).ok_or_else(|| StackError::MissingTool {
            tool: format!("the VM image ({VM_IMAGE_DIR_ENV} is not set)"),
            hint: hint.to_owned(),
        })?;
        Self::in_dir(Path::new(&dir)).map_err(|missing| StackError::MissingTool {
            tool: format!("the VM image ({} is missing)", missing.display()),
            hint: hint.to_owned(),
        })
    }

    /// The image in `dir`; `Err` names the first file that is missing.
    pub fn in_dir(dir: &Path) -> Result<Self, PathBuf> {
        let file = |name: &str| {
            let path = dir.join(name);
            if path.is_file() { Ok(path) } else { Err(path) }
        };
        let cmdline_path = file("cmdline.txt")?;
        let cmdline = std::fs::read_to_string(&cmdline_path)
            .map_err(|_| cmdline_path.clone())?
            .trim()
            .to_owned();
        Ok(Self {
            dir: dir.to_owned(),
            disk: file("disk.img")?,
            kernel: file("vmlinuz")?,
            initrd: file("initrd.img")?,
            cmdline,
        })
    }
}

/// How to boot a machine.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// The disk image to boot (written to by the guest: give it a copy).
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    /// The network card's MAC address (`52:54:00:..`), e.g. for a device id from `{mac}`.
    pub mac: String,
    pub memory_mib: u32,
    pub cpus: u32,
}

/// A running `qemu-system-aarch64`; its serial console is in [`QemuVm::console`].
#[derive(Debug)]
pub struct QemuVm {
    process: ChildProcess,
}

impl QemuVm {
    /// Boots `options` (`-M virt -cpu cortex-a57`, `-nographic`: the serial console is
    /// the process's output, logged to `<log_dir>/<name>.log`).
    pub fn boot(name: &str, options: &VmOptions, log_dir: &Path) -> StackResult<Self> {
        let found = Command::new(QEMU_SYSTEM_AARCH64)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Err(StackError::MissingTool {
                tool: QEMU_SYSTEM_AARCH64.to_owned(),
                hint: "apt-get install qemu-system-arm (scripts/install-test-deps.sh)".to_owned(),
            });
        }
        let mut cmd = Command::new(QEMU_SYSTEM_AARCH64);
        cmd.args(["-M", "virt", "-cpu", "cortex-a57"])
            .args(["-m", &options.memory_mib.to_string()])
            .args(["-smp", &options.cpus.to_string()])
            .arg("-nographic")
            .arg("-no-reboot")
            .arg("-kernel")
            .arg(&options.kernel)
            .arg("-initrd")
            .arg(&options.initrd)
            .args(["-append", &options.cmdline])
            .arg("-drive")
            .arg(format!(
                "file={},format=raw,if=virtio",
                options.disk.display()
            ))
            .args(["-netdev", "user,id=n0"])
            .args([
                "-device",
                &format!("virtio-net-device,netdev=n0,mac={}", options.mac),
            ]);
        let process = ChildProcess::spawn(name, cmd, log_dir)?;
        Ok(Self { process })
    }

    /// Everything the serial console printed so far (kernel, systemd, getty).
    pub fn console(&self) -> String {
        self.process.log()
    }

    /// The last `lines` lines of the console, for failure messages.
    pub fn console_tail(&self, lines: usize) -> String {
        let console = self.console();
        let all: Vec<&str> = console.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether QEMU still runs (it exits when the guest powers off or panics, `-no-reboot`).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }
}
