//! A real `edge-agent` process (host build, or aarch64 / armv7 under qemu) of the stack.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::child_process::ChildProcess;
use super::stack_env::binary;
use super::{StackError, StackResult};

/// Which agent binary runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentBuild {
    /// The host's debug build.
    Host,
    /// The host's debug build under its OTA supervisor (`edge-agent supervise --ota-dir
    /// <state dir>/ota -- run ...`): the process the stack holds is the supervisor.
    HostSupervised,
    /// The static aarch64 release build (`EDGE_TEST_AGENT_AARCH64`) under qemu-aarch64.
    Aarch64Qemu,
    /// The static armv7 build (`EDGE_TEST_AGENT_ARMV7`, standard library built from
    /// source by scripts/build-agent-armv7.sh) under qemu-arm.
    Armv7Qemu,
}

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub device_id: String,
    pub broker_url: String,
    pub labels: Vec<(String, String)>,
    pub build: AgentBuild,
    pub heartbeat_interval: Duration,
    /// More `edge-agent run` flags.
    pub extra_args: Vec<String>,
}

/// A running agent. Its state directory survives restarts, like a device's disk.
#[derive(Debug)]
pub struct Agent {
    options: AgentOptions,
    state_dir: PathBuf,
    log_dir: PathBuf,
    process: Option<ChildProcess>,
    /// Held while the agent lives: its device id, claimed against every test process.
    _device_claim: std::fs::File,
}

pub const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";
pub const QEMU_ARM: &str = "/usr/bin/qemu-arm-static";

impl Agent {
    pub fn start(options: AgentOptions, dir: &Path) -> StackResult<Self> {
        let mut agent = Self {
            state_dir: dir.join(format!("agent-{}", options.device_id)),
            log_dir: dir.to_owned(),
            _device_claim: claim_device_id(&options.device_id)?,
            options,
            process: None,
        };
        agent.launch()?;
        Ok(agent)
    }

    fn launch(&mut self) -> StackResult<()> {
        let docker_host =
            std::env::var("EDGE_TEST_DOCKER_HOST").map_err(|_| StackError::MissingTool {
                tool: "a container runtime (EDGE_TEST_DOCKER_HOST)".to_owned(),
                hint: "run `eval \"$(scripts/test-env.sh)\"` to start Podman's Docker API"
                    .to_owned(),
            })?;
        let o = &self.options;
        let mut cmd = match o.build {
            AgentBuild::Host => Command::new(binary("edge-agent")?),
            AgentBuild::HostSupervised => {
                let mut c = Command::new(binary("edge-agent")?);
                c.args(["supervise", "--ota-dir"])
                    .arg(self.state_dir.join("ota"))
                    .arg("--");
                c
            }
            AgentBuild::Aarch64Qemu => under_qemu(
                QEMU_AARCH64,
                "EDGE_TEST_AGENT_AARCH64",
                "the aarch64 agent",
                "cargo build --release -p edge-agent --target aarch64-unknown-linux-musl",
            )?,
            AgentBuild::Armv7Qemu => under_qemu(
                QEMU_ARM,
                "EDGE_TEST_AGENT_ARMV7",
                "the armv7 agent",
                "export EDGE_TEST_AGENT_ARMV7=$(bash scripts/build-agent-armv7.sh --profile armv7-test)",
            )?,
        };
        cmd.arg("run")
            .args(["--device-id", &o.device_id])
            .args(["--broker-url", &o.broker_url])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .args([
                "--heartbeat-interval",
                &format!("{}ms", o.heartbeat_interval.as_millis()),
            ])
            .env("RUST_LOG", "info,edge_agent=debug")
            // the test runtime is shared: no image GC or evictions from a full disk of
            // the test machine (a scenario's flags turn them on)
            .env("EDGE_AGENT_EVICTION_MONITORING_INTERVAL_SECONDS", "0");
        for (k, v) in &o.labels {
            cmd.args(["--label", &format!("{k}={v}")]);
        }
        // The shared Podman unless a scenario names another runtime.
        if !o.extra_args.iter().any(|a| a == "--runtime-socket") {
            cmd.args(["--runtime-socket", &docker_host]);
        }
        cmd.args(&o.extra_args);
        let name = format!("agent-{}", o.device_id);
        self.process = Some(ChildProcess::spawn(&name, cmd, &self.log_dir)?);
        Ok(())
    }

    pub fn device_id(&self) -> &str {
        &self.options.device_id
    }

    /// The agent's state directory (`--state-dir`): pod volumes live under `pods/<uid>`.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    pub fn log(&self) -> String {
        self.process.as_ref().map(|p| p.log()).unwrap_or_default()
    }

    /// SIGKILL: the device loses power or the agent crashes. Containers keep running.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(|p| p.is_running())
    }

    /// The agent's exit status once it exited by itself (`None` while it runs).
    pub fn exit_code(&mut self) -> Option<i32> {
        self.process.as_mut().and_then(ChildProcess::exit_code)
    }

    /// Starts the agent again with the same state directory.
    pub fn restart(&mut self) -> StackResult<()> {
        self.kill9();
        self.launch()
    }

    /// Stops the agent without a restart (SIGTERM with a grace of 10 s).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.terminate(Duration::from_secs(10));
        }
    }
}

/// A command running the agent binary named by the environment variable `var` under
/// the qemu user-mode emulator `qemu`; a missing binary or emulator fails with the
/// command that provides it.
fn under_qemu(qemu: &str, var: &str, what: &str, build: &str) -> StackResult<Command> {
    let bin = std::env::var(var).map_err(|_| StackError::MissingTool {
        tool: format!("{what} ({var})"),
        hint: build.to_owned(),
    })?;
    if !Path::new(&bin).is_file() {
        return Err(StackError::MissingTool {
            tool: format!("{what} ({var}={bin} does not exist)"),
            hint: build.to_owned(),
        });
    }
    if !Path::new(qemu).exists() {
        return Err(StackError::MissingTool {
            tool: qemu.to_owned(),
            hint: "apt-get install qemu-user-static".to_owned(),
        });
    }
    let mut c = Command::new(qemu);
    c.arg(bin);
    Ok(c)
}

/// Claims `device` for the caller's lifetime (an exclusive lock on a file named after
/// it): agents share one Podman, and an agent lists its containers by device id, so two
/// running agents with one id would take each other's containers for orphans.
fn claim_device_id(device: &str) -> StackResult<std::fs::File> {
    let dir = std::env::temp_dir().join("edge-test-device-ids");
    std::fs::create_dir_all(&dir).map_err(|e| StackError::io(&dir, e))?;
    let path = dir.join(device);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StackError::io(&path, e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(StackError::DeviceIdInUse {
            device: device.to_owned(),
        }),
        Err(e) => Err(StackError::io(&path, e)),
    }
}

#[cfg(test)]
mod tests;
