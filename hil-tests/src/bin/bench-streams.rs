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
use edge_hil_tests::scenario::{
    app_containers, create, is_ready, pod_manifest, uid, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions};

/// Measures, on one machine, what a user of `kubectl exec` and `kubectl port-forward` to
/// a device pod gets: the time from a keystroke to its echo (exec -i, `cat` in the
/// container), port-forward download throughput with one and with ten parallel
/// connections next to a direct connection to the same container, and the gateway's and
/// agent's resident memory with idle exec sessions open. Prints a Markdown table.
///
/// Needs: `eval "$(scripts/test-env.sh)"`, `cargo build --workspace --bins`, and the
/// control plane (`scripts/build-control-plane.sh`, found through
/// EDGE_CONTROL_PLANE_BIN_DIR).
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
}

const PORT: u16 = 18080;

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

fn port_forward(stack: &Stack) -> Result<(Child, u16)> {
    let mut child = stack
        .kubectl
        .command()
        .args([
            "port-forward",
            "-n",
            &stack.namespace,
            "pod/bench",
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

    eprintln!("exec round trips ({} keystrokes) ...", args.keystrokes);
    let rt = exec_round_trips(&stack, args.keystrokes)?;

    eprintln!(
        "port-forward and direct downloads of {} MiB ...",
        args.file_mib
    );
    let ip = container_ip(&uid(&pod))?;
    let direct_1 = download(&ip, PORT, 1, bytes)?;
    let direct_10 = download(&ip, PORT, 10, bytes)?;
    let (mut forward, local) = port_forward(&stack)?;
    let forwarded = |parallel| {
        download("127.0.0.1", local, parallel, bytes).with_context(|| {
            let path = std::env::temp_dir().join("bench-streams-stack.log");
            match std::fs::write(&path, stack.logs()) {
                Ok(()) => format!(
                    "port-forward, {parallel} connection(s); the stack's logs are in {}",
                    path.display()
                ),
                Err(e) => format!("port-forward, {parallel} connection(s) (logs: {e})"),
            }
        })
    };
    let pf_1 = forwarded(1)?;
    let pf_10 = forwarded(10)?;
    let _ = forward.kill();
    let _ = forward.wait();

    eprintln!("memory with {} idle exec sessions ...", args.idle_sessions);
    let agent_pid = stack
        .agent("bench-streams")?
        .pid()
        .context("agent not running")?;
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
    println!(
        "| download, 1 connection: port-forward / direct | {pf_1:.1} MB/s / {direct_1:.1} MB/s ({:.0} %) |",
        pf_1 / direct_1 * 100.0
    );
    println!(
        "| download, 10 connections: port-forward / direct | {pf_10:.1} MB/s / {direct_10:.1} MB/s ({:.0} %) |",
        pf_10 / direct_10 * 100.0
    );
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
