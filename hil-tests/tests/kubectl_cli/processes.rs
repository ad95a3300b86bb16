//! Our server binaries as child processes of a test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) and reaped when dropped, also when the test panics.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    pub fn spawn(mut command: Command) -> Self {
        let program = command.get_program().to_owned();
        command.stdin(Stdio::null());
        Self(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {program:?}: {e}")),
        )
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().unwrap()
    }

    /// SIGTERM, then waits up to `timeout` for it to exit by itself.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.pid());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `$EDGE_TEST_BIN_DIR/<name>`, else the one cargo built for this test.
pub fn our_binary(name: &str, cargo_built: &str) -> PathBuf {
    let path = std::env::var_os("EDGE_TEST_BIN_DIR")
        .map(|d| PathBuf::from(d).join(name))
        .unwrap_or_else(|| PathBuf::from(cargo_built));
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Pids of live (not zombie) processes running `program` with an argument that
/// mentions `dir`.
pub fn processes_of(program: &str, dir: &Path) -> Vec<u32> {
    let dir = dir.display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie
            && args
                .first()
                .is_some_and(|a| Path::new(a).file_name().is_some_and(|f| f == program))
            && args.iter().any(|a| a.contains(&dir))
        {
            pids.push(pid);
        }
    }
    pids
}

/// Waits up to `timeout` for `path` to exist, as long as `child` runs.
pub fn wait_for_file(child: &mut KillOnDrop, path: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if let Some(status) = child.exited() {
            panic!("it exited ({status}) before writing {}", path.display());
        }
        assert!(
            Instant::now() < deadline,
            "{} not written within {timeout:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
