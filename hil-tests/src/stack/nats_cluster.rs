//! A NATS cluster (Debian's `nats-server`, MQTT through JetStream) on free loopback
//! ports: either plain MQTT without authentication for end-to-end runs, or the node
//! files `edge-gateway broker-config nats` writes. Nodes can be killed (SIGKILL) and
//! started again on the same ports; each node's monitoring port tells which MQTT clients
//! it holds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::child_process::ChildProcess;
use super::{StackError, StackResult, free_loopback_port, wait_for_tcp};

/// Where Debian installs the server.
pub const NATS_SERVER_BIN: &str = "/usr/sbin/nats-server";

/// The loopback ports of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatsNodePorts {
    pub mqtt: u16,
    pub route: u16,
    /// Monitoring (`/healthz`, `/connz`).
    pub http: u16,
}

impl NatsNodePorts {
    /// Ports nobody listens on right now.
    pub fn free() -> StackResult<Self> {
        Ok(Self {
            mqtt: free_loopback_port()?,
            route: free_loopback_port()?,
            http: free_loopback_port()?,
        })
    }
}

#[derive(Debug)]
struct Node {
    ports: NatsNodePorts,
    /// The file `nats-server -c` reads.
    conf: PathBuf,
    process: Option<ChildProcess>,
}

/// A running cluster. Dropping it kills every node.
#[derive(Debug)]
pub struct NatsCluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

fn need_server() -> StackResult<()> {
    if Path::new(NATS_SERVER_BIN).exists() {
        Ok(())
    } else {
        Err(StackError::MissingTool {
            tool: NATS_SERVER_BIN.to_owned(),
            hint: "run scripts/install-test-deps.sh (Debian package nats-server)".to_owned(),
        })
    }
}

fn write(path: &Path, body: &str) -> StackResult<()> {
    std::fs::write(path, body).map_err(|e| StackError::io(path, e))
}

impl NatsCluster {
    /// `nodes` nodes with plain MQTT and no authentication, JetStream under `dir`.
    pub fn start_plain(dir: &Path, nodes: usize) -> StackResult<Self> {
        need_server()?;
        std::fs::create_dir_all(dir).map_err(|e| StackError::io(dir, e))?;
        let ports: Vec<NatsNodePorts> = (0..nodes)
            .map(|_| NatsNodePorts::free())
            .collect::<StackResult<_>>()?;
        let routes: Vec<String> = ports
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{}\"", p.route))
            .collect();
        let mut confs = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let conf = dir.join(format!("nats-{}.conf", i + 1));
            write(
                &conf,
                &format!(
                    "server_name: \"n{n}\"\nhost: \"127.0.0.1\"\nport: -1\n\
                     http: \"127.0.0.1:{http}\"\nmax_payload: 8454144\n\
                     jetstream {{ store_dir: \"{js}\" }}\n\
                     cluster {{ name: \"edge-test\", listen: \"127.0.0.1:{route}\", routes: [{routes}] }}\n\
                     mqtt {{ listen: \"127.0.0.1:{mqtt}\", stream_replicas: {replicas} }}\n",
                    n = i + 1,
                    http = p.http,
                    js = dir.join(format!("js-{}", i + 1)).display(),
                    route = p.route,
                    routes = routes.join(", "),
                    mqtt = p.mqtt,
                    replicas = nodes.min(3),
                ),
            )?;
            confs.push((conf, *p));
        }
        let cluster = Self::start_with(dir, confs)?;
        cluster.wait_plain_round_trip(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// Waits until a QoS 1 publish is acknowledged on every node of a plain cluster:
    /// the MQTT streams exist and have a leader (`/healthz` says ok before that).
    pub fn wait_plain_round_trip(&self, timeout: Duration) -> StackResult<()> {
        let deadline = Instant::now() + timeout;
        for node in &self.nodes {
            loop {
                let out = Command::new("timeout")
                    .args(["5", "mosquitto_pub", "-h", "127.0.0.1", "-q", "1"])
                    .args(["-p", &node.ports.mqtt.to_string()])
                    .args(["-t", "edge-test/ready", "-m", "ready"])
                    .output()
                    .map_err(|e| StackError::Spawn {
                        program: "mosquitto_pub (Debian package mosquitto-clients)".to_owned(),
                        error: e.to_string(),
                    })?;
                if out.status.success() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(StackError::NotReady {
                        what: format!("NATS MQTT on port {}", node.ports.mqtt),
                        seconds: timeout.as_secs(),
                        detail: format!(
                            "; mosquitto_pub: {}\n{}",
                            String::from_utf8_lossy(&out.stderr),
                            self.logs()
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        Ok(())
    }

    /// Starts one node per `(config file, its ports)`; for files written by
    /// `broker-config nats`, a wrapper next to each adds the monitoring port.
    pub fn start_with(dir: &Path, confs: Vec<(PathBuf, NatsNodePorts)>) -> StackResult<Self> {
        need_server()?;
        let mut cluster = Self {
            dir: dir.to_owned(),
            nodes: Vec::new(),
        };
        for (conf, ports) in confs {
            let body = std::fs::read_to_string(&conf).map_err(|e| StackError::io(&conf, e))?;
            let conf = if body.contains("\nhttp:") {
                conf
            } else {
                let name = conf
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("nats.conf")
                    .to_owned();
                let wrapper = conf.with_file_name(format!("monitored-{name}"));
                write(
                    &wrapper,
                    &format!("include {name}\nhttp: \"127.0.0.1:{}\"\n", ports.http),
                )?;
                wrapper
            };
            cluster.nodes.push(Node {
                ports,
                conf,
                process: None,
            });
        }
        for i in 0..cluster.nodes.len() {
            cluster.launch(i)?;
        }
        cluster.wait_healthy(Duration::from_secs(60))?;
        Ok(cluster)
    }

    fn launch(&mut self, i: usize) -> StackResult<()> {
        let dir = self.dir.clone();
        let node = self
            .nodes
            .get_mut(i)
            .ok_or_else(|| StackError::Other(format!("no NATS node {i}")))?;
        let mut cmd = Command::new(NATS_SERVER_BIN);
        cmd.arg("-c").arg(&node.conf);
        node.process = Some(ChildProcess::spawn(&format!("nats-{}", i + 1), cmd, &dir)?);
        wait_for_tcp(node.ports.mqtt, Duration::from_secs(20), "nats-server MQTT")
    }

    /// Waits until every running node reports healthy (JetStream current).
    pub fn wait_healthy(&self, timeout: Duration) -> StackResult<()> {
        let deadline = Instant::now() + timeout;
        for node in self.nodes.iter().filter(|n| n.process.is_some()) {
            loop {
                let last = http_get(node.ports.http, "/healthz").unwrap_or_else(|e| e);
                if last.contains("\"ok\"") {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(StackError::NotReady {
                        what: format!("NATS node on MQTT port {}", node.ports.mqtt),
                        seconds: timeout.as_secs(),
                        detail: format!("; /healthz: {last}\n{}", self.logs()),
                    });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn ports(&self, i: usize) -> Option<NatsNodePorts> {
        self.nodes.get(i).map(|n| n.ports)
    }

    /// Every node's `scheme://127.0.0.1:port`, comma-separated, starting with node `first`
    /// (clients try them in that order).
    pub fn urls(&self, scheme: &str, first: usize) -> String {
        let n = self.nodes.len().max(1);
        (0..self.nodes.len())
            .filter_map(|k| self.nodes.get((first + k) % n))
            .map(|node| format!("{scheme}://127.0.0.1:{}", node.ports.mqtt))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The MQTT client ids connected to node `i` (its `/connz`).
    pub fn mqtt_clients(&self, i: usize) -> StackResult<Vec<String>> {
        let node = self
            .nodes
            .get(i)
            .ok_or_else(|| StackError::Other(format!("no NATS node {i}")))?;
        let body = http_get(node.ports.http, "/connz?limit=100000").map_err(StackError::Other)?;
        let json = body.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| StackError::Other(format!("/connz: {e}")))?;
        Ok(value
            .get("connections")
            .and_then(|c| c.as_array())
            .map(|conns| {
                conns
                    .iter()
                    .filter_map(|c| c.get("mqtt_client").and_then(|m| m.as_str()))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The node `client_id` is connected to, if any.
    pub fn node_of(&self, client_id: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| {
            self.nodes.get(i).is_some_and(|n| n.process.is_some())
                && self
                    .mqtt_clients(i)
                    .is_ok_and(|c| c.iter().any(|c| c == client_id))
        })
    }

    /// SIGKILL node `i`: its clients lose their connections.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes.get_mut(i).and_then(|n| n.process.take()) {
            p.kill9();
        }
    }

    /// Starts node `i` again on its ports and store, and waits until it has its routes
    /// to the other nodes again. (Its `/healthz` may stay unhealthy: nats-server 2.9.10
    /// reports consumers of sessions that ended while it was down as not current.)
    pub fn restart(&mut self, i: usize) -> StackResult<()> {
        self.kill(i);
        self.launch(i)?;
        let port = self.ports(i).map(|p| p.http).unwrap_or(0);
        let others = self.nodes.len().saturating_sub(1);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let routes = http_get(port, "/routez")
                .ok()
                .and_then(|r| {
                    let json = r.split_once("\r\n\r\n")?.1.to_owned();
                    serde_json::from_str::<serde_json::Value>(&json).ok()
                })
                .and_then(|v| v.get("num_routes")?.as_u64())
                .unwrap_or(0);
            if usize::try_from(routes).unwrap_or(0) >= others {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StackError::NotReady {
                    what: format!("NATS node {} routes", i + 1),
                    seconds: 60,
                    detail: format!(" ({routes} of {others})\n{}", self.logs()),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = node
                .process
                .as_ref()
                .map(ChildProcess::log)
                .unwrap_or_else(|| {
                    std::fs::read_to_string(self.dir.join(format!("nats-{}.log", i + 1)))
                        .unwrap_or_default()
                });
            let lines: Vec<&str> = log.lines().collect();
            out += &format!(
                "--- nats node {} ---\n{}\n",
                i + 1,
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
        out
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A plain HTTP/1.0 GET on loopback: the whole response, or why not.
fn http_get(port: u16, path: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    stream
        .read_to_string(&mut body)
        .map_err(|e| e.to_string())?;
    Ok(body)
}
