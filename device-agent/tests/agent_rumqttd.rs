//! The agent binary against the embedded rumqttd broker and real Podman containers:
//! pods run and are reported, logs stream, resync, deletion; hostile messages and
//! impossible specs never harm the other pods.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use edge_protocol::{
    ContainerState, DeviceMapping, DownChannel, EnvVar, FileItem, LogCancel, LogRequest, Message,
    NodeReport, PullPolicy, RequestId, ResyncRequest, Topic, UpChannel, Volume, VolumeMount,
    VolumeSource,
};

const T: Duration = Duration::from_secs(30);

fn log_text(gw: &TestGateway, request: &str) -> (String, bool, Vec<u64>) {
    let mut data = Vec::new();
    let mut end = false;
    let mut seqs = Vec::new();
    for r in gw.messages() {
        if let (
            Topic::Up {
                channel: UpChannel::Logs(id),
                ..
            },
            Message::LogChunk(c),
        ) = (&r.topic, &r.message)
            && id.as_str() == request
        {
            seqs.push(c.sequence);
            data.extend_from_slice(c.data.as_slice());
            end |= c.end_of_stream;
        }
    }
    (String::from_utf8_lossy(&data).into_owned(), end, seqs)
}

async fn ask_logs(gw: &TestGateway, request: &str, req: LogRequest) {
    gw.publish(
        DownChannel::Logs(RequestId::new(request).unwrap()),
        req.into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_pods_reports_streams_logs_and_deletes() {
    let port = start_rumqttd();
    let dir = tempfile::tempdir().unwrap();
    let device = "rq-run-1";
    let gw = TestGateway::connect(port, device).await;
    let _agent = AgentProcess::start(device, port, dir.path());

    // Connect: online state (retained), node report, resync request.
    wait_until(T, "node report", || gw.count(UpChannel::Hello) > 0).await;
    let hello: NodeReport = gw
        .messages()
        .into_iter()
        .find_map(|r| match r.message {
            Message::NodeReport(n) => Some(n),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        hello.architecture,
        edge_agent::host_facts::kubernetes_arch()
    );
    assert!(hello.capacity.cpu_millis >= 1000);
    assert!(hello.capacity.memory_bytes > 0);
    assert!(hello.capacity.ephemeral_storage_bytes > 0);
    assert!(hello.container_runtime_version.contains("://"));
    wait_until(T, "online state and resync", || {
        gw.messages()
            .iter()
            .any(|r| matches!(&r.message, Message::DeviceState(s) if s.online))
            && gw.count(UpChannel::Resync) > 0
    })
    .await;

    let uid = unique_uid("run");
    let _cleanup = PodCleanup(vec![uid.clone()]);
    let mut pod = busybox_pod(
        &uid,
        "web",
        "echo first; cat /cfg/greeting; echo \"env=$GREETING\"; i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done",
    );
    pod.containers[0].env = vec![EnvVar {
        name: "GREETING".into(),
        value: "world".into(),
    }];
    pod.containers[0].resources = edge_protocol::ResourceRequirements {
        cpu_limit_millis: Some(500),
        memory_limit_bytes: Some(64 * 1024 * 1024),
        ..Default::default()
    };
    pod.containers[0].volume_mounts = vec![VolumeMount {
        name: "cfg".into(),
        mount_path: "/cfg".into(),
        ..Default::default()
    }];
    pod.volumes = vec![Volume {
        name: "cfg".into(),
        source: VolumeSource::Files {
            files: vec![FileItem {
                path: "greeting".into(),
                content: "hello from configmap\n".into(),
                mode: 0o644,
            }],
            sensitive: true,
        },
    }];
    gw.desire(1, vec![pod.clone()]).await;
    let status = gw.wait_status(&uid, "running", T, is_running).await;
    let c = &status.containers[0];
    assert!(c.ready);
    assert_eq!(c.restart_count, 0);
    assert!(c.image_id.starts_with("sha256:") || !c.image_id.is_empty());
    let cid = c.container_id.clone().unwrap();
    let containers = podman_containers(&uid);
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(format!("docker://{}", containers[0].0), cid);
    assert!(
        containers[0].1.starts_with("edge_web_default_main_"),
        "{containers:?}"
    );
    let limits = std::process::Command::new("podman")
        .args([
            "inspect",
            "--format",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
            &containers[0].0,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&limits.stdout).trim(),
        "500000000 67108864",
        "CPU and memory limits"
    );
    let reasons = gw.event_reasons(&uid);
    for r in ["Pulled", "Created", "Started"] {
        assert!(
            reasons.contains(&r.to_owned()),
            "{r} missing in {reasons:?}"
        );
    }
    // The secret-ish file volume is on disk with mode 0600.
    let file = std::fs::read_dir(dir.path().join(format!("state-{device}/pods")))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("volumes/cfg/greeting");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Logs: whole, tail, limit, timestamps.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let base = LogRequest {
        pod_uid: uid.clone(),
        namespace: "default".into(),
        pod_name: "web".into(),
        container: "main".into(),
        ..Default::default()
    };
    ask_logs(&gw, "all", base.clone()).await;
    ask_logs(
        &gw,
        "tail",
        LogRequest {
            tail_lines: Some(1),
            ..base.clone()
        },
    )
    .await;
    ask_logs(
        &gw,
        "limit",
        LogRequest {
            limit_bytes: Some(3),
            ..base.clone()
        },
    )
    .await;
    ask_logs(
        &gw,
        "stamps",
        LogRequest {
            timestamps: true,
            tail_lines: Some(1),
            ..base.clone()
        },
    )
    .await;
    ask_logs(
        &gw,
        "prev",
        LogRequest {
            previous: true,
            ..base.clone()
        },
    )
    .await;
    ask_logs(
        &gw,
        "nope",
        LogRequest {
            container: "missing".into(),
            ..base.clone()
        },
    )
    .await;
    for id in ["all", "tail", "limit", "stamps", "prev", "nope"] {
        wait_until(T, &format!("log stream {id} ends"), || log_text(&gw, id).1).await;
    }
    let (all, _, seqs) = log_text(&gw, "all");
    assert!(
        all.starts_with("first\nhello from configmap\nenv=world\ntick1\n"),
        "{all}"
    );
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    let (tail, _, _) = log_text(&gw, "tail");
    assert_eq!(tail.lines().count(), 1, "{tail:?}");
    assert!(tail.starts_with("tick"), "{tail:?}");
    assert_eq!(log_text(&gw, "limit").0, "fir");
    let (stamps, _, _) = log_text(&gw, "stamps");
    assert!(
        stamps.starts_with("20"),
        "RFC 3339 timestamp expected: {stamps:?}"
    );
    let errors: Vec<_> = gw
        .messages()
        .into_iter()
        .filter_map(|r| match r.message {
            Message::LogChunk(c) => c.error.map(|e| e.code),
            _ => None,
        })
        .collect();
    assert!(
        errors.contains(&edge_protocol::LogErrorCode::NoPreviousInstance),
        "{errors:?} {:?}",
        gw.messages()
            .iter()
            .filter(|r| matches!(r.message, Message::LogChunk(_)))
            .map(|r| (r.topic.to_string(), format!("{:?}", r.message)))
            .collect::<Vec<_>>()
    );
    assert!(errors.contains(&edge_protocol::LogErrorCode::NotFound));

    // Follow, then cancel: the stream keeps going until the cancel, then ends.
    ask_logs(
        &gw,
        "follow",
        LogRequest {
            follow: true,
            tail_lines: Some(0),
            ..base.clone()
        },
    )
    .await;
    wait_until(T, "followed lines", || {
        log_text(&gw, "follow").0.matches("tick").count() >= 3
    })
    .await;
    assert!(
        !log_text(&gw, "follow").1,
        "a follow stream must not end by itself"
    );
    gw.publish(
        DownChannel::Logs(RequestId::new("follow").unwrap()),
        LogCancel {
            reason: Some("client went away".into()),
        }
        .into(),
    )
    .await;
    wait_until(T, "follow stream ends after cancel", || {
        log_text(&gw, "follow").1
    })
    .await;

    // Resync: a full report listing the pod.
    gw.publish(
        DownChannel::Resync,
        ResyncRequest {
            known_generation: 1,
            reason: "gateway start".into(),
        }
        .into(),
    )
    .await;
    wait_until(T, "full status report", || {
        gw.messages().iter().any(|r| {
            matches!(&r.message, Message::PodStatusReport(rep)
                if rep.full && rep.observed_generation == 1 && rep.pods.iter().any(|p| p.uid == uid))
        })
    })
    .await;
    wait_until(T, "heartbeat with the generation", || {
        gw.messages().iter().any(|r| {
            matches!(&r.message, Message::Heartbeat(h) if h.observed_generation == 1 && h.pods_running == 1)
        })
    })
    .await;

    // Graceful deletion: stopped with the grace period, removed, reported removed.
    let mut deleting = pod.clone();
    deleting.deletion_grace_period_seconds = Some(1);
    gw.desire(2, vec![deleting.clone()]).await;
    let gone = gw.wait_status(&uid, "removed", T, |s| s.removed).await;
    assert!(matches!(
        gone.containers[0].state,
        ContainerState::Terminated { .. }
    ));
    assert!(podman_containers(&uid).is_empty());
    let reasons = gw.event_reasons(&uid);
    assert!(reasons.contains(&"Killing".to_owned()), "{reasons:?}");
    gw.desire(3, vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_messages_and_impossible_specs_do_not_harm_other_pods() {
    let port = start_rumqttd();
    let dir = tempfile::tempdir().unwrap();
    let device = "rq-hostile-1";
    let gw = TestGateway::connect(port, device).await;
    let agent = AgentProcess::start(device, port, dir.path());
    let good = unique_uid("good");
    let bad_image = unique_uid("badimg");
    let never = unique_uid("never");
    let no_mount = unique_uid("nomount");
    let no_device = unique_uid("nodev");
    let unknown_volume = unique_uid("novol");
    let crash = unique_uid("crash");
    let _cleanup = PodCleanup(vec![
        good.clone(),
        bad_image.clone(),
        never.clone(),
        no_mount.clone(),
        no_device.clone(),
        unknown_volume.clone(),
        crash.clone(),
    ]);
    wait_until(T, "agent online", || gw.count(UpChannel::Resync) > 0).await;
    let good_pod = busybox_pod(&good, "good", "exec sleep 1000");
    gw.desire(1, vec![good_pod.clone()]).await;
    let s = gw.wait_status(&good, "running", T, is_running).await;
    let good_id = s.containers[0].container_id.clone().unwrap();

    // Hostile and malformed messages.
    let desired = format!("edge/v1/{device}/down/desired");
    gw.publish_raw(&desired, b"not json at all".to_vec()).await;
    gw.publish_raw(&desired, b"[1,2,3]".to_vec()).await;
    gw.publish_raw(
        &desired,
        br#"{"protocol":"2.0","kind":"desiredSet","body":{"generation":99,"pods":[]}}"#.to_vec(),
    )
    .await;
    gw.publish_raw(
        &desired,
        br#"{"protocol":"1.0","kind":"heartbeat","body":{"sequence":1}}"#.to_vec(),
    )
    .await;
    gw.publish_raw(
        &desired,
        br#"{"protocol":"1.0","kind":"desiredSet","body":{"generation":"many"}}"#.to_vec(),
    )
    .await;
    gw.publish_raw(
        &desired,
        br#"{"protocol":"1.0","kind":"desiredSet","body":{"generation":0,"pods":[]}}"#.to_vec(),
    )
    .await;
    let mut huge =
        br#"{"protocol":"1.0","kind":"desiredSet","body":{"generation":98,"pods":[],"pad":""#
            .to_vec();
    huge.extend(std::iter::repeat_n(b'x', 9 * 1024 * 1024));
    huge.extend_from_slice(b"\"}}");
    gw.publish_raw(&desired, huge).await;
    gw.publish_raw(&format!("edge/v1/{device}/down/unknown"), b"{}".to_vec())
        .await;
    gw.publish_raw(
        &format!("edge/v1/{device}/down/logs/x"),
        br#"{"protocol":"1.0","kind":"logRequest","body":{"podUid":"nope","container":"c"}}"#
            .to_vec(),
    )
    .await;
    // The agent is alive and unchanged: heartbeats continue at generation 1.
    let hb = gw.count(UpChannel::Heartbeat);
    wait_until(T, "heartbeats after hostile input", || {
        gw.count(UpChannel::Heartbeat) >= hb + 2
    })
    .await;
    assert!(gw.messages().iter().all(|r| match &r.message {
        Message::Heartbeat(h) => h.observed_generation <= 1,
        _ => true,
    }));
    let log = agent.log_text();
    assert!(log.contains("rejected a malformed message"), "{log}");
    assert!(log.contains("2.0"), "wrong version is logged");
    assert!(log.contains("ignoring an older desired set"), "{log}");

    // Impossible specs next to the good pod.
    let mut img = busybox_pod(&bad_image, "badimg", "exec sleep 1000");
    img.containers[0].image = "127.0.0.1:9/edge/does-not-exist:nope".into();
    let mut nev = busybox_pod(&never, "never", "exec sleep 1000");
    nev.containers[0].image = "localhost/edge-never-present:nope".into();
    nev.containers[0].image_pull_policy = PullPolicy::Never;
    let mut mnt = busybox_pod(&no_mount, "nomount", "exec sleep 1000");
    mnt.volumes = vec![Volume {
        name: "data".into(),
        source: VolumeSource::HostPath {
            path: "/nonexistent/edge-test".into(),
            kind: Some("Directory".into()),
        },
    }];
    mnt.containers[0].volume_mounts = vec![VolumeMount {
        name: "data".into(),
        mount_path: "/data".into(),
        ..Default::default()
    }];
    let mut dev = busybox_pod(&no_device, "nodev", "exec sleep 1000");
    dev.containers[0].devices = vec![DeviceMapping {
        host_path: "/dev/edge-test-no-such-device".into(),
        ..Default::default()
    }];
    let mut novol = busybox_pod(&unknown_volume, "novol", "exec sleep 1000");
    novol.containers[0].volume_mounts = vec![VolumeMount {
        name: "ghost".into(),
        mount_path: "/ghost".into(),
        ..Default::default()
    }];
    let crashing = busybox_pod(&crash, "crash", "echo dying; exit 3");
    gw.desire(
        2,
        vec![good_pod.clone(), img, nev, mnt, dev, novol, crashing],
    )
    .await;
    let reason_is = |r: &'static str| {
        move |s: &edge_protocol::PodStatus| waiting_reason(s).as_deref() == Some(r)
    };
    gw.wait_status(&bad_image, "ErrImagePull", T, reason_is("ErrImagePull"))
        .await;
    gw.wait_status(
        &bad_image,
        "ImagePullBackOff",
        T,
        reason_is("ImagePullBackOff"),
    )
    .await;
    gw.wait_status(
        &never,
        "ErrImageNeverPull",
        T,
        reason_is("ErrImageNeverPull"),
    )
    .await;
    let s = gw
        .wait_status(
            &no_mount,
            "CreateContainerConfigError",
            T,
            reason_is("CreateContainerConfigError"),
        )
        .await;
    assert!(
        s.message
            .unwrap_or_default()
            .contains("/nonexistent/edge-test")
    );
    gw.wait_status(
        &no_device,
        "CreateContainerConfigError",
        T,
        reason_is("CreateContainerConfigError"),
    )
    .await;
    gw.wait_status(
        &unknown_volume,
        "CreateContainerConfigError",
        T,
        reason_is("CreateContainerConfigError"),
    )
    .await;
    let s = gw
        .wait_status(&crash, "CrashLoopBackOff", T, |s| {
            reason_is("CrashLoopBackOff")(s) && s.containers[0].restart_count >= 2
        })
        .await;
    assert!(matches!(
        s.containers[0].last_state,
        Some(ContainerState::Terminated { exit_code: 3, .. })
    ));
    let reasons = gw.event_reasons(&crash);
    assert!(reasons.contains(&"BackOff".to_owned()), "{reasons:?}");
    let reasons = gw.event_reasons(&bad_image);
    assert!(reasons.contains(&"Failed".to_owned()), "{reasons:?}");
    assert!(reasons.contains(&"Pulling".to_owned()), "{reasons:?}");
    // The good pod never noticed.
    let s = gw.latest_status(&good).unwrap();
    assert!(is_running(&s));
    assert_eq!(
        s.containers[0].container_id.as_deref(),
        Some(good_id.as_str())
    );
    assert_eq!(s.containers[0].restart_count, 0);
    gw.desire(3, vec![]).await;
    wait_until(T, "all test containers removed", || {
        podman_containers(&good).is_empty() && podman_containers(&crash).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_readiness_and_watchdog() {
    let unit = include_str!("../../deploy/systemd/edge-agent.service");
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "StateDirectory=edge-agent",
        "NotifyAccess=all",
        "ExecStart=/usr/local/bin/edge-agent supervise -- run --config /etc/edge-agent/agent.toml",
    ] {
        assert!(unit.contains(line), "unit lacks {line}");
    }
    let port = start_rumqttd();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let device = "rq-sd-1";
    let gw = TestGateway::connect(port, device).await;
    // As the unit runs it: the agent is the child of its update supervisor, the main
    // process, whose pid systemd puts in WATCHDOG_PID (a shell that execs the supervisor
    // keeps its pid); READY and the watchdog must still come from the agent.
    let ota_dir = dir.path().join("ota");
    let mut agent = AgentProcess::start_with(
        vec![
            "sh".into(),
            "-c".into(),
            format!(
                "WATCHDOG_PID=$$ exec \"$0\" supervise --ota-dir {} -- \"$@\"",
                ota_dir.display()
            ),
            agent_binary(),
        ],
        device,
        port,
        dir.path(),
        &[],
    );
    agent.kill9();
    agent.env = vec![
        ("NOTIFY_SOCKET".into(), socket_path.to_str().unwrap().into()),
        ("WATCHDOG_USEC".into(), "1000000".into()),
    ];
    agent.spawn();
    let notes = tokio::task::spawn_blocking(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !(got.iter().any(|m: &String| m.contains("READY=1"))
            && got.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
        {
            let n = socket.recv(&mut buf).expect("notification from the agent");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        got
    })
    .await
    .unwrap();
    // Ready only once the broker is connected.
    gw.wait_agent_online().await;
    assert!(
        notes
            .iter()
            .any(|m| m.contains("READY=1") && m.contains("STATUS=connected")),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_dir_host_path_and_device_mounts() {
    let port = start_rumqttd();
    let dir = tempfile::tempdir().unwrap();
    let device = "rq-mounts-1";
    let gw = TestGateway::connect(port, device).await;
    let _agent = AgentProcess::start(device, port, dir.path());
    gw.wait_agent_online().await;
    let uid = unique_uid("mounts");
    let _cleanup = PodCleanup(vec![uid.clone()]);
    let host_dir = dir.path().join("host-data/sub");
    let mut pod = busybox_pod(
        &uid,
        "mounts",
        "echo scratch > /scratch/f && echo host > /host/f && test -c /dev/edge-null && echo dev-ok; exec sleep 1000",
    );
    pod.volumes = vec![
        Volume {
            name: "scratch".into(),
            source: VolumeSource::EmptyDir {
                in_memory: false,
                size_limit_bytes: None,
            },
        },
        Volume {
            name: "host".into(),
            source: VolumeSource::HostPath {
                path: host_dir.display().to_string(),
                kind: Some("DirectoryOrCreate".into()),
            },
        },
    ];
    pod.containers[0].volume_mounts = vec![
        VolumeMount {
            name: "scratch".into(),
            mount_path: "/scratch".into(),
            ..Default::default()
        },
        VolumeMount {
            name: "host".into(),
            mount_path: "/host".into(),
            ..Default::default()
        },
    ];
    pod.containers[0].devices = vec![DeviceMapping {
        host_path: "/dev/null".into(),
        container_path: "/dev/edge-null".into(),
        permissions: "rwm".into(),
    }];
    gw.desire(1, vec![pod]).await;
    gw.wait_status(&uid, "running", T, is_running).await;
    wait_until(T, "hostPath written by the container", || {
        std::fs::read_to_string(host_dir.join("f")).is_ok_and(|t| t == "host\n")
    })
    .await;
    let pods_dir = dir.path().join(format!("state-{device}/pods"));
    let pod_dir = std::fs::read_dir(&pods_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(
        std::fs::read_to_string(pod_dir.join("volumes/scratch/f")).unwrap(),
        "scratch\n"
    );
    ask_logs(
        &gw,
        "m",
        LogRequest {
            pod_uid: uid.clone(),
            container: "main".into(),
            ..Default::default()
        },
    )
    .await;
    wait_until(T, "log answer", || log_text(&gw, "m").1).await;
    assert!(log_text(&gw, "m").0.contains("dev-ok"), "device not mapped");
    // emptyDir goes with the pod; the hostPath stays.
    gw.desire(2, vec![]).await;
    wait_until(T, "pod directory removed", || !pod_dir.exists()).await;
    assert!(host_dir.join("f").exists());
}
