//! `kubectl exec`, `attach`, `cp` and `port-forward` on the device: the agent binary
//! against the embedded rumqttd broker and real Podman containers, the test playing the
//! gateway's side of the stream protocol over MQTT.
#![allow(clippy::unwrap_used)]

mod common;
mod streams_gateway;

use std::process::Command;
use std::time::Duration;

use common::*;
use edge_protocol::{
    StdioSelection, StreamChannel, StreamErrorCode, StreamPod, StreamTarget, TerminalSize,
};
use streams_gateway::{GatewayStream, run_to_close};

const T: Duration = Duration::from_secs(60);
const WINDOW: u64 = 256 * 1024;

fn pod_of(uid: &str, name: &str) -> StreamPod {
    StreamPod {
        pod_uid: uid.into(),
        namespace: "default".into(),
        pod_name: name.into(),
    }
}

fn exec(pod: &StreamPod, container: &str, script: &str, stdio: StdioSelection) -> StreamTarget {
    StreamTarget::Exec {
        pod: pod.clone(),
        container: container.into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        stdio,
    }
}

const OUT: StdioSelection = StdioSelection {
    stdin: false,
    stdout: true,
    stderr: true,
    tty: false,
};
const IN_OUT: StdioSelection = StdioSelection {
    stdin: true,
    stdout: true,
    stderr: true,
    tty: false,
};

fn error_code(o: &streams_gateway::Outcome) -> Option<StreamErrorCode> {
    o.close.as_ref().unwrap().error.as_ref().map(|e| e.code)
}

/// Bytes that do not compress or repeat (a simple xorshift).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha256_hex(dir: &std::path::Path, file: &str) -> String {
    let out = Command::new("sha256sum")
        .arg(dir.join(file))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

struct Setup {
    _agent: AgentProcess,
    gw: TestGateway,
    _cleanup: PodCleanup,
    _dir: tempfile::TempDir,
    pod: StreamPod,
}

/// An agent (with `env`) on the broker at `port` running a two-container pod on the bridge
/// network: `web` serves HTTP on 8080, `ticker` prints a line every 0.2 s.
async fn setup(port: u16, device: &str, name: &str, env: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::connect(port, device).await;
    let agent = AgentProcess::start_env(device, port, dir.path(), env);
    gw.wait_agent_online().await;
    let hello = gw
        .messages()
        .into_iter()
        .find_map(|r| match r.message {
            edge_protocol::Message::NodeReport(n) => Some(n),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        hello.capabilities.streams,
        Some(edge_protocol::STREAM_PROTOCOL_VERSION)
    );
    // The container names hold the uid's first 8 characters: unique per test.
    let uid = unique_uid(name);
    let cleanup = PodCleanup(vec![uid.clone()]);
    let mut spec = busybox_pod(
        &uid,
        name,
        "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 8080 -h /www",
    );
    spec.host_network = false;
    spec.containers[0].name = "web".into();
    let mut ticker = spec.containers[0].clone();
    ticker.name = "ticker".into();
    ticker.command = vec![
        "sh".into(),
        "-c".into(),
        "i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done".into(),
    ];
    spec.containers.push(ticker);
    gw.desire(1, vec![spec]).await;
    gw.wait_status(&uid, "running", T, is_running).await;
    Setup {
        _agent: agent,
        gw,
        _cleanup: cleanup,
        _dir: dir,
        pod: pod_of(&uid, name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_stdin_tty_cp_attach_and_port_forward() {
    let s = setup(start_rumqttd(), "agent-streams-1", "as1", &[]).await;
    let (gw, pod) = (&s.gw, &s.pod);

    // Output on both channels, then the exit code.
    let o = run_to_close(
        gw,
        "exec-1",
        exec(pod, "web", "echo hi; echo oops >&2; exit 3", OUT),
    )
    .await;
    assert!(o.opened);
    assert_eq!(o.stdout_text(), "hi\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n");
    assert_eq!(o.close.as_ref().unwrap().exit_code, Some(3));
    assert_eq!(o.close.as_ref().unwrap().error, None);
    assert!(o.ended.contains(&StreamChannel::Stdout) && o.ended.contains(&StreamChannel::Stderr));
    assert!(
        o.binary_data_frames > 0 && o.json_data_frames == 0,
        "a stream protocol 2 gateway gets binary data frames: {o:?}"
    );

    // A gateway of stream protocol 1 gets the same in JSON envelopes.
    let st = GatewayStream::open_as(
        gw,
        "exec-v1",
        exec(pod, "web", "echo hi", OUT),
        None,
        WINDOW,
        1,
    )
    .await;
    let o = st.finish().await;
    assert_eq!(o.stdout_text(), "hi\n");
    assert!(
        o.json_data_frames > 0 && o.binary_data_frames == 0,
        "a stream protocol 1 gateway gets JSON data frames: {o:?}"
    );

    // Stdin piped to cat; its end is cat's EOF.
    let mut st =
        GatewayStream::open(gw, "exec-2", exec(pod, "web", "cat", IN_OUT), None, WINDOW).await;
    st.send_input(StreamChannel::Stdin, b"hello\nworld\n", true)
        .await;
    let o = st.finish().await;
    assert_eq!(o.stdout_text(), "hello\nworld\n");
    assert_eq!(o.close.as_ref().unwrap().exit_code, Some(0));

    // A terminal of the requested size, then resized. (Podman ignores the exec's
    // ConsoleSize, so the size is set just after the start: give it a moment.)
    let tty = StdioSelection {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let mut st = GatewayStream::open(
        gw,
        "exec-tty",
        exec(pod, "web", "sleep 0.5; stty size; read x; stty size", tty),
        Some(TerminalSize {
            width: 100,
            height: 30,
        }),
        WINDOW,
    )
    .await;
    st.send_input(StreamChannel::Stdin, b"", false).await;
    let deadline = std::time::Instant::now() + T;
    while !st.outcome.stdout_text().contains("30 100") {
        assert!(std::time::Instant::now() < deadline, "{:?}", st.outcome);
        st.pump(Duration::from_millis(100)).await;
    }
    st.resize(120, 40).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    st.send_input(StreamChannel::Stdin, b"\n", false).await;
    let o = st.finish().await;
    assert!(o.stdout_text().contains("40 120"), "{:?}", o.stdout_text());
    assert_eq!(
        o.ended,
        vec![StreamChannel::Stdout],
        "a TTY has one channel"
    );
    assert_eq!(o.close.as_ref().unwrap().exit_code, Some(0));

    // The gateway ends a terminal session: the shell in it notices (EOF or SIGHUP), as
    // when the kubelet's stream goes away.
    let mut st = GatewayStream::open(
        gw,
        "tty-close",
        exec(
            pod,
            "web",
            "trap 'echo hup > /tmp/tty-gone; exit 1' HUP; read x; echo eof > /tmp/tty-gone",
            tty,
        ),
        Some(TerminalSize {
            width: 80,
            height: 24,
        }),
        WINDOW,
    )
    .await;
    st.send_input(StreamChannel::Stdin, b"", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    st.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let o = run_to_close(gw, "tty-check", exec(pod, "web", "cat /tmp/tty-gone", OUT)).await;
        if o.close.as_ref().unwrap().exit_code == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shell did not notice: {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // kubectl cp in: a 5 MB tar archive into `tar x`, byte-exact.
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("blob"), noise(5 * 1024 * 1024)).unwrap();
    let local_sum = sha256_hex(local.path(), "blob");
    let archive = Command::new("tar")
        .args(["cf", "-", "-C"])
        .arg(local.path())
        .arg("blob")
        .output()
        .unwrap()
        .stdout;
    let mut st = GatewayStream::open(
        gw,
        "cp-in",
        exec(pod, "web", "mkdir -p /up && tar xf - -C /up", IN_OUT),
        None,
        WINDOW,
    )
    .await;
    st.send_input(StreamChannel::Stdin, &archive, true).await;
    let o = st.finish().await;
    assert_eq!(o.close.as_ref().unwrap().exit_code, Some(0), "{o:?}");
    let o = run_to_close(gw, "cp-sum", exec(pod, "web", "sha256sum /up/blob", OUT)).await;
    assert!(
        o.stdout_text().starts_with(&local_sum),
        "{}",
        o.stdout_text()
    );

    // kubectl cp out: `tar c` of it back, through a small window (many credits).
    let st = GatewayStream::open(
        gw,
        "cp-out",
        exec(pod, "web", "tar cf - -C /up blob", OUT),
        None,
        64 * 1024,
    )
    .await;
    let o = st.finish().await;
    assert_eq!(o.close.as_ref().unwrap().exit_code, Some(0));
    let back = tempfile::tempdir().unwrap();
    let mut untar = Command::new("tar")
        .args(["xf", "-", "-C"])
        .arg(back.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    untar.stdin.take().unwrap().write_all(&o.stdout).unwrap();
    assert!(untar.wait().unwrap().success());
    assert_eq!(sha256_hex(back.path(), "blob"), local_sum);

    // Attach to the running main process of `ticker`: its output from now on.
    let mut st = GatewayStream::open(
        gw,
        "attach-1",
        StreamTarget::Attach {
            pod: pod.clone(),
            container: "ticker".into(),
            stdio: StdioSelection {
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        },
        None,
        WINDOW,
    )
    .await;
    let deadline = std::time::Instant::now() + T;
    while st.outcome.stdout_text().matches("tick").count() < 3 {
        assert!(std::time::Instant::now() < deadline, "{:?}", st.outcome);
        st.pump(Duration::from_millis(100)).await;
    }
    assert!(st.outcome.opened);
    assert!(
        !st.outcome.stdout_text().contains("tick1\n"),
        "logs=false: no earlier output"
    );
    st.close().await;

    // Port-forward: an HTTP GET to the web container's port 8080.
    let mut st = GatewayStream::open(
        gw,
        "pf-1",
        StreamTarget::PortForward {
            pod: pod.clone(),
            port: 8080,
        },
        None,
        WINDOW,
    )
    .await;
    st.send_input(StreamChannel::Data, b"GET / HTTP/1.0\r\n\r\n", true)
        .await;
    let o = st.finish().await;
    let response = String::from_utf8_lossy(&o.data).into_owned();
    assert!(
        response.starts_with("HTTP/1.") && response.contains("200"),
        "{response}"
    );
    assert!(response.contains("hello-from-httpd"), "{response}");
    assert_eq!(o.ended, vec![StreamChannel::Data]);
    assert_eq!(o.close.as_ref().unwrap().error, None);

    // Nothing listens on 8081: refused, with the kubelet's kind of message.
    let o = run_to_close(
        gw,
        "pf-2",
        StreamTarget::PortForward {
            pod: pod.clone(),
            port: 8081,
        },
    )
    .await;
    assert!(!o.opened);
    assert_eq!(error_code(&o), Some(StreamErrorCode::ConnectionRefused));
    let message = &o.close.as_ref().unwrap().error.as_ref().unwrap().message;
    assert!(message.contains("error forwarding port 8081"), "{message}");

    // Unknown container, unknown pod: NotFound.
    for (id, target) in [
        ("nf-1", exec(pod, "nope", "true", OUT)),
        (
            "nf-2",
            exec(&pod_of("no-such-uid", "ghost"), "web", "true", OUT),
        ),
    ] {
        let o = GatewayStream::open(gw, id, target, None, WINDOW)
            .await
            .finish()
            .await;
        assert!(!o.opened);
        assert_eq!(error_code(&o), Some(StreamErrorCode::NotFound), "{o:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_slow_readers_and_idle_streams() {
    let s = setup(
        start_rumqttd(),
        "agent-streams-2",
        "as2",
        &[("EDGE_AGENT_MAX_STREAMS", "3")],
    )
    .await;
    let (gw, pod) = (&s.gw, &s.pod);

    // A gateway that returns no credit: the agent stops at the window it granted.
    let window = 64 * 1024;
    let mut slow = GatewayStream::open(
        gw,
        "slow-1",
        exec(
            pod,
            "web",
            "dd if=/dev/zero bs=1024 count=4096 2>/dev/null",
            OUT,
        ),
        None,
        window,
    )
    .await;
    slow.give_credit = false;
    slow.pump(Duration::from_secs(4)).await;
    assert!(slow.outcome.opened);
    assert!(slow.outcome.close.is_none());
    assert_eq!(
        slow.outcome.stdout.len() as u64,
        window,
        "exactly the window"
    );
    // Credit lets exactly that much more through.
    slow.credit_received().await;
    slow.pump(Duration::from_secs(3)).await;
    assert_eq!(slow.outcome.stdout.len() as u64, 2 * window);

    // Two more fill the limit of 3; the fourth is refused.
    let a = GatewayStream::open(gw, "lim-a", exec(pod, "web", "sleep 30", OUT), None, WINDOW).await;
    let b = GatewayStream::open(gw, "lim-b", exec(pod, "web", "sleep 30", OUT), None, WINDOW).await;
    let mut a = a;
    let mut b = b;
    a.pump(Duration::from_secs(3)).await;
    b.pump(Duration::from_secs(3)).await;
    assert!(a.outcome.opened && b.outcome.opened);
    let o = run_to_close(gw, "lim-c", exec(pod, "web", "true", OUT)).await;
    assert_eq!(error_code(&o), Some(StreamErrorCode::TooManyStreams));

    // Closing one from the gateway's side makes room.
    slow.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let o = run_to_close(gw, "lim-d", exec(pod, "web", "echo room", OUT)).await;
    assert_eq!(o.stdout_text(), "room\n");
    a.close().await;
    b.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A frame out of sequence ends the stream with Protocol.
    let mut st =
        GatewayStream::open(gw, "gap-1", exec(pod, "web", "cat", IN_OUT), None, WINDOW).await;
    st.send_input(StreamChannel::Stdin, b"first\n", false).await;
    st.publish(
        edge_protocol::StreamData {
            sequence: 5,
            channel: StreamChannel::Stdin,
            data: b"late".to_vec().into(),
            end: false,
        }
        .into(),
    )
    .await;
    let o = st.finish().await;
    assert_eq!(error_code(&o), Some(StreamErrorCode::Protocol), "{o:?}");

    // Data for a stream the device does not know: it says so (the gateway would
    // otherwise wait for credit forever).
    let unknown = edge_protocol::RequestId::new("never-opened").unwrap();
    gw.publish(
        edge_protocol::DownChannel::Stream(unknown.clone()),
        edge_protocol::StreamData {
            sequence: 0,
            channel: StreamChannel::Stdin,
            data: b"x".to_vec().into(),
            end: false,
        }
        .into(),
    )
    .await;
    wait_until(T, "close for an unknown stream", || {
        gw.messages().iter().any(|r| {
            matches!(&r.topic, edge_protocol::Topic::Up {
                channel: edge_protocol::UpChannel::Stream(id), ..
            } if *id == unknown)
                && matches!(&r.message, edge_protocol::Message::StreamClose(c)
                    if c.error.as_ref().is_some_and(|e| e.code == StreamErrorCode::Cancelled))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_time_out_and_a_lost_session_ends_every_stream() {
    let mut broker = Mosquitto::start();
    let idle = Duration::from_secs(5);
    let s = setup(
        broker.port,
        "agent-streams-3",
        "as3",
        &[("EDGE_AGENT_STREAM_IDLE_TIMEOUT_SECONDS", "5")],
    )
    .await;
    let (gw, pod) = (&s.gw, &s.pod);

    // No data either way: closed after the idle timeout.
    let started = std::time::Instant::now();
    let o = run_to_close(gw, "idle-1", exec(pod, "web", "sleep 60", OUT)).await;
    assert!(o.opened);
    assert_eq!(error_code(&o), Some(StreamErrorCode::IdleTimeout), "{o:?}");
    let took = started.elapsed();
    assert!(took >= idle && took < idle * 3, "closed after {took:?}");

    // The broker goes away mid-stream: the agent ends the stream, so `cat` sees EOF
    // (well before the idle timeout would have ended it).
    let mut st = GatewayStream::open(
        gw,
        "lost-1",
        exec(
            pod,
            "web",
            "cat > /tmp/lost; echo eof > /tmp/lost-ended",
            IN_OUT,
        ),
        None,
        WINDOW,
    )
    .await;
    st.send_input(StreamChannel::Stdin, b"partial", false).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resyncs = gw.count(edge_protocol::UpChannel::Resync);
    let sent_at = std::time::Instant::now();
    broker.restart();
    wait_until(T, "agent back", || {
        gw.count(edge_protocol::UpChannel::Resync) > resyncs
    })
    .await;
    let o = run_to_close(
        gw,
        "lost-check",
        exec(pod, "web", "cat /tmp/lost-ended /tmp/lost", OUT),
    )
    .await;
    assert_eq!(o.stdout_text(), "eof\npartial", "{o:?}");
    assert!(
        sent_at.elapsed() < idle,
        "ended by the session loss, not the idle timeout"
    );
}
