//! The streams benchmark: exec round trip, port-forward throughput and the memory of
//! idle exec sessions, through the real kubectl, kube-apiserver (the test bed's control
//! plane), the gateway, the embedded broker, the agent and a Podman container. See
//! `--help` and docs/benchmarks.md#streams.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use edge_hil_tests::prometheus_text;
use edge_hil_tests::reference_kubelet::ReferenceKubelet;
use edge_hil_tests::scenario::{
    app_containers, create, is_ready, pod_manifest, uid, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, Cluster, ClusterBackend, Stack, StackOptions, binary,
};

/// Measures, on one machine, what a user of `kubectl exec` and `kubectl port-forward` to
/// a device pod gets: the time from a keystroke to its echo (exec -i, `cat` in the
/// container), port-forward download throughput with one and with ten parallel
/// connections next to a direct connection to the same container and to the same
/// port-forward through a reference kubelet (kube-apiserver and kubectl as for a device
/// pod, but the kubelet connects straight to the container: the ceiling no node-side
/// code can beat), the CPU each process spends per MB, and the gateway's and agent's
/// resident memory with idle exec sessions open. Prints a Markdown table.
///
/// Needs: `eval "$(scripts/test-env.sh)"`, `cargo build --workspace --bins`,
/// `cargo build -p edge-gateway --example reference_kubelet`, and the control plane
/// (`scripts/build-control-plane.sh`, found through EDGE_CONTROL_PLANE_BIN_DIR).
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Keystrokes timed (after 20 not counted).
    #[arg(long, default_value_t = 500)]
    keystrokes: usize,
    /// Size of the file downloaded through port-forward, in MiB.
    #[arg(long, default_value_t = 64)]
    file_mib: u32,
    /// Idle exec sessions held open for the memory figure.
    #[arg(long, default_value_t = 100)]
    idle_sessions: usize,
    /// Run over Mosquitto instead of the gateway's embedded broker.
    #[arg(long)]
    mosquitto: bool,
    /// The reference kubelet (`cargo build -p edge-gateway --example reference_kubelet`);
    /// default: `examples/reference_kubelet` in EDGE_TEST_BIN_DIR (or target/debug).
    #[arg(long)]
    reference_kubelet: Option<std::path::PathBuf>,
}

const PORT: u16 = 18080;
/// The Node and Pod served by the reference kubelet.
const REFERENCE_NODE: &str = "bench-streams-reference";
const REFERENCE_POD: &str = "bench-reference";

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn exec_cat(stack: &Stack) -> Result<Child> {
    Ok(stack
        .kubectl
        .command()
        .args(["exec", "-i", "-n", &stack.namespace, "bench", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?)
}

/// Keystroke → echo through `kubectl exec -i ... cat`.
fn exec_round_trips(stack: &Stack, count: usize) -> Result<Vec<Duration>> {
    let mut child = exec_cat(stack)?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut samples = Vec::with_capacity(count);
    let mut byte = [0u8; 1];
    for i in 0..count + 20 {
        let started = Instant::now();
        stdin.write_all(b"x")?;
        stdin.flush()?;
        stdout.read_exact(&mut byte)?;
        ensure!(byte[0] == b'x', "echo was {:?}", byte[0]);
        if i >= 20 {
            samples.push(started.elapsed());
        }
    }
    drop(stdin);
    let _ = child.wait();
    samples.sort();
    Ok(samples)
}

/// MB/s of `parallel` concurrent downloads of the file from `port`, together.
fn download(host: &str, port: u16, parallel: usize, bytes: u64) -> Result<f64> {
    let started = Instant::now();
    let children: Vec<Child> = (0..parallel)
        .map(|_| {
            Command::new("curl")
                .args([
                    "-sSf",
                    "-o",
                    "/dev/null",
                    &format!("http://{host}:{port}/blob"),
                ])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut c in children {
        let status = c.wait()?;
        ensure!(
            status.success(),
            "a download from {host}:{port} failed: curl {status} (its error is above)"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((bytes * parallel as u64) as f64 / secs / 1e6)
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // after the command name in parentheses: state is field 3, utime 14, stime 15
    let rest = stat.rsplit_once(')').context("no command name")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick =
        |i: usize| -> Result<u64> { Ok(fields.get(i).context("short stat")?.parse::<u64>()?) };
    Ok(tick(11)? + tick(12)?)
}

/// The processes whose CPU a download costs, by name.
struct CpuMeter {
    pids: Vec<(String, u32)>,
    ticks_per_second: f64,
}

impl CpuMeter {
    fn sample(&self) -> Vec<u64> {
        self.pids
            .iter()
            .map(|(_, pid)| cpu_ticks(*pid).unwrap_or(0))
            .collect()
    }

    /// CPU milliseconds per MB moved, per process, between two samples.
    fn per_mb(&self, before: &[u64], after: &[u64], megabytes: f64) -> Vec<(String, f64)> {
        self.pids
            .iter()
            .zip(before.iter().zip(after))
            .map(|((name, _), (b, a))| {
                let ms = a.saturating_sub(*b) as f64 / self.ticks_per_second * 1000.0;
                (name.clone(), ms / megabytes)
            })
            .collect()
    }
}

/// A download's figures: MB/s, and CPU ms per MB by process.
struct Measured {
    mb_per_s: f64,
    cpu: Vec<(String, f64)>,
}

fn measured(
    meter: &CpuMeter,
    megabytes: f64,
    run: impl FnOnce() -> Result<f64>,
) -> Result<Measured> {
    let before = meter.sample();
    let mb_per_s = run()?;
    let after = meter.sample();
    Ok(Measured {
        mb_per_s,
        cpu: meter.per_mb(&before, &after, megabytes),
    })
}

fn port_forward(stack: &Stack, pod: &str) -> Result<(Child, u16)> {
    let mut child = stack
        .kubectl
        .command()
        .args([
            "port-forward",
            "-n",
            &stack.namespace,
            &format!("pod/{pod}"),
            &format!(":{PORT}"),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(
            std::env::temp_dir().join("bench-streams-port-forward.err"),
        )?)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().context("port-forward said nothing")??;
    let local = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.split_once(' '))
        .and_then(|(p, _)| p.parse().ok())
        .with_context(|| format!("unexpected: {line}"))?;
    std::thread::spawn(move || for _ in lines {});
    Ok((child, local))
}

fn container_ip(pod_uid: &str) -> Result<String> {
    let (id, _) = app_containers(pod_uid)?
        .into_iter()
        .find(|(_, state)| state == "running")
        .context("no running container")?;
    let host = std::env::var("EDGE_TEST_DOCKER_HOST")?;
    let out = Command::new("podman")
        .args([
            "--url",
            &host,
            "inspect",
            "--format",
            "{{.NetworkSettings.IPAddress}}",
            &id,
        ])
        .output()?;
    let ip = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if ip.is_empty() {
        bail!("container {id} has no IP address");
    }
    Ok(ip)
}

async fn bench(args: &Args) -> Result<()> {
    eprintln!("starting the control plane, gateway and agent ...");
    let broker = if args.mosquitto {
        BrokerKind::Mosquitto
    } else {
        BrokerKind::Embedded
    };
    eprintln!("broker: {broker:?}");
    let mut options = StackOptions::fast(broker).on(ClusterBackend::ControlPlane);
    // room for the idle sessions and the ten parallel downloads (one stream each), never
    // below the agent's default limit of 32 streams
    options.agent_args = vec![
        "--max-streams".to_owned(),
        (args.idle_sessions + 8).max(32).to_string(),
    ];
    let mut stack = Stack::start(options).await?;
    stack.start_agent("bench-streams", &[], AgentBuild::Host)?;
    wait_node_ready(&stack, "bench-streams", "True", Duration::from_secs(60)).await?;
    let script = format!(
        "mkdir -p /www && dd if=/dev/zero of=/www/blob bs=1048576 count={} 2>/dev/null && httpd -f -p {PORT} -h /www",
        args.file_mib
    );
    create(&stack, &pod_manifest("bench", &[], true, "Always", &script)).await?;
    let pod = wait_pod(
        &stack,
        "bench",
        "bench running",
        Duration::from_secs(90),
        is_ready,
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let bytes = u64::from(args.file_mib) << 20;
    let gateway_pid = stack.gateway.pid().context("gateway not running")?;
    let gw_start = rss_kib(gateway_pid)?;
    let agent_pid = stack
        .agent("bench-streams")?
        .pid()
        .context("agent not running")?;

    eprintln!("exec round trips ({} keystrokes) ...", args.keystrokes);
    let rt = exec_round_trips(&stack, args.keystrokes)?;

    eprintln!(
        "port-forward and direct downloads of {} MiB ...",
        args.file_mib
    );
    let ip = container_ip(&uid(&pod))?;
    let megabytes = bytes as f64 / 1e6;
    let reference_pid = std::sync::OnceLock::new();
    let meter = |kubectl: Option<u32>| -> Result<CpuMeter> {
        let mut pids: Vec<(String, u32)> = match &stack.cluster {
            Cluster::ControlPlane(cp) => cp
                .pids()
                .into_iter()
                .filter(|(name, _)| name.contains("apiserver"))
                .collect(),
            _ => Vec::new(),
        };
        if let Some(pid) = kubectl {
            pids.push(("kubectl".to_owned(), pid));
        }
        pids.push(("gateway".to_owned(), gateway_pid));
        pids.push(("agent".to_owned(), agent_pid));
        if let Some(pid) = stack.mosquitto.as_ref().and_then(|m| m.pid()) {
            pids.push(("mosquitto".to_owned(), pid));
        }
        if let Some(pid) = reference_pid.get() {
            pids.push(("reference kubelet".to_owned(), *pid));
        }
        Ok(CpuMeter {
            pids,
            ticks_per_second: clock_ticks(),
        })
    };
    let direct = meter(None)?;
    let direct_1 = measured(&direct, megabytes, || download(&ip, PORT, 1, bytes))?;
    let direct_10 = measured(&direct, megabytes * 10.0, || download(&ip, PORT, 10, bytes))?;

    let forwarded = |pod: &str, parallel: usize| -> Result<Measured> {
        let (mut forward, local) = port_forward(&stack, pod)?;
        let meter = meter(Some(forward.id()))?;
        let result = measured(&meter, megabytes * parallel as f64, || {
            download("127.0.0.1", local, parallel, bytes)
        })
        .with_context(|| {
            let path = std::env::temp_dir().join("bench-streams-stack.log");
            match std::fs::write(&path, stack.logs()) {
                Ok(()) => format!(
                    "port-forward to {pod}, {parallel} connection(s); the stack's logs are in {}",
                    path.display()
                ),
                Err(e) => format!("port-forward to {pod}, {parallel} connection(s) (logs: {e})"),
            }
        });
        let _ = forward.kill();
        let _ = forward.wait();
        result
    };
    let reference_bin = match &args.reference_kubelet {
        Some(path) => path.clone(),
        None => binary("examples/reference_kubelet")?,
    };
    let reference = ReferenceKubelet::start(
        &reference_bin,
        stack
            .cluster
            .kubelet_client_ca()
            .context("the cluster has no kubelet client CA")?,
        ip.parse()?,
    )?;
    let _ = reference_pid.set(reference.pid());
    reference
        .register(
            &stack.client().await?,
            REFERENCE_NODE,
            &stack.namespace,
            REFERENCE_POD,
            ip.parse()?,
        )
        .await?;
    let reference_1 = forwarded(REFERENCE_POD, 1)?;
    let reference_10 = forwarded(REFERENCE_POD, 10)?;
    let pf_1 = forwarded("bench", 1)?;
    let pf_10 = forwarded("bench", 10)?;

    eprintln!("memory with {} idle exec sessions ...", args.idle_sessions);
    let metrics_url = stack.gateway.metrics_url();
    let scrape = || -> Result<String> {
        let out = Command::new("curl").args(["-sf", &metrics_url]).output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (gw_before, agent_before) = (rss_kib(gateway_pid)?, rss_kib(agent_pid)?);
    let mut idle = Vec::new();
    for _ in 0..args.idle_sessions {
        idle.push(exec_cat(&stack)?);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open = prometheus_text::sum(
            &prometheus_text::parse(&scrape()?)?,
            "edge_gateway_streams_open",
        );
        if open >= args.idle_sessions as f64 {
            break;
        }
        ensure!(Instant::now() < deadline, "only {open} sessions opened");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (gw_after, agent_after) = (rss_kib(gateway_pid)?, rss_kib(agent_pid)?);
    for mut c in idle {
        let _ = c.kill();
        let _ = c.wait();
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| exec round trip (keystroke → echo), {} samples | p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms |",
        rt.len(),
        ms(percentile(&rt, 0.5)),
        ms(percentile(&rt, 0.9)),
        ms(percentile(&rt, 0.99)),
        ms(rt[rt.len() - 1])
    );
    for (label, d, r, o) in [
        ("1 connection", &direct_1, &reference_1, &pf_1),
        ("10 connections", &direct_10, &reference_10, &pf_10),
    ] {
        let (d, r, o) = (d.mb_per_s, r.mb_per_s, o.mb_per_s);
        println!(
            "| download, {label}: direct / reference kubelet / ours | {d:.0} / {r:.0} / {o:.0} MB/s (reference {:.0} % of direct; ours {:.0} % of direct, {:.0} % of the reference) |",
            r / d * 100.0,
            o / d * 100.0,
            o / r * 100.0
        );
    }
    for (label, m) in [
        ("direct, 10 connections", &direct_10),
        ("reference kubelet, 10 connections", &reference_10),
        ("ours, 10 connections", &pf_10),
        ("ours, 1 connection", &pf_1),
    ] {
        let parts: Vec<String> = m
            .cpu
            .iter()
            .filter(|(_, ms)| *ms >= 0.1)
            .map(|(name, ms)| format!("{name} {ms:.2}"))
            .collect();
        println!("| CPU ms per MB, {label} | {} |", parts.join(", "));
    }
    println!(
        "| gateway RSS before any stream | {:.1} MiB |",
        gw_start as f64 / 1024.0
    );
    println!(
        "| gateway RSS after the downloads / with {} idle exec sessions | {:.1} MiB / {:.1} MiB ({:.0} KiB per session) |",
        args.idle_sessions,
        gw_before as f64 / 1024.0,
        gw_after as f64 / 1024.0,
        (gw_after.saturating_sub(gw_before)) as f64 / args.idle_sessions as f64
    );
    println!(
        "| agent RSS: idle / with {} idle exec sessions | {:.1} MiB / {:.1} MiB ({:.0} KiB per session) |",
        args.idle_sessions,
        agent_before as f64 / 1024.0,
        agent_after as f64 / 1024.0,
        (agent_after.saturating_sub(agent_before)) as f64 / args.idle_sessions as f64
    );
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match bench(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-streams: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
