//! The real `kubectl` binary, pointed at the stack's cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{StackError, StackResult};

/// Runs `kubectl --kubeconfig <stack> ...`.
#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    /// The `kubectl` on PATH.
    pub fn new(kubeconfig: &Path) -> StackResult<Self> {
        Self::with_binary(Path::new("kubectl"), kubeconfig)
    }

    /// A given kubectl binary (the control plane's own release).
    pub fn with_binary(binary: &Path, kubeconfig: &Path) -> StackResult<Self> {
        let found = Command::new(binary)
            .args(["version", "--client"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Err(StackError::MissingTool {
                tool: binary.display().to_string(),
                hint: "install kubectl (Debian package kubernetes-client) and put it on PATH"
                    .to_owned(),
            });
        }
        Ok(Self {
            binary: binary.to_owned(),
            kubeconfig: kubeconfig.to_owned(),
        })
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig);
        cmd
    }

    /// Runs kubectl and returns its output whatever the exit status.
    pub fn output(&self, args: &[&str]) -> StackResult<Output> {
        self.command()
            .args(args)
            .output()
            .map_err(|e| StackError::Spawn {
                program: "kubectl".to_owned(),
                error: e.to_string(),
            })
    }

    /// `kubectl exec [-i] -n <namespace> <pod> -c <container> -- <command>`, with `stdin`
    /// piped in when given (`-i`); the output whatever the exit status (its code is the
    /// command's, as `kubectl exec` returns it).
    pub fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        command: &[&str],
        stdin: Option<&[u8]>,
    ) -> StackResult<Output> {
        use std::io::Write;
        let mut cmd = self.command();
        cmd.args(["exec", "-n", namespace, pod, "-c", container]);
        if stdin.is_some() {
            cmd.arg("-i");
        }
        cmd.arg("--").args(command);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let spawn_error = |e: std::io::Error| StackError::Spawn {
            program: "kubectl".to_owned(),
            error: e.to_string(),
        };
        let mut child = cmd.spawn().map_err(spawn_error)?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data).map_err(spawn_error)?;
        }
        child.wait_with_output().map_err(spawn_error)
    }

    /// Runs kubectl and returns stdout; a non-zero exit is an error carrying stderr.
    pub fn run(&self, args: &[&str]) -> StackResult<String> {
        let out = self.output(args)?;
        if !out.status.success() {
            return Err(StackError::Other(format!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates namespace `name` unless it exists (a shared cluster may have it already).
    pub fn ensure_namespace(&self, name: &str) -> StackResult<()> {
        match self.run(&["create", "namespace", name]) {
            Err(e) if !e.to_string().contains("AlreadyExists") => Err(e),
            _ => Ok(()),
        }
    }
}
