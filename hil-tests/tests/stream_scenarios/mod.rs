//! `kubectl exec`, `attach`, `cp` and `port-forward` for device pods, end to end: the
//! real `kubectl`, the API server (the emulator, or the real control plane), the
//! gateway's kubelet API, MQTT (embedded broker or Mosquitto), the real agent and real
//! containers on Podman. Shared by `e2e_streams.rs` (kube-apiserver passes WebSockets
//! through to the gateway: its Nodes declare `ExtendWebSocketsToKubelet`) and
//! `e2e_streams_translated.rs` (that feature gate off: kube-apiserver translates to SPDY).
//! `debug.rs`: `kubectl debug` with an ephemeral container.
//!
//! kubectl speaks WebSocket to the API server by default; with
//! `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` and `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`
//! it speaks SPDY. Each scenario says which upgrade the gateway must have seen.

pub mod debug;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use edge_hil_tests::scenario::{
    StackOn, create, is_ready, pod_manifest, start, wait_node_ready, wait_pod,
};
use edge_hil_tests::stack::{AgentBuild, BrokerKind, Cluster, ClusterBackend, Stack};
use serde_json::json;

/// How kubectl talks to the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProtocol {
    WebSocket,
    Spdy,
}

/// What the gateway's kubelet API must have been asked to upgrade to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayUpgrade {
    WebSocket,
    Spdy,
}

/// Checks that every streaming upgrade the gateway logged so far was `want` (and that
/// there was one): which path kube-apiserver took to the kubelet API.
fn check_gateway_upgrades(stack: &Stack, want: GatewayUpgrade) -> Result<()> {
    let log = stack.gateway.log();
    let upgrades: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("streaming upgrade"))
        .collect();
    let (want_word, other_word) = match want {
        GatewayUpgrade::WebSocket => ("\"websocket\"", "\"spdy\""),
        GatewayUpgrade::Spdy => ("\"spdy\"", "\"websocket\""),
    };
    ensure!(
        !upgrades.is_empty()
            && upgrades
                .iter()
                .all(|l| l.contains(want_word) && !l.contains(other_word)),
        "the gateway should have seen only {want:?} upgrades: {upgrades:#?}"
    );
    Ok(())
}

fn kubectl(stack: &Stack, protocol: ClientProtocol) -> Command {
    let mut cmd = stack.kubectl.command();
    let websockets = if protocol == ClientProtocol::WebSocket {
        "true"
    } else {
        "false"
    };
    cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets)
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets);
    cmd
}

fn run(mut cmd: Command, stdin: Option<&[u8]>) -> Result<Output> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("spawning kubectl")?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().context("kubectl stdin")?;
        pipe.write_all(input)?;
    }
    Ok(child.wait_with_output()?)
}

/// The lines a child writes, read on a thread of their own.
fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn sha256(path: &std::path::Path) -> Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum {}", path.display());
    Ok(text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// A device id of its own per scenario variant: parallel stacks share one Podman, and
/// two agents with one id would manage each other's containers.
fn device_id(prefix: &str, on: StackOn, protocol: ClientProtocol) -> String {
    format!("{prefix}-{:?}-{:?}-{:?}", on.backend, on.broker, protocol).to_ascii_lowercase()
}

/// A stack with one device running a long-lived shell pod, `shell`.
async fn stack_with_shell(on: StackOn, device: &str) -> Result<Stack> {
    let mut stack = start(on).await?;
    stack.start_agent(device, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, device, "True", Duration::from_secs(60)).await?;
    create(
        &stack,
        &pod_manifest("shell", &[], true, "Always", "echo started; sleep 3600"),
    )
    .await?;
    wait_pod(
        &stack,
        "shell",
        "shell running",
        Duration::from_secs(60),
        is_ready,
    )
    .await?;
    Ok(stack)
}

/// exec: output, stderr, exit codes, stdin and its EOF, a TTY with its size; attach,
/// with stdin to a container that keeps it open.
pub async fn exec_and_attach(
    on: StackOn,
    protocol: ClientProtocol,
    gateway_sees: GatewayUpgrade,
) -> Result<()> {
    let stack = stack_with_shell(on, &device_id("exec", on, protocol)).await?;
    let ns = stack.namespace.clone();
    let exec = |args: &[&str], stdin: Option<&[u8]>| -> Result<Output> {
        let mut cmd = kubectl(&stack, protocol);
        cmd.args(["exec", "-n", &ns]).args(args);
        run(cmd, stdin)
    };

    let out = exec(&["shell", "--", "echo", "hi"], None)?;
    ensure!(
        out.status.success() && text(&out.stdout) == "hi\n",
        "exec echo: {out:?}\n{}",
        stack.logs()
    );

    let out = exec(
        &["shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        None,
    )?;
    ensure!(
        out.status.code() == Some(3),
        "the exit code must reach kubectl: {out:?}"
    );
    ensure!(text(&out.stdout) == "out\n", "stdout: {out:?}");
    ensure!(text(&out.stderr).contains("err"), "stderr: {out:?}");

    // stdin piped to cat, then EOF ends cat: the process sees the client's stdin close.
    let out = exec(&["-i", "shell", "--", "cat"], Some(b"piped line\n"))?;
    ensure!(
        out.status.success() && text(&out.stdout) == "piped line\n",
        "exec -i cat: {out:?}\n{}",
        stack.logs()
    );

    // A TTY: kubectl sends the terminal's size, the process reads it at once.
    let kubeconfig = stack.cluster.kubeconfig_path().display().to_string();
    let websockets = if protocol == ClientProtocol::WebSocket {
        "true"
    } else {
        "false"
    };
    let inner = format!(
        "stty cols 123 rows 45; KUBECTL_REMOTE_COMMAND_WEBSOCKETS={websockets} {} --kubeconfig {kubeconfig} exec -it -n {ns} shell -- stty size",
        stack.cluster.kubectl_binary().display()
    );
    let out = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        text(&out.stdout).contains("45 123"),
        "exec -it stty size: {out:?}"
    );

    // The kubelet's /run (POST, `cmd` split on spaces), straight on the gateway's kubelet
    // API with kube-apiserver's kubelet client certificate: the output, or 500 with the
    // exit code.
    if let Cluster::ControlPlane(cp) = &stack.cluster {
        let run = |cmd: &str, container: &str| -> Result<(String, String)> {
            let url = format!(
                "https://127.0.0.1:{}/run/{ns}/shell/{container}?cmd={}",
                stack.gateway.ready().kubelet_port,
                cmd.replace(' ', "%20")
            );
            let out = Command::new("curl")
                .args([
                    "-sk",
                    "--max-time",
                    "30",
                    "-X",
                    "POST",
                    "-w",
                    "\n%{http_code}",
                ])
                .arg("--cert")
                .arg(&cp.pki.kubelet_client_crt)
                .arg("--key")
                .arg(&cp.pki.kubelet_client_key)
                .arg(&url)
                .output()?;
            let text = text(&out.stdout);
            let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
            Ok((code.to_owned(), body.to_owned()))
        };
        let (code, body) = run("echo run ok", "main")?;
        ensure!(
            code == "200" && body == "run ok\n",
            "/run echo: {code} {body:?}\n{}",
            stack.logs()
        );
        let (code, body) = run("false", "main")?;
        ensure!(
            code == "500" && body.contains("exit code 1"),
            "/run false: {code} {body:?}"
        );
        let (code, body) = run("true", "nope")?;
        ensure!(
            code == "404" && body.contains("nope"),
            "/run in an unknown container: {code} {body:?}"
        );
    }

    // An unknown container is refused with its name in the message.
    let out = exec(&["shell", "-c", "nope", "--", "true"], None)?;
    ensure!(
        !out.status.success() && text(&out.stderr).contains("nope"),
        "unknown container: {out:?}"
    );

    // attach: the main process's output arrives while kubectl is attached.
    create(
        &stack,
        &pod_manifest(
            "talker",
            &[],
            true,
            "Always",
            "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
        ),
    )
    .await?;
    wait_pod(
        &stack,
        "talker",
        "talker running",
        Duration::from_secs(60),
        is_ready,
    )
    .await?;
    let mut attach = kubectl(&stack, protocol)
        .args(["attach", "-n", &ns, "talker"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = attach.stdout.take().context("attach stdout")?;
    let rx = lines_of(stdout);
    let first = rx.recv_timeout(Duration::from_secs(20));
    let second = rx.recv_timeout(Duration::from_secs(5));
    let _ = attach.kill();
    let _ = attach.wait();
    ensure!(
        matches!((&first, &second), (Ok(a), Ok(b)) if a.starts_with("tick-") && b.starts_with("tick-")),
        "attach showed {first:?} then {second:?}\n{}",
        stack.logs()
    );

    // attach -i to a container with `stdin: true` (as `kubectl run -i` makes): what the
    // client types reaches the main process.
    let mut reader = pod_manifest(
        "reader",
        &[],
        true,
        "Always",
        "while read line; do echo got-$line; done",
    );
    if let Some(c) = reader.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.stdin = Some(true);
    }
    create(&stack, &reader).await?;
    wait_pod(
        &stack,
        "reader",
        "reader running",
        Duration::from_secs(60),
        is_ready,
    )
    .await?;
    let mut attach = kubectl(&stack, protocol)
        .args(["attach", "-i", "-n", &ns, "reader"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut input = attach.stdin.take().context("attach stdin")?;
    let stdout = attach.stdout.take().context("attach stdout")?;
    let rx = lines_of(stdout);
    // kubectl attaches before it reads stdin; a line typed early waits in its buffer
    input.write_all(b"typed-line\n")?;
    input.flush()?;
    let echoed = rx.recv_timeout(Duration::from_secs(20));
    drop(input);
    let _ = attach.kill();
    let _ = attach.wait();
    ensure!(
        matches!(&echoed, Ok(l) if l == "got-typed-line"),
        "attach -i: the container's process did not get the typed line: {echoed:?}\n{}",
        stack.logs()
    );
    check_gateway_upgrades(&stack, gateway_sees)
}

/// `kubectl cp` both ways (tar over exec) of a file of several MB, byte for byte.
pub async fn copy_files(on: StackOn, protocol: ClientProtocol) -> Result<()> {
    let stack = stack_with_shell(on, &device_id("cp", on, protocol)).await?;
    let ns = stack.namespace.clone();
    let dir = tempfile::tempdir()?;
    let local = dir.path().join("big.bin");
    let mut data = vec![0u8; 5 * 1024 * 1024 + 123];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in &mut data {
        // xorshift: incompressible and reproducible
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&local, &data)?;
    let want = sha256(&local)?;

    let started = Instant::now();
    let mut up = kubectl(&stack, protocol);
    up.args([
        "cp",
        &local.display().to_string(),
        &format!("{ns}/shell:/tmp/big.bin"),
    ]);
    let out = run(up, None)?;
    ensure!(
        out.status.success(),
        "cp to the pod: {out:?}\n{}",
        stack.logs()
    );
    let upload = started.elapsed();

    let mut sum = kubectl(&stack, protocol);
    sum.args([
        "exec",
        "-n",
        &ns,
        "shell",
        "--",
        "sha256sum",
        "/tmp/big.bin",
    ]);
    let out = run(sum, None)?;
    ensure!(
        text(&out.stdout).starts_with(&want),
        "in the pod: {out:?}, want {want}"
    );

    let back = dir.path().join("back.bin");
    let started = Instant::now();
    let mut down = kubectl(&stack, protocol);
    down.args([
        "cp",
        &format!("{ns}/shell:/tmp/big.bin"),
        &back.display().to_string(),
    ]);
    let out = run(down, None)?;
    ensure!(out.status.success(), "cp from the pod: {out:?}");
    ensure!(sha256(&back)? == want, "the copy back differs");
    eprintln!(
        "kubectl cp of {} bytes: up {:?}, down {:?}",
        data.len(),
        upload,
        started.elapsed()
    );
    Ok(())
}

/// Reads kubectl port-forward's "Forwarding from 127.0.0.1:<local> -> <remote>" lines.
fn forwarded_ports(child: &mut std::process::Child, count: usize) -> Result<Vec<(u16, u16)>> {
    let stdout = child.stdout.take().context("port-forward stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut ports = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ports.len() < count && Instant::now() < deadline {
        let Some(line) = lines.next() else { break };
        let line = line?;
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            let (local, remote) = rest.split_once(" -> ").context("forwarding line")?;
            ports.push((local.trim().parse()?, remote.trim().parse()?));
        }
    }
    ensure!(ports.len() == count, "port-forward said {ports:?}");
    std::thread::spawn(move || for _ in lines {});
    Ok(ports)
}

fn curl(port: u16, path: &str) -> Result<String> {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()?;
    if !out.status.success() {
        bail!("curl :{port}{path}: {}", text(&out.stderr));
    }
    Ok(text(&out.stdout))
}

/// port-forward two ports of a pod at once, several connections each.
pub async fn port_forward(
    on: StackOn,
    protocol: ClientProtocol,
    gateway_sees: GatewayUpgrade,
) -> Result<()> {
    let mut stack = start(on).await?;
    let device = device_id("pf", on, protocol);
    stack.start_agent(&device, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, &device, "True", Duration::from_secs(60)).await?;
    let script = "mkdir -p /a /b; echo alpha > /a/index.html; echo beta > /b/index.html; \
                  httpd -p 8080 -h /a; httpd -f -p 8081 -h /b";
    let mut web = pod_manifest("web", &[], true, "Always", script);
    web.spec.as_mut().unwrap().containers[0].ports = Some(vec![
        serde_json::from_value(json!({"containerPort": 8080}))?,
        serde_json::from_value(json!({"containerPort": 8081}))?,
    ]);
    create(&stack, &web).await?;
    wait_pod(
        &stack,
        "web",
        "web running",
        Duration::from_secs(60),
        is_ready,
    )
    .await?;
    let ns = stack.namespace.clone();
    let mut child = kubectl(&stack, protocol)
        .args(["port-forward", "-n", &ns, "pod/web", ":8080", ":8081"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let result = (|| -> Result<()> {
        let ports = forwarded_ports(&mut child, 2)?;
        for (local, remote) in ports {
            let want = if remote == 8080 { "alpha\n" } else { "beta\n" };
            for _ in 0..3 {
                let got = curl(local, "/index.html")?;
                ensure!(got == want, "port {remote}: {got:?}");
            }
        }
        Ok(())
    })();
    let _ = child.kill();
    let out = child.wait_with_output()?;
    result.map_err(|e| anyhow::anyhow!("{e}\nkubectl: {}\n{}", text(&out.stderr), stack.logs()))?;
    check_gateway_upgrades(&stack, gateway_sees)
}

/// A device that is offline answers exec with a clear error within seconds, not a hang.
pub async fn device_offline(on: StackOn) -> Result<()> {
    let device = device_id("off", on, ClientProtocol::WebSocket);
    let mut stack = stack_with_shell(on, &device).await?;
    stack.agent(&device)?.kill9();
    let ns = stack.namespace.clone();
    // The gateway learns of the loss from the broker's last will or the heartbeat
    // timeout; give it that, then exec must fail fast.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let started = Instant::now();
    let mut cmd = kubectl(&stack, ClientProtocol::WebSocket);
    cmd.args(["exec", "-n", &ns, "shell", "--", "true"]);
    let out = run(cmd, None)?;
    let took = started.elapsed();
    ensure!(!out.status.success(), "exec on an offline device succeeded");
    ensure!(
        took < Duration::from_secs(15),
        "exec on an offline device took {took:?}"
    );
    ensure!(
        text(&out.stderr).contains("offline"),
        "the error must say the device is offline: {}",
        text(&out.stderr)
    );
    Ok(())
}

/// A user without `create pods/exec` gets 403 from the API server (real control plane).
pub async fn exec_forbidden(on: StackOn) -> Result<()> {
    let stack = stack_with_shell(on, &device_id("rbac", on, ClientProtocol::WebSocket)).await?;
    let ns = stack.namespace.clone();
    let out = stack.kubectl.output(&[
        "exec",
        "--as=someone-without-rights",
        "-n",
        &ns,
        "shell",
        "--",
        "true",
    ])?;
    ensure!(!out.status.success(), "exec without rights succeeded");
    let err = text(&out.stderr);
    ensure!(
        err.contains("Forbidden") || err.contains("forbidden"),
        "want 403 Forbidden: {err}"
    );
    Ok(())
}

pub fn on(broker: BrokerKind, backend: ClusterBackend) -> StackOn {
    StackOn { broker, backend }
}
