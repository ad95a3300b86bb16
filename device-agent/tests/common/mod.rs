//! Shared test bed for the agent's integration tests: real brokers (embedded rumqttd,
//! Mosquitto), the real agent binary, real Podman containers, and a "gateway" test
//! client that publishes desired sets and collects what the device sends.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_protocol::{
    ContainerSpec, DesiredSet, DeviceId, DownChannel, Message, PodSpec, PodStatus, RestartPolicy,
    Topic, UpChannel,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

pub mod registry;

/// A variable the test needs; fails loudly when missing.
pub fn require_env(name: &str, what: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: {what}. Run `eval \"$(bash scripts/test-env.sh)\"` (or scripts/test.sh) first."
        ),
    }
}

pub fn docker_host() -> String {
    let host = require_env(
        "EDGE_TEST_DOCKER_HOST",
        "the Podman Docker-API socket the agent runs containers through",
    );
    let path = host.strip_prefix("unix://").unwrap_or(&host);
    assert!(
        Path::new(path).exists(),
        "EDGE_TEST_DOCKER_HOST={host}: socket missing; start Podman with scripts/test-env.sh"
    );
    host
}

pub fn test_image() -> String {
    require_env(
        "EDGE_TEST_IMAGE",
        "the busybox test image (localhost/busybox:test)",
    )
}

pub fn require_tool(path: &str, package: &str) {
    assert!(
        Path::new(path).exists() || which(path),
        "{path} is missing: install Debian package {package} (scripts/install-test-deps.sh)"
    );
}

fn which(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub fn wait_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
}

/// Starts rumqttd in-process on a free port (it lives until the test process ends).
pub fn start_rumqttd() -> u16 {
    let port = free_port();
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 20971520
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&text).unwrap();
    std::thread::spawn(move || {
        let mut broker = rumqttd::Broker::new(config);
        if let Err(e) = broker.start() {
            eprintln!("rumqttd stopped: {e}");
        }
    });
    wait_port(port, Duration::from_secs(10));
    port
}

/// Mosquitto as a child process; restartable on the same port.
///
/// While it is stopped, the port stays taken by a placeholder that accepts and drops
/// connections (a dead broker), so no other test's broker can start there meanwhile
/// and silently receive this test's messages.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    placeholder: Option<(
        Arc<std::sync::atomic::AtomicBool>,
        std::thread::JoinHandle<()>,
    )>,
}

fn hold_port(
    port: u16,
) -> (
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => break l,
            Err(e) if Instant::now() > deadline => panic!("cannot hold port {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            match listener.accept() {
                Ok((conn, _)) => drop(conn),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (stop, handle)
}

impl Mosquitto {
    pub fn start() -> Self {
        require_tool("/usr/sbin/mosquitto", "mosquitto");
        let dir = tempfile::tempdir().unwrap();
        let mut m = Self {
            port: free_port(),
            dir,
            child: None,
            placeholder: None,
        };
        m.restart();
        m
    }

    pub fn restart(&mut self) {
        self.stop();
        if let Some((stop, handle)) = self.placeholder.take() {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = handle.join();
        }
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                // `user root`: started as root, Mosquitto otherwise runs as `mosquitto`, which
                // cannot write its database into this root-only directory, and a restart
                // loses the sessions and the messages queued for them
                "listener {} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location {}/\nmessage_size_limit 20000000\nmax_queued_messages 100000\n",
                self.port,
                self.dir.path().display()
            ),
        )
        .unwrap();
        // appended across restarts: whether the stopped broker saved its sessions shows
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_port(self.port, Duration::from_secs(10));
    }

    /// SIGTERM: Mosquitto saves its sessions (the test gateway's subscription) and exits;
    /// the port is then held by a placeholder until [`Mosquitto::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    eprintln!(
                        "mosquitto did not exit within 10 s of SIGTERM: killed, its sessions unsaved"
                    );
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.placeholder = Some(hold_port(self.port));
        }
    }
}

impl Mosquitto {
    /// Everything the broker logged, over all its restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
        if let Some((stop, handle)) = self.placeholder.take() {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = handle.join();
        }
    }
}

/// One running edge-agent process.
pub struct AgentProcess {
    pub device: String,
    pub state_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    program: Vec<String>,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

pub fn agent_binary() -> String {
    env!("CARGO_BIN_EXE_edge-agent").to_owned()
}

impl AgentProcess {
    /// `program` is the command (binary, or e.g. qemu + binary); fast timings for tests.
    pub fn start_with(
        program: Vec<String>,
        device: &str,
        broker_port: u16,
        dir: &Path,
        extra: &[&str],
    ) -> Self {
        Self::start_on_runtime(program, device, broker_port, dir, extra, &docker_host())
    }

    /// Like [`AgentProcess::start_with`] on the container runtime at `runtime_socket`.
    pub fn start_on_runtime(
        program: Vec<String>,
        device: &str,
        broker_port: u16,
        dir: &Path,
        extra: &[&str],
        runtime_socket: &str,
    ) -> Self {
        let state_dir = dir.join(format!("state-{device}"));
        let mut args: Vec<String> = vec![
            "run".into(),
            "--device-id".into(),
            device.into(),
            "--broker-url".into(),
            format!("mqtt://127.0.0.1:{broker_port}"),
            "--state-dir".into(),
            state_dir.display().to_string(),
            "--runtime-socket".into(),
            runtime_socket.into(),
            "--heartbeat-interval".into(),
            "1s".into(),
            "--sync-interval".into(),
            "500ms".into(),
            "--crash-loop-backoff-initial".into(),
            "1s".into(),
            "--crash-loop-backoff-max".into(),
            "4s".into(),
            "--reconnect-backoff-max".into(),
            "1s".into(),
            "--keepalive".into(),
            "5s".into(),
            "--log-filter".into(),
            "edge_agent=debug,info".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut a = Self {
            device: device.into(),
            log: dir.join(format!("agent-{device}.log")),
            state_dir,
            args,
            program,
            env: Vec::new(),
            child: None,
        };
        a.spawn();
        a
    }

    /// Like [`AgentProcess::start`] with extra environment variables.
    pub fn start_env(device: &str, broker_port: u16, dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut a = Self::start_with(vec![agent_binary()], device, broker_port, dir, &[]);
        a.kill9();
        a.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        a.spawn();
        a
    }

    pub fn start(device: &str, broker_port: u16, dir: &Path) -> Self {
        Self::start_with(vec![agent_binary()], device, broker_port, dir, &[])
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.program[0])
            .args(&self.program[1..])
            .args(&self.args)
            .env_remove("NOTIFY_SOCKET")
            // the test runtime is shared: no image GC or evictions from a full disk of
            // the test machine (a test's own env or flags turn them on)
            .env("EDGE_AGENT_EVICTION_MONITORING_INTERVAL_SECONDS", "0")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGKILL, like a power cut of the agent alone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (graceful).
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
        // EDGE_TEST_KEEP_LOGS=<dir>: keep every agent log for debugging.
        if let Ok(keep) = std::env::var("EDGE_TEST_KEEP_LOGS") {
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(
                &self.log,
                Path::new(&keep).join(format!("agent-{}.log", self.device)),
            );
        }
        if std::thread::panicking() {
            eprintln!(
                "---- agent {} log ----\n{}",
                self.device,
                tail(&self.log_text(), 120)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// What the test gateway received.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: Topic,
    pub message: Message,
    pub retained: bool,
    /// The payload was a binary stream data frame (not a JSON envelope).
    pub binary: bool,
}

/// A stand-in for edge-gateway: publishes desired sets, records uplink messages.
pub struct TestGateway {
    pub client: AsyncClient,
    pub device: DeviceId,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub connected: Arc<std::sync::atomic::AtomicBool>,
}

impl TestGateway {
    pub async fn connect(port: u16, device: &str) -> Self {
        let device = DeviceId::new(device).unwrap();
        let mut o = MqttOptions::new(
            format!("test-gw-{device}-{}", free_port()),
            "127.0.0.1",
            port,
        );
        o.set_keep_alive(Duration::from_secs(5));
        // A persistent session: messages the agent sends while this client reconnects
        // after a broker restart are kept for it.
        o.set_clean_session(false);
        o.set_max_packet_size(20 * 1024 * 1024, 20 * 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(o, 100);
        let received = Arc::new(Mutex::new(Vec::new()));
        let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let rx = received.clone();
        let sub_client = client.clone();
        let filter = format!("edge/v1/{device}/up/#");
        let conn = connected.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        // shown with a failing test: a restarted broker that lost this
                        // session drops what the agent sent before the subscription
                        eprintln!(
                            "test gateway connected: session_present={}",
                            ack.session_present
                        );
                        let _ = sub_client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        conn.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Ok(topic) = Topic::parse(&p.topic) else {
                            continue;
                        };
                        match Message::decode_on(&topic, &p.payload) {
                            Ok(message) => rx.lock().unwrap().push(Received {
                                topic,
                                message,
                                retained: p.retain,
                                binary: edge_protocol::stream::is_data_frame(&p.payload),
                            }),
                            Err(e) => panic!("agent sent an undecodable message on {topic}: {e}"),
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        conn.store(false, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        let gw = Self {
            client,
            device,
            received,
            connected,
        };
        gw.wait_connected().await;
        gw
    }

    /// Waits for the agent's connect-time resync request (it is subscribed then).
    pub async fn wait_agent_online(&self) {
        wait_until(
            Duration::from_secs(30),
            "agent online (resync request)",
            || self.count(UpChannel::Resync) > 0,
        )
        .await;
    }

    /// Sequences of all status reports received, in arrival order.
    pub fn report_sequences(&self) -> Vec<u64> {
        self.messages()
            .into_iter()
            .filter_map(|r| match r.message {
                Message::PodStatusReport(rep) => Some(rep.sequence),
                _ => None,
            })
            .collect()
    }

    pub async fn wait_connected(&self) {
        wait_until(Duration::from_secs(20), "test gateway subscribed", || {
            self.connected.load(std::sync::atomic::Ordering::SeqCst)
        })
        .await;
    }

    pub async fn publish(&self, channel: DownChannel, message: Message) {
        let topic = Topic::down(&self.device, channel);
        self.client
            .publish(
                topic.to_string(),
                QoS::AtLeastOnce,
                false,
                message.encode().unwrap(),
            )
            .await
            .unwrap();
    }

    pub async fn publish_raw(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    pub async fn desire(&self, generation: u64, pods: Vec<PodSpec>) {
        self.publish(DownChannel::Desired, DesiredSet { generation, pods }.into())
            .await;
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Every pod status received, oldest first, with its report sequence.
    pub fn statuses(&self) -> Vec<(u64, PodStatus)> {
        self.messages()
            .into_iter()
            .filter_map(|r| match r.message {
                Message::PodStatusReport(rep) => Some(
                    rep.pods
                        .into_iter()
                        .map(|p| (rep.sequence, p))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn latest_status(&self, uid: &str) -> Option<PodStatus> {
        self.statuses()
            .into_iter()
            .filter(|(_, p)| p.uid == uid)
            .max_by_key(|(seq, _)| *seq)
            .map(|(_, p)| p)
    }

    pub fn event_reasons(&self, uid: &str) -> Vec<String> {
        self.messages()
            .into_iter()
            .filter_map(|r| match r.message {
                Message::PodEventReport(e) => Some(e.events),
                _ => None,
            })
            .flatten()
            .filter(|e| e.pod_uid == uid)
            .map(|e| e.reason)
            .collect()
    }

    pub fn count(&self, channel: UpChannel) -> usize {
        self.messages()
            .iter()
            .filter(|r| matches!(&r.topic, Topic::Up { channel: c, .. } if *c == channel))
            .count()
    }

    /// Waits until the latest status of `uid` satisfies `pred`.
    pub async fn wait_status(
        &self,
        uid: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&PodStatus) -> bool,
    ) -> PodStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.latest_status(uid)
                && pred(&s)
            {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for pod {uid}: {what}; latest status: {:#?}",
                    self.latest_status(uid)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub async fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A unique pod uid for this test run (containers are labelled with it).
pub fn unique_uid(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}-{:x}-{}", nanos & 0xffff_ffff, std::process::id())
}

/// A busybox pod running `script` with sh, host networking, short grace period.
pub fn busybox_pod(uid: &str, name: &str, script: &str) -> PodSpec {
    PodSpec {
        uid: uid.into(),
        namespace: "default".into(),
        name: name.into(),
        containers: vec![ContainerSpec {
            name: "main".into(),
            image: test_image(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }],
        restart_policy: RestartPolicy::Always,
        termination_grace_period_seconds: 1,
        host_network: true,
        ..Default::default()
    }
}

/// A pod on the pod network: `web` serves `greeting` on 127.0.0.1:8080 only; `client`
/// fetches it over loopback every 0.3 s and prints it and `host=<its hostname>`.
pub fn localhost_pod(uid: &str, name: &str, greeting: &str) -> PodSpec {
    let mut spec = busybox_pod(
        uid,
        name,
        &format!(
            "mkdir -p /www && echo {greeting} > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"
        ),
    );
    spec.host_network = false;
    spec.containers[0].name = "web".into();
    spec.containers.push(ContainerSpec {
        name: "client".into(),
        image: test_image(),
        command: vec![
            "sh".into(),
            "-c".into(),
            "while true; do wget -q -O - http://127.0.0.1:8080/ && echo host=$(hostname); sleep 0.3; done"
                .into(),
        ],
        ..Default::default()
    });
    spec
}

pub fn is_running(s: &PodStatus) -> bool {
    s.phase == edge_protocol::PodPhase::Running
        && s.containers
            .iter()
            .all(|c| matches!(c.state, edge_protocol::ContainerState::Running { .. }))
}

pub fn waiting_reason(s: &PodStatus) -> Option<String> {
    match &s.containers.first()?.state {
        edge_protocol::ContainerState::Waiting { reason, .. } => Some(reason.clone()),
        _ => None,
    }
}

/// Podman containers (id, name, state) labelled with this pod uid.
pub fn podman_containers(uid: &str) -> Vec<(String, String, String)> {
    let out = Command::new("podman")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label=io.edge-kube.pod-uid={uid}"),
            "--format",
            "{{.ID}} {{.Names}} {{.State}}",
        ])
        .output()
        .expect("podman CLI (Debian package podman)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_owned(),
                it.next()?.to_owned(),
                it.next()?.to_owned(),
            ))
        })
        .collect()
}

/// Removes the containers of these pods when dropped (tests clean up after themselves).
pub struct PodCleanup(pub Vec<String>);

impl Drop for PodCleanup {
    fn drop(&mut self) {
        for uid in &self.0 {
            for (id, _, _) in podman_containers(uid) {
                let _ = Command::new("podman")
                    .args(["rm", "-f", "-t", "0", &id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
