//! A real Mosquitto broker on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::child_process::ChildProcess;
use super::{StackError, StackResult, free_loopback_port, wait_for_tcp};

/// Where Debian installs the broker.
pub const MOSQUITTO_BIN: &str = "/usr/sbin/mosquitto";

/// A plain-TCP Mosquitto (anonymous, no ACL) for end-to-end runs. Restartable on the
/// same port, so clients can reconnect to it.
#[derive(Debug)]
pub struct Mosquitto {
    port: u16,
    dir: PathBuf,
    process: Option<ChildProcess>,
}

impl Mosquitto {
    /// Starts Mosquitto with its config and log under `dir`.
    pub fn start(dir: &Path) -> StackResult<Self> {
        if !Path::new(MOSQUITTO_BIN).exists() {
            return Err(StackError::MissingTool {
                tool: MOSQUITTO_BIN.to_owned(),
                hint: "run scripts/install-test-deps.sh (Debian package mosquitto)".to_owned(),
            });
        }
        let port = free_loopback_port()?;
        let mut broker = Self {
            port,
            dir: dir.to_owned(),
            process: None,
        };
        broker.launch()?;
        Ok(broker)
    }

    fn launch(&mut self) -> StackResult<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| StackError::io(&self.dir, e))?;
        let conf = self.dir.join("mosquitto.conf");
        let body = format!(
            "set_tcp_nodelay true\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_packet_size 16777216\nmax_queued_messages 200000\nmax_inflight_messages 1000\n\
             log_dest stdout\nlog_type error\nlog_type warning\n\
             log_type notice\n",
            port = self.port
        );
        std::fs::write(&conf, body).map_err(|e| StackError::io(&conf, e))?;
        let mut cmd = Command::new(MOSQUITTO_BIN);
        cmd.arg("-c").arg(&conf);
        self.process = Some(ChildProcess::spawn("mosquitto", cmd, &self.dir)?);
        wait_for_tcp(self.port, Duration::from_secs(10), "mosquitto")
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Total bytes the broker has received plus sent, from its `$SYS` topics (which
    /// Mosquitto refreshes every 10 s).
    pub async fn sys_bytes(&self) -> StackResult<u64> {
        let mut opts = rumqttc::MqttOptions::new("fleet-bench-sys", "127.0.0.1", self.port);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 10);
        let other = |e: &dyn std::fmt::Display| StackError::Other(format!("$SYS: {e}"));
        client
            .subscribe("$SYS/broker/bytes/+", rumqttc::QoS::AtMostOnce)
            .await
            .map_err(|e| other(&e))?;
        let (mut received, mut sent) = (None, None);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while received.is_none() || sent.is_none() {
            let event = tokio::time::timeout_at(deadline, eventloop.poll())
                .await
                .map_err(|_| other(&"no $SYS/broker/bytes within 15 s"))?
                .map_err(|e| other(&e))?;
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = event {
                let value = String::from_utf8_lossy(&p.payload)
                    .trim()
                    .parse::<u64>()
                    .ok();
                match p.topic.as_str() {
                    "$SYS/broker/bytes/received" => received = value,
                    "$SYS/broker/bytes/sent" => sent = value,
                    _ => {}
                }
            }
        }
        let _ = client.disconnect().await;
        Ok(received.unwrap_or(0) + sent.unwrap_or(0))
    }

    /// Stops the broker (SIGKILL): every client loses its connection.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> StackResult<()> {
        self.stop();
        self.launch()
    }
}
