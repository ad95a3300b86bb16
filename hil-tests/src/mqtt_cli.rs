//! Command-line MQTT clients (`mosquitto_sub`, `mosquitto_pub` of the Debian package
//! mosquitto-clients) with TLS client certificates, for broker isolation checks: a
//! subscriber whose messages arrive on a channel, and one-shot QoS 1 publishes.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a client waits for its SUBACK or for a message.
pub const WAIT: Duration = Duration::from_secs(20);

/// Client credentials: CA, certificate, key.
#[derive(Debug, Clone)]
pub struct Identity {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Panics with an install hint when `tool` is missing.
pub fn need(tool: &str) {
    assert!(
        Path::new(tool).exists() || which(tool),
        "{tool} is missing: install the Debian packages mosquitto and mosquitto-clients \
         (scripts/install-test-deps.sh)"
    );
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Connection arguments of `mosquitto_sub`/`mosquitto_pub`: loopback `port`, MQTT 3.1.1,
/// QoS 1, `client_id`, and the identity's CA, certificate and key.
pub fn tls_args(cmd: &mut Command, port: u16, id: &Identity, client_id: &str) {
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-V",
        "mqttv311",
        "-q",
        "1",
        "-i",
        client_id,
    ])
    .arg("--cafile")
    .arg(&id.ca)
    .arg("--cert")
    .arg(&id.cert)
    .arg("--key")
    .arg(&id.key);
}

/// A running `mosquitto_sub` whose received messages ("topic payload") arrive on a channel.
#[derive(Debug)]
pub struct Subscriber {
    child: Child,
    lines: mpsc::Receiver<String>,
    name: String,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Subscriber {
    /// Starts a subscriber and waits for its SUBACK. A SUBACK that refuses every filter
    /// (a broker cluster that is failing over) is retried until [`WAIT`] has passed.
    pub fn start(port: u16, id: &Identity, client_id: &str, filters: &[&str]) -> Subscriber {
        let deadline = Instant::now() + WAIT;
        loop {
            match Self::try_start(port, id, client_id, filters) {
                Ok(sub) => return sub,
                Err(refused) if Instant::now() < deadline => {
                    eprintln!("{client_id}: {refused}; subscribing again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(refused) => panic!("{client_id}: {refused} for {} s", WAIT.as_secs()),
            }
        }
    }

    fn try_start(
        port: u16,
        id: &Identity,
        client_id: &str,
        filters: &[&str],
    ) -> Result<Subscriber, String> {
        need("mosquitto_sub");
        // Line-buffered: mosquitto_sub block-buffers its output into a pipe.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub"]);
        tls_args(&mut cmd, port, id, client_id);
        for f in filters {
            cmd.args(["-t", f]);
        }
        cmd.args(["-v", "-d"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx2.send(format!("stderr: {line}")).is_err() {
                    break;
                }
            }
        });
        let sub = Subscriber {
            child,
            lines,
            name: client_id.to_string(),
        };
        let mut seen = Vec::new();
        let deadline = Instant::now() + WAIT;
        let mut acked = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match sub.lines.recv_timeout(left) {
                Ok(line) if line.contains("received SUBACK") => acked = true,
                // mosquitto_sub prints the granted QoS per filter, 128 for a refusal
                Ok(line) if acked && line.starts_with("Subscribed (mid:") => {
                    let codes = line.rsplit(':').next().unwrap_or("");
                    if codes.split(',').all(|c| c.trim() == "128") {
                        return Err(format!("every filter refused ({line})"));
                    }
                    return Ok(sub);
                }
                Ok(line) => seen.push(line),
                Err(_) => panic!("{client_id}: no SUBACK; output: {seen:#?}"),
            }
        }
    }

    /// The next application message as "topic payload".
    pub fn next_message(&mut self) -> String {
        match self.next_message_within(WAIT) {
            Ok(message) => message,
            Err(seen) => panic!("{}: no message arrived; output: {seen:#?}", self.name),
        }
    }

    /// The next application message within `wait`, or the other output seen meanwhile.
    pub fn next_message_within(&mut self, wait: Duration) -> Result<String, Vec<String>> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("edge/") => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => return Err(seen),
            }
        }
    }

    pub fn still_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Publishes one message with QoS 1; returns (success, output).
pub fn publish(
    port: u16,
    id: &Identity,
    client_id: &str,
    topic: &str,
    payload: &str,
) -> (bool, String) {
    need("mosquitto_pub");
    let mut cmd = Command::new("mosquitto_pub");
    tls_args(&mut cmd, port, id, client_id);
    let out = cmd
        .args(["-t", topic, "-m", payload, "-d"])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn publish_ok(port: u16, id: &Identity, client_id: &str, topic: &str, payload: &str) {
    let (ok, out) = publish(port, id, client_id, topic, payload);
    assert!(ok, "{client_id} could not publish on {topic}: {out}");
}
