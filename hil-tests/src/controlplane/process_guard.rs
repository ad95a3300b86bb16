//! Control plane processes that cannot outlive the test process.
//!
//! A control plane shared by a whole test binary lives in a `static` and is never
//! dropped, and a test that panics may never reach a `Drop` either. So every component
//! is started through `setpriv --pdeathsig KILL`: the kernel sends it SIGKILL when the
//! thread that forked it ends. Linux ties that signal to the forking *thread*, so the
//! forks happen on one spawner thread that lives as long as the process; when the test
//! process exits, however it exits, the components die with it.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

use crate::stack::{ChildProcess, StackError, StackResult};

type SpawnReply = Sender<StackResult<ChildProcess>>;
type SpawnRequest = (String, Command, std::path::PathBuf, SpawnReply);

static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();

fn spawner() -> &'static Mutex<Sender<SpawnRequest>> {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("controlplane-spawner".to_owned())
            .spawn(move || {
                // The sender sits in a static, so this loop ends only with the process.
                for (name, command, log_dir, reply) in rx {
                    let _ = reply.send(ChildProcess::spawn(&name, command, &log_dir));
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("controlplane: cannot start the spawner thread: {e}"));
        Mutex::new(tx)
    })
}

/// Starts `program args...` with its output in `<log_dir>/<name>.log`, killed with
/// SIGKILL when this process ends.
pub fn spawn_tied_to_process(
    name: &str,
    program: &Path,
    args: &[String],
    log_dir: &Path,
) -> StackResult<ChildProcess> {
    let mut command = Command::new("setpriv");
    command
        .args(["--pdeathsig", "KILL", "--"])
        .arg(program)
        .args(args);
    let (reply_tx, reply_rx) = channel();
    spawner()
        .lock()
        .map_err(|_| StackError::Other("controlplane spawner lock poisoned".to_owned()))?
        .send((name.to_owned(), command, log_dir.to_owned(), reply_tx))
        .map_err(|_| StackError::Other("controlplane spawner thread is gone".to_owned()))?;
    reply_rx
        .recv()
        .map_err(|_| StackError::Other("controlplane spawner thread is gone".to_owned()))?
}
