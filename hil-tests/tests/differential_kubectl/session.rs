//! One server's kubectl session: steps recorded into a transcript, waits for controllers,
//! background watches.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use edge_hil_tests::differential::{Format, Step, Transcript};
use serde_json::Value;

use super::NS;

/// How long a wait for a controller's work may take before the session goes on (and the
/// comparison shows what did not happen).
const SETTLE: Duration = Duration::from_secs(30);

/// One server's kubectl: the control plane's kubectl binary, its own cache directory.
pub struct Session {
    pub kubectl: PathBuf,
    pub kubeconfig: PathBuf,
    pub cache: PathBuf,
    pub transcript: Transcript,
    /// Steps whose exit status was not the one the script expects (a broken script).
    pub surprises: Vec<String>,
}

fn lines_of(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Session {
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(["--namespace", NS])
            .args(args);
        c
    }

    pub async fn output(&self, args: &[&str]) -> Result<Output> {
        let mut c = self.command(args);
        let what = format!("kubectl {}", args.join(" "));
        tokio::task::spawn_blocking(move || c.output())
            .await?
            .with_context(|| what)
    }

    /// Runs a step of the session that should succeed and records it.
    pub async fn step(&mut self, format: Format, args: &[&str]) -> Result<()> {
        self.step_expecting(format, args, true).await
    }

    /// Runs a step of the session and records it; `ok`: whether it should succeed.
    pub async fn step_expecting(&mut self, format: Format, args: &[&str], ok: bool) -> Result<()> {
        let out = self.output(args).await?;
        if out.status.success() != ok {
            self.surprises.push(format!(
                "kubectl {} exited with {} (expected {})",
                args.join(" "),
                out.status,
                if ok { "success" } else { "failure" }
            ));
        }
        let (stdout, stderr) = lines_of(&out);
        self.transcript.steps.push(Step {
            label: args.join(" "),
            format,
            exit_code: out.status.code(),
            stdout,
            stderr,
        });
        Ok(())
    }

    pub async fn text(&mut self, args: &[&str]) -> Result<()> {
        self.step(Format::Text, args).await
    }

    /// A text step that should fail (an error message to compare).
    pub async fn fails(&mut self, args: &[&str]) -> Result<()> {
        self.step_expecting(Format::Text, args, false).await
    }

    pub async fn json(&mut self, args: &[&str]) -> Result<()> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        self.step(Format::Json, &a).await
    }

    /// `kubectl <args> -o json` (not recorded).
    pub async fn get_json(&self, args: &[&str]) -> Result<Value> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.output(&a).await?;
        if !out.status.success() {
            bail!("kubectl {a:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Waits until `pred` holds for `kubectl <args> -o json` (not recorded); after
    /// [`SETTLE`] the session goes on regardless and the comparison shows the rest.
    pub async fn settle(&self, what: &str, args: &[&str], pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Ok(v) = self.get_json(args).await
                && pred(&v)
            {
                return;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "{}: {what} did not happen within {SETTLE:?}; going on",
                    self.transcript.server
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A `kubectl get -w` running in the background, its stdout lines collected.
pub struct Watch {
    label: String,
    format: Format,
    child: std::process::Child,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Watch {
    pub fn start(s: &Session, format: Format, args: &[&str]) -> Result<Self> {
        let mut child = s
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("watch stdout")?;
        let lines: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(Self {
            label: args.join(" "),
            format,
            child,
            lines,
        })
    }

    fn count(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Waits for at least `n` lines (20 s at most).
    pub async fn wait_lines(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops kubectl and records what it printed.
    pub fn finish(mut self, s: &mut Session) -> Result<()> {
        // Late extra events would show too: the caller waited for the expected ones and
        // a little more.
        self.child.kill()?;
        self.child.wait()?;
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut stderr)?;
        }
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
        s.transcript.steps.push(Step {
            label: self.label,
            format: self.format,
            exit_code: None,
            stdout: lines.iter().map(|l| format!("{l}\n")).collect(),
            stderr,
        });
        Ok(())
    }
}
