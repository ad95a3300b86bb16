//! The `edge-gateway` binary as a process of the stack.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::child_process::ChildProcess;
use super::stack_env::binary;
use super::{StackError, StackResult};

/// What the gateway writes to `--ready-file` once it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct GatewayReady {
    pub mqtt_port: Option<u16>,
    pub kubelet_port: u16,
    pub metrics_port: u16,
    /// The autonomy admission webhook's port, when the gateway serves it.
    #[serde(default)]
    pub webhook_port: Option<u16>,
}

/// How to run the gateway.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub kubeconfig: PathBuf,
    pub store_dir: PathBuf,
    /// `None`: the embedded broker on a free port; `Some(url)`: an external broker.
    pub broker_url: Option<String>,
    pub kubelet_client_ca: Option<PathBuf>,
    pub node_address: String,
    pub device_timeout: Duration,
    pub node_lease_renew: Duration,
    pub extra_args: Vec<String>,
}

impl GatewayOptions {
    /// A gateway of `cluster` (its own kubeconfig and the kubelet client CA) keeping its
    /// store in `store_dir`: the embedded broker, the Node address 127.0.0.1, a device
    /// timeout of 5 s and a lease renewal every second; set the rest with `..`.
    pub fn for_cluster(cluster: &super::Cluster, store_dir: PathBuf) -> Self {
        Self {
            kubeconfig: cluster.gateway_kubeconfig_path().to_owned(),
            store_dir,
            broker_url: None,
            kubelet_client_ca: cluster.kubelet_client_ca().map(Path::to_owned),
            node_address: "127.0.0.1".to_owned(),
            device_timeout: Duration::from_secs(5),
            node_lease_renew: Duration::from_secs(1),
            extra_args: Vec::new(),
        }
    }
}

/// A running gateway process. Restarting keeps the store directory and, for the
/// embedded broker, the MQTT port, so agents reconnect to the same address.
#[derive(Debug)]
pub struct Gateway {
    options: GatewayOptions,
    log_dir: PathBuf,
    process: Option<ChildProcess>,
    ready: GatewayReady,
    mqtt_listen: String,
}

impl Gateway {
    pub fn start(options: GatewayOptions, log_dir: &Path) -> StackResult<Self> {
        let mut gw = Self {
            options,
            log_dir: log_dir.to_owned(),
            process: None,
            ready: GatewayReady {
                mqtt_port: None,
                kubelet_port: 0,
                metrics_port: 0,
                webhook_port: None,
            },
            mqtt_listen: "127.0.0.1:0".to_owned(),
        };
        gw.launch()?;
        // Keep the embedded broker's port across restarts.
        if let Some(port) = gw.ready.mqtt_port {
            gw.mqtt_listen = format!("127.0.0.1:{port}");
        }
        Ok(gw)
    }

    fn launch(&mut self) -> StackResult<()> {
        let o = &self.options;
        let ready_file = self.log_dir.join("gateway.ready");
        let _ = std::fs::remove_file(&ready_file);
        let mut cmd = Command::new(binary("edge-gateway")?);
        cmd.arg("run")
            .arg("--kubeconfig")
            .arg(&o.kubeconfig)
            .arg("--store-dir")
            .arg(&o.store_dir)
            // Loopback for the emulator; all interfaces when a real API server must
            // reach the kubelet API at --node-address. A restart keeps the port: the
            // Node of an offline device still names it.
            .args([
                "--kubelet-listen",
                &format!(
                    "{}:{}",
                    if o.node_address.starts_with("127.") {
                        "127.0.0.1"
                    } else {
                        "0.0.0.0"
                    },
                    self.ready.kubelet_port
                ),
            ])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--node-address", &o.node_address])
            .args([
                "--device-timeout",
                &format!("{}ms", o.device_timeout.as_millis()),
            ])
            .args([
                "--node-lease-renew",
                &format!("{}ms", o.node_lease_renew.as_millis()),
            ])
            .arg("--ready-file")
            .arg(&ready_file)
            .env("RUST_LOG", "info,edge_gateway=debug");
        match &o.broker_url {
            Some(url) => cmd.args(["--broker-url", url]),
            None => cmd.args(["--mqtt-listen", &self.mqtt_listen]),
        };
        if let Some(ca) = &o.kubelet_client_ca {
            cmd.arg("--kubelet-client-ca").arg(ca);
        }
        cmd.args(&o.extra_args);
        let mut process = ChildProcess::spawn("gateway", cmd, &self.log_dir)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(raw) = std::fs::read_to_string(&ready_file)
                && let Ok(ready) = serde_json::from_str::<GatewayReady>(&raw)
            {
                self.ready = ready;
                break;
            }
            if !process.is_running() || Instant::now() > deadline {
                return Err(StackError::NotReady {
                    what: "edge-gateway".to_owned(),
                    seconds: 60,
                    detail: format!("; its log:\n{}", process.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.process = Some(process);
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }

    pub fn ready(&self) -> GatewayReady {
        self.ready
    }

    /// The URL agents use: the embedded broker, or the external one.
    pub fn broker_url(&self) -> String {
        match (&self.options.broker_url, self.ready.mqtt_port) {
            (Some(url), _) => url.clone(),
            (None, Some(port)) => format!("mqtt://127.0.0.1:{port}"),
            (None, None) => String::new(),
        }
    }

    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.ready.metrics_port)
    }

    pub fn log(&self) -> String {
        self.process.as_ref().map(|p| p.log()).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill9();
        }
    }

    /// Starts it again on an empty store (a lost disk), same ports.
    pub fn restart_with_empty_store(&mut self) -> StackResult<()> {
        self.kill9();
        let store = &self.options.store_dir;
        std::fs::remove_dir_all(store).map_err(|e| StackError::io(store, e))?;
        self.relaunch()
    }

    /// Starts it again with the same store and ports.
    pub fn restart(&mut self) -> StackResult<()> {
        self.kill9();
        self.relaunch()
    }

    /// Starts it again on the same kubelet port; if another process of the test run took
    /// that port while the gateway was down, on a new one (the Node of an online device
    /// gets the new port with its next status).
    fn relaunch(&mut self) -> StackResult<()> {
        match self.launch() {
            Err(StackError::NotReady { detail, .. })
                if self.ready.kubelet_port != 0
                    && detail.contains("for the kubelet API: Address already in use") =>
            {
                self.ready.kubelet_port = 0;
                self.launch()
            }
            other => other,
        }
    }
}
