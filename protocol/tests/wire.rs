//! Wire-level tests: round trips, golden fixtures, and decoding hostile payloads.
//!
//! Golden fixtures live in `tests/golden/<kind>.json`. A wire change makes
//! `golden_fixtures_match` fail; if the change is intended, regenerate them with
//! `UPDATE_GOLDEN=1 cargo test -p edge-protocol --test wire` and review the diff.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use edge_protocol::*;
use proptest::prelude::*;

fn device() -> DeviceId {
    DeviceId::new("pi-01").unwrap()
}

fn sample_desired_set() -> DesiredSet {
    DesiredSet {
        generation: 7,
        pods: vec![PodSpec {
            uid: "0b1c5a2e-1111-4222-8333-944455556666".into(),
            namespace: "default".into(),
            name: "sensor".into(),
            containers: vec![ContainerSpec {
                name: "reader".into(),
                image: "127.0.0.1:5000/sensor:1.2".into(),
                image_pull_policy: PullPolicy::Always,
                command: vec!["/bin/sh".into(), "-c".into()],
                args: vec!["cat /config/rate; sleep 3600".into()],
                working_dir: Some("/".into()),
                env: vec![
                    EnvVar {
                        name: "RATE".into(),
                        value: "5".into(),
                    },
                    EnvVar {
                        name: "TOKEN".into(),
                        value: "s3cret".into(),
                    },
                ],
                ports: vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080,
                    host_port: Some(8080),
                    protocol: PortProtocol::Tcp,
                }],
                resources: ResourceRequirements {
                    cpu_request_millis: Some(100),
                    cpu_limit_millis: Some(500),
                    memory_request_bytes: Some(16 << 20),
                    memory_limit_bytes: Some(64 << 20),
                    extended: BTreeMap::from([("nvidia.com/gpu".to_owned(), 1)]),
                },
                volume_mounts: vec![
                    VolumeMount {
                        name: "config".into(),
                        mount_path: "/config".into(),
                        read_only: true,
                        sub_path: None,
                    },
                    VolumeMount {
                        name: "scratch".into(),
                        mount_path: "/scratch".into(),
                        read_only: false,
                        sub_path: None,
                    },
                ],
                devices: vec![DeviceMapping {
                    host_path: "/dev/gpiomem".into(),
                    container_path: "/dev/gpiomem".into(),
                    permissions: "rw".into(),
                }],
                liveness_probe: Some(Probe {
                    handler: ProbeHandler::HttpGet {
                        host: None,
                        port: 8080,
                        path: "/healthz".into(),
                        scheme: "HTTP".into(),
                        headers: vec![HttpHeader {
                            name: "X-Probe".into(),
                            value: "1".into(),
                        }],
                    },
                    initial_delay_seconds: 2,
                    period_seconds: 5,
                    timeout_seconds: 1,
                    success_threshold: 1,
                    failure_threshold: 3,
                }),
                readiness_probe: Some(Probe {
                    handler: ProbeHandler::Exec {
                        command: vec!["cat".into(), "/tmp/ready".into()],
                    },
                    initial_delay_seconds: 0,
                    period_seconds: 10,
                    timeout_seconds: 1,
                    success_threshold: 1,
                    failure_threshold: 3,
                }),
                startup_probe: Some(Probe {
                    handler: ProbeHandler::TcpSocket {
                        host: None,
                        port: 8080,
                    },
                    initial_delay_seconds: 0,
                    period_seconds: 1,
                    timeout_seconds: 1,
                    success_threshold: 1,
                    failure_threshold: 30,
                }),
                privileged: false,
                stdin: false,
                stdin_once: false,
                tty: false,
                restart_policy: None,
                lifecycle: Some(Lifecycle {
                    post_start: Some(LifecycleHandler::Exec {
                        command: vec!["touch".into(), "/tmp/started".into()],
                    }),
                    pre_stop: Some(LifecycleHandler::HttpGet {
                        host: None,
                        port: 8080,
                        path: "/quit".into(),
                        scheme: "HTTP".into(),
                        headers: vec![],
                    }),
                }),
                termination_message_path: Some("/tmp/last-words".into()),
                termination_message_policy: TerminationMessagePolicy::FallbackToLogsOnError,
            }],
            init_containers: vec![
                ContainerSpec {
                    name: "log-shipper".into(),
                    image: "busybox:1.36".into(),
                    command: vec!["sh".into(), "-c".into(), "tail -F /scratch/log".into()],
                    restart_policy: Some(RestartPolicy::Always),
                    startup_probe: Some(Probe {
                        handler: ProbeHandler::Grpc {
                            port: 9090,
                            service: Some("shipper".into()),
                        },
                        initial_delay_seconds: 0,
                        period_seconds: 2,
                        timeout_seconds: 1,
                        success_threshold: 1,
                        failure_threshold: 10,
                    }),
                    ..Default::default()
                },
                ContainerSpec {
                    name: "fetch-config".into(),
                    image: "busybox:1.36".into(),
                    command: vec!["sh".into(), "-c".into(), "echo 5 > /scratch/rate".into()],
                    ..Default::default()
                },
            ],
            volumes: vec![
                Volume {
                    name: "config".into(),
                    source: VolumeSource::Files {
                        files: vec![FileItem {
                            path: "rate".into(),
                            content: "5\n".into(),
                            mode: 0o644,
                        }],
                        sensitive: false,
                    },
                },
                Volume {
                    name: "scratch".into(),
                    source: VolumeSource::EmptyDir {
                        in_memory: false,
                        size_limit_bytes: None,
                    },
                },
                Volume {
                    name: "sys".into(),
                    source: VolumeSource::HostPath {
                        path: "/sys/class/thermal".into(),
                        kind: Some("Directory".into()),
                    },
                },
            ],
            restart_policy: RestartPolicy::OnFailure,
            termination_grace_period_seconds: 30,
            deletion_grace_period_seconds: None,
            registry_credentials: vec![RegistryCredential {
                registry: "127.0.0.1:5000".into(),
                username: "edge".into(),
                password: "pull-pass".into(),
            }],
            host_network: true,
            hostname: Some("sensor".into()),
            log_cache_opt_out: false,
            ephemeral_containers: vec![EphemeralContainerSpec {
                name: "debugger".into(),
                image: "busybox:1.36".into(),
                image_pull_policy: PullPolicy::IfNotPresent,
                command: vec!["sh".into()],
                args: vec![],
                working_dir: None,
                env: vec![EnvVar {
                    name: "DEBUG".into(),
                    value: "1".into(),
                }],
                volume_mounts: vec![],
                stdin: true,
                stdin_once: true,
                tty: true,
                target_container_name: Some("reader".into()),
                privileged: false,
            }],
            active_deadline_seconds: Some(600),
        }],
    }
}

fn samples() -> Vec<Message> {
    let started = 1_767_225_600_000;
    vec![
        Message::NodeReport(NodeReport {
            agent_version: "0.1.0".into(),
            hostname: "pi-01".into(),
            architecture: "arm64".into(),
            operating_system: "linux".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel_version: "6.1.0-rpi7-rpi-v8".into(),
            board_model: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
            container_runtime_version: "docker://24.0.7".into(),
            machine_id: Some("4c4c4544".into()),
            boot_id: Some("b00t".into()),
            capacity: NodeResources {
                cpu_millis: 4000,
                memory_bytes: 8 << 30,
                ephemeral_storage_bytes: 32 << 30,
                pods: 110,
                extended: BTreeMap::from([("nvidia.com/gpu".into(), 1)]),
            },
            allocatable: NodeResources {
                cpu_millis: 3800,
                memory_bytes: 7 << 30,
                ephemeral_storage_bytes: 30 << 30,
                pods: 110,
                extended: BTreeMap::from([("nvidia.com/gpu".into(), 1)]),
            },
            labels: BTreeMap::from([("site".into(), "lab".into())]),
            addresses: vec![
                NodeAddress {
                    kind: NodeAddressKind::InternalIP,
                    address: "192.0.2.10".into(),
                },
                NodeAddress {
                    kind: NodeAddressKind::Hostname,
                    address: "pi-01".into(),
                },
            ],
            capabilities: DeviceCapabilities {
                streams: Some(STREAM_PROTOCOL_VERSION),
                stats_interval_seconds: Some(15),
                log_tail_interval_seconds: Some(60),
                active_deadline: true,
                init_containers: true,
                lifecycle_hooks: true,
                grpc_probes: true,
                gpu_assignment: true,
                retire: true,
                agent_update: true,
                image_prepull: true,
            },
            conditions: vec![
                NodePressureCondition {
                    kind: NodeConditionKind::DiskPressure,
                    pressure: true,
                    since: started + 60_000,
                    message: "nodefs.available 3% < 10%".into(),
                },
                NodePressureCondition {
                    kind: NodeConditionKind::PidPressure,
                    pressure: false,
                    since: started,
                    message: String::new(),
                },
            ],
            images: vec![NodeImage {
                names: vec!["docker.io/library/busybox:1.36".into()],
                size_bytes: 4_261_550,
            }],
            update: true,
            agent_update: Some(AgentUpdateStatus {
                version: "0.2.0".into(),
                phase: AgentUpdatePhase::RolledBack,
                bytes_received: 6_291_456,
                total_bytes: 6_291_456,
                message: "version 0.2.0 did not report healthy within 120 s".into(),
                since: started + 30_000,
            }),
            image_prepull: Some(ImagePrepullStatus {
                revision: "5d41402abc4b2a76".into(),
                images: vec![PrepullImageStatus {
                    image: "ghcr.io/acme/app:2.1".into(),
                    phase: PrepullPhase::Present,
                    bytes_done: 31_457_280,
                    bytes_total: 31_457_280,
                    message: String::new(),
                    since: started + 40_000,
                }],
            }),
        }),
        Message::Heartbeat(Heartbeat {
            sequence: 42,
            sent_at: started + 420_000,
            observed_generation: 7,
            pods_running: 1,
        }),
        Message::DeviceState(DeviceState {
            online: false,
            reason: Some("connection lost".into()),
            since: started,
        }),
        Message::PodStatusReport(PodStatusReport {
            sequence: 9,
            observed_generation: 7,
            full: true,
            pods: vec![PodStatus {
                uid: "0b1c5a2e-1111-4222-8333-944455556666".into(),
                namespace: "default".into(),
                name: "sensor".into(),
                phase: PodPhase::Running,
                reason: None,
                message: None,
                pod_ip: Some("192.0.2.10".into()),
                start_time: Some(started),
                containers: vec![ContainerStatus {
                    name: "reader".into(),
                    state: ContainerState::Running {
                        started_at: started + 2_000,
                    },
                    last_state: Some(ContainerState::Terminated {
                        exit_code: 137,
                        signal: Some(9),
                        reason: "Error".into(),
                        message: None,
                        started_at: Some(started),
                        finished_at: Some(started + 1_000),
                    }),
                    ready: true,
                    started: Some(true),
                    restart_count: 1,
                    image: "127.0.0.1:5000/sensor:1.2".into(),
                    image_id: "sha256:abc".into(),
                    container_id: Some("docker://c0ffee".into()),
                }],
                init_containers: vec![ContainerStatus {
                    name: "fetch-config".into(),
                    state: ContainerState::Terminated {
                        exit_code: 0,
                        signal: None,
                        reason: "Completed".into(),
                        message: None,
                        started_at: Some(started),
                        finished_at: Some(started + 500),
                    },
                    last_state: None,
                    ready: true,
                    started: Some(false),
                    restart_count: 0,
                    image: "busybox:1.36".into(),
                    image_id: "sha256:b0b".into(),
                    container_id: Some("docker://1417".into()),
                }],
                ephemeral_containers: vec![ContainerStatus {
                    name: "debugger".into(),
                    state: ContainerState::Terminated {
                        exit_code: 0,
                        signal: None,
                        reason: "Completed".into(),
                        message: None,
                        started_at: Some(started + 5_000),
                        finished_at: Some(started + 9_000),
                    },
                    last_state: None,
                    ready: false,
                    started: Some(false),
                    restart_count: 0,
                    image: "busybox:1.36".into(),
                    image_id: "sha256:b0x".into(),
                    container_id: Some("docker://deb06".into()),
                }],
                removed: false,
            }],
        }),
        Message::PodEventReport(PodEventReport {
            events: vec![PodEvent {
                pod_uid: "0b1c5a2e-1111-4222-8333-944455556666".into(),
                namespace: "default".into(),
                pod_name: "sensor".into(),
                container: Some("reader".into()),
                event_type: EventType::Warning,
                reason: "BackOff".into(),
                message: "Back-off restarting failed container reader".into(),
                timestamp: started + 5_000,
                count: 3,
            }],
        }),
        Message::ResyncRequest(ResyncRequest {
            known_generation: 6,
            reason: "agent start".into(),
        }),
        Message::RetireOrder(RetireOrder {
            reason: "retired by edge-gateway retire".into(),
        }),
        Message::AgentUpdateOrder(AgentUpdateOrder {
            version: "0.2.0".into(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            size_bytes: 6_291_456,
            signature: Base64Bytes(vec![7; 64]),
            health_deadline_seconds: 120,
        }),
        Message::AgentUpdateFetch(AgentUpdateFetch {
            version: "0.2.0".into(),
            offset: 262_144,
            length: AGENT_UPDATE_CHUNK_BYTES,
        }),
        Message::AgentUpdateChunk(AgentUpdateChunk {
            version: "0.2.0".into(),
            offset: 262_144,
            data: Base64Bytes(b"\x7fELF".to_vec()),
            error: None,
        }),
        Message::AgentUpdateStatus(AgentUpdateStatus {
            version: "0.2.0".into(),
            phase: AgentUpdatePhase::Downloading,
            bytes_received: 524_288,
            total_bytes: 6_291_456,
            message: String::new(),
            since: started + 20_000,
        }),
        Message::ImagePrepullSet(ImagePrepullSet {
            revision: "5d41402abc4b2a76".into(),
            images: vec![
                "ghcr.io/acme/app:2.1".into(),
                "docker.io/library/busybox:1.36".into(),
            ],
            registry_credentials: vec![RegistryCredential {
                registry: "ghcr.io".into(),
                username: "fleet-bot".into(),
                password: "token".into(),
            }],
        }),
        Message::ImagePrepullStatus(ImagePrepullStatus {
            revision: "5d41402abc4b2a76".into(),
            images: vec![
                PrepullImageStatus {
                    image: "ghcr.io/acme/app:2.1".into(),
                    phase: PrepullPhase::Pulling,
                    bytes_done: 10_485_760,
                    bytes_total: 31_457_280,
                    message: String::new(),
                    since: started + 35_000,
                },
                PrepullImageStatus {
                    image: "docker.io/library/busybox:1.36".into(),
                    phase: PrepullPhase::Failed,
                    bytes_done: 0,
                    bytes_total: 0,
                    message: "pulling image docker.io/library/busybox:1.36: timeout".into(),
                    since: started + 36_000,
                },
            ],
        }),
        Message::LogChunk(LogChunk {
            sequence: 3,
            data: "line one\nline two\n".into(),
            end_of_stream: true,
            error: Some(LogError {
                code: LogErrorCode::NotFound,
                message: "container reader not found".into(),
            }),
        }),
        Message::DesiredSet(sample_desired_set()),
        Message::LogRequest(LogRequest {
            pod_uid: "0b1c5a2e-1111-4222-8333-944455556666".into(),
            namespace: "default".into(),
            pod_name: "sensor".into(),
            container: "reader".into(),
            tail_lines: Some(10),
            since_seconds: Some(60),
            since_time: None,
            timestamps: true,
            follow: true,
            limit_bytes: Some(1 << 20),
            previous: false,
        }),
        Message::LogCancel(LogCancel {
            reason: Some("client went away".into()),
        }),
        Message::NodeStats(NodeStats {
            sampled_at: started + 60_000,
            node: NodeUsage {
                started_at: Some(started - 3_600_000),
                usage: CpuMemoryUsage {
                    cpu_usage_core_nanoseconds: 9_000_000_000_000,
                    memory_working_set_bytes: 700 << 20,
                    memory_usage_bytes: Some(900 << 20),
                    memory_rss_bytes: Some(500 << 20),
                    memory_available_bytes: Some(7 << 30),
                },
                filesystem: Some(FilesystemUsage {
                    capacity_bytes: 32 << 30,
                    used_bytes: 10 << 30,
                    available_bytes: 22 << 30,
                }),
                image_filesystem: None,
                network: Some(NetworkUsage {
                    rx_bytes: 123_456,
                    tx_bytes: 654_321,
                }),
            },
            pods: vec![PodUsage {
                pod_uid: "0b1c5a2e-1111-4222-8333-944455556666".into(),
                namespace: "default".into(),
                name: "sensor".into(),
                containers: vec![ContainerUsage {
                    name: "reader".into(),
                    started_at: started + 2_000,
                    usage: CpuMemoryUsage {
                        cpu_usage_core_nanoseconds: 42_000_000,
                        memory_working_set_bytes: 3 << 20,
                        ..Default::default()
                    },
                    rootfs_used_bytes: Some(4096),
                    logs_used_bytes: Some(512),
                }],
            }],
            agent: AgentCounters {
                mqtt_reconnects: 2,
                uplink_queue_depth: 0,
                reconcile_errors: 1,
                open_streams: 1,
            },
        }),
        Message::LogTailReport(LogTailReport {
            containers: vec![ContainerLogTail {
                pod_uid: "0b1c5a2e-1111-4222-8333-944455556666".into(),
                namespace: "default".into(),
                pod_name: "sensor".into(),
                container: "reader".into(),
                data: "reading 41\nreading 42\n".into(),
                truncated: true,
                until: started + 61_000,
            }],
        }),
        Message::StreamOpen(StreamOpen {
            version: STREAM_PROTOCOL_VERSION,
            target: StreamTarget::Exec {
                pod: StreamPod {
                    pod_uid: "0b1c5a2e-1111-4222-8333-944455556666".into(),
                    namespace: "default".into(),
                    pod_name: "sensor".into(),
                },
                container: "reader".into(),
                command: vec!["sh".into()],
                stdio: StdioSelection {
                    stdin: true,
                    stdout: true,
                    stderr: false,
                    tty: true,
                },
            },
            terminal_size: Some(TerminalSize {
                width: 120,
                height: 40,
            }),
            window_bytes: DEFAULT_STREAM_WINDOW_BYTES,
        }),
        Message::StreamOpened(StreamOpened {
            window_bytes: DEFAULT_STREAM_WINDOW_BYTES,
            version: None,
        }),
        Message::StreamData(StreamData {
            sequence: 0,
            channel: StreamChannel::Stdout,
            data: "hi\n".into(),
            end: false,
        }),
        Message::StreamCredit(StreamCredit { bytes: 131_072 }),
        Message::StreamResize(StreamResize {
            size: TerminalSize {
                width: 100,
                height: 30,
            },
        }),
        Message::StreamClose(StreamClose {
            exit_code: Some(3),
            error: None,
        }),
    ]
}

fn topic_for(kind: MessageKind) -> Topic {
    let d = device();
    let r = RequestId::new("r1").unwrap();
    match kind {
        MessageKind::NodeReport => Topic::up(&d, UpChannel::Hello),
        MessageKind::Heartbeat => Topic::up(&d, UpChannel::Heartbeat),
        MessageKind::DeviceState => Topic::up(&d, UpChannel::State),
        MessageKind::PodStatusReport => Topic::up(&d, UpChannel::Status),
        MessageKind::PodEventReport => Topic::up(&d, UpChannel::Events),
        MessageKind::ResyncRequest => Topic::up(&d, UpChannel::Resync),
        MessageKind::LogChunk => Topic::up(&d, UpChannel::Logs(r)),
        MessageKind::DesiredSet => Topic::down(&d, DownChannel::Desired),
        MessageKind::RetireOrder => Topic::down(&d, DownChannel::Retire),
        MessageKind::AgentUpdateOrder | MessageKind::AgentUpdateChunk => {
            Topic::down(&d, DownChannel::AgentUpdate)
        }
        MessageKind::AgentUpdateFetch | MessageKind::AgentUpdateStatus => {
            Topic::up(&d, UpChannel::AgentUpdate)
        }
        MessageKind::ImagePrepullSet => Topic::down(&d, DownChannel::Prepull),
        MessageKind::ImagePrepullStatus => Topic::up(&d, UpChannel::Prepull),
        MessageKind::LogRequest | MessageKind::LogCancel => Topic::down(&d, DownChannel::Logs(r)),
        MessageKind::NodeStats => Topic::up(&d, UpChannel::Stats),
        MessageKind::LogTailReport => Topic::up(&d, UpChannel::LogTail),
        MessageKind::StreamOpened
        | MessageKind::StreamData
        | MessageKind::StreamCredit
        | MessageKind::StreamClose => Topic::up(&d, UpChannel::Stream(r)),
        MessageKind::StreamOpen | MessageKind::StreamResize => {
            Topic::down(&d, DownChannel::Stream(r))
        }
    }
}

fn round_trip(kind: MessageKind) {
    let msg = samples()
        .into_iter()
        .find(|m| m.kind() == kind)
        .expect("a sample per kind");
    let bytes = msg.encode().unwrap();
    assert_eq!(Message::decode(&bytes).unwrap(), msg);
    assert_eq!(Message::decode_on(&topic_for(kind), &bytes).unwrap(), msg);
}

#[test]
fn round_trip_node_report() {
    round_trip(MessageKind::NodeReport);
}
#[test]
fn round_trip_heartbeat() {
    round_trip(MessageKind::Heartbeat);
}
#[test]
fn round_trip_device_state() {
    round_trip(MessageKind::DeviceState);
}
#[test]
fn round_trip_pod_status_report() {
    round_trip(MessageKind::PodStatusReport);
}
#[test]
fn round_trip_pod_event_report() {
    round_trip(MessageKind::PodEventReport);
}
#[test]
fn round_trip_resync_request() {
    round_trip(MessageKind::ResyncRequest);
}
#[test]
fn round_trip_log_chunk() {
    round_trip(MessageKind::LogChunk);
}
#[test]
fn round_trip_desired_set() {
    round_trip(MessageKind::DesiredSet);
}
#[test]
fn round_trip_log_request() {
    round_trip(MessageKind::LogRequest);
}
#[test]
fn round_trip_log_cancel() {
    round_trip(MessageKind::LogCancel);
}

#[test]
fn round_trip_node_stats() {
    round_trip(MessageKind::NodeStats);
}
#[test]
fn round_trip_log_tail_report() {
    round_trip(MessageKind::LogTailReport);
}
#[test]
fn round_trip_stream_messages() {
    for kind in [
        MessageKind::StreamOpen,
        MessageKind::StreamOpened,
        MessageKind::StreamData,
        MessageKind::StreamCredit,
        MessageKind::StreamResize,
        MessageKind::StreamClose,
    ] {
        round_trip(kind);
    }
}

#[test]
fn round_trip_retire_order() {
    round_trip(MessageKind::RetireOrder);
}

#[test]
fn round_trip_agent_updates() {
    round_trip(MessageKind::AgentUpdateOrder);
    round_trip(MessageKind::AgentUpdateFetch);
    round_trip(MessageKind::AgentUpdateChunk);
    round_trip(MessageKind::AgentUpdateStatus);
}

#[test]
fn round_trip_image_prepull() {
    round_trip(MessageKind::ImagePrepullSet);
    round_trip(MessageKind::ImagePrepullStatus);
}

#[test]
fn samples_cover_every_kind() {
    let kinds: Vec<_> = samples().iter().map(Message::kind).collect();
    for k in MessageKind::ALL {
        assert!(kinds.contains(&k), "no sample for {k}");
    }
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn golden_fixtures_match() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for msg in samples() {
        let encoded = msg.encode().unwrap();
        let value: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let path = golden_dir().join(format!("{}.json", msg.kind()));
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &pretty).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
        if golden != pretty {
            mismatches.push(path.display().to_string());
        }
        // The fixture itself must decode to the sample: old payloads stay readable.
        assert_eq!(Message::decode(golden.as_bytes()).unwrap(), msg);
    }
    assert!(
        mismatches.is_empty(),
        "wire format changed for {mismatches:?}; if intended, run UPDATE_GOLDEN=1 cargo test -p edge-protocol --test wire"
    );
}

/// Every field name on the wire is camelCase, struct variants of enums included
/// (serde's `rename_all` alone leaves their fields in snake_case).
#[test]
fn every_wire_field_is_camel_case() {
    fn walk(v: &serde_json::Value, path: &str, bad: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    let camel = k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && k.chars().all(|c| c.is_ascii_alphanumeric());
                    if !camel {
                        bad.push(format!("{path}.{k}"));
                    }
                    // Labels and extended resources are data maps, not field names.
                    if k != "labels" && k != "extended" {
                        walk(child, &format!("{path}.{k}"), bad);
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{path}[]"), bad);
                }
            }
            _ => {}
        }
    }
    let mut bad = Vec::new();
    for msg in samples() {
        let value: serde_json::Value = serde_json::from_slice(&msg.encode().unwrap()).unwrap();
        walk(&value, msg.kind().as_str(), &mut bad);
    }
    assert!(bad.is_empty(), "not camelCase: {bad:?}");
}

#[test]
fn unknown_fields_are_ignored() {
    let payload = br#"{"protocol":"1.3","kind":"heartbeat","extra":1,
        "body":{"sequence":5,"futureField":{"x":[1,2]}}}"#;
    match Message::decode(payload).unwrap() {
        Message::Heartbeat(h) => assert_eq!(h.sequence, 5),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_body_means_defaults() {
    let payload = br#"{"protocol":"1.0","kind":"logCancel"}"#;
    assert_eq!(
        Message::decode(payload).unwrap(),
        Message::LogCancel(LogCancel::default())
    );
}

#[test]
fn unknown_kind_is_a_typed_error() {
    let payload = br#"{"protocol":"1.0","kind":"teleport","body":{}}"#;
    assert_eq!(
        Message::decode(payload),
        Err(DecodeError::UnknownKind("teleport".into()))
    );
}

#[test]
fn newer_major_version_is_refused() {
    let payload = br#"{"protocol":"2.0","kind":"heartbeat","body":{}}"#;
    assert!(matches!(
        Message::decode(payload),
        Err(DecodeError::UnsupportedVersion { found, .. }) if found.major == 2
    ));
    let old = br#"{"protocol":"0.9","kind":"heartbeat","body":{}}"#;
    assert!(matches!(
        Message::decode(old),
        Err(DecodeError::UnsupportedVersion { .. })
    ));
}

#[test]
fn missing_and_malformed_versions_are_refused() {
    assert_eq!(
        Message::decode(br#"{"kind":"heartbeat"}"#),
        Err(DecodeError::MissingVersion)
    );
    assert_eq!(
        Message::decode(br#"{"protocol":"one","kind":"heartbeat"}"#),
        Err(DecodeError::BadVersion("one".into()))
    );
    assert!(matches!(
        Message::decode(br#"{"protocol":1,"kind":"heartbeat"}"#),
        Err(DecodeError::BadVersion(_))
    ));
}

#[test]
fn malformed_json_is_a_typed_error() {
    for bad in [&b"{"[..], b"[]", b"null", b"\"x\"", b"", b"\xff\xfe"] {
        assert!(
            matches!(Message::decode(bad), Err(DecodeError::Malformed(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        Message::decode(br#"{"protocol":"1.0"}"#),
        Err(DecodeError::MissingKind)
    );
}

#[test]
fn wrong_body_types_are_invalid_body() {
    let payload = br#"{"protocol":"1.0","kind":"heartbeat","body":{"sequence":"many"}}"#;
    assert!(matches!(
        Message::decode(payload),
        Err(DecodeError::InvalidBody {
            kind: MessageKind::Heartbeat,
            ..
        })
    ));
    let bad_base64 = br#"{"protocol":"1.0","kind":"logChunk","body":{"data":"!!"}}"#;
    assert!(matches!(
        Message::decode(bad_base64),
        Err(DecodeError::InvalidBody { .. })
    ));
}

#[test]
fn oversized_payloads_are_refused_before_parsing() {
    let mut big = br#"{"protocol":"1.0","kind":"heartbeat","body":{"pad":""#.to_vec();
    big.resize(MAX_MESSAGE_BYTES + 10, b'a');
    big.extend_from_slice(b"\"}}");
    let topic = topic_for(MessageKind::Heartbeat);
    assert!(matches!(
        Message::decode_on(&topic, &big),
        Err(DecodeError::TooLarge { limit, .. }) if limit == MAX_MESSAGE_BYTES
    ));
    // Without a topic, the kind's limit still applies once the kind is known.
    assert!(matches!(
        Message::decode(&big),
        Err(DecodeError::TooLarge { limit, .. }) if limit == MAX_MESSAGE_BYTES
    ));
    let huge = vec![b' '; MAX_DESIRED_SET_BYTES + 1];
    assert!(matches!(
        Message::decode(&huge),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn encoding_refuses_oversized_desired_sets() {
    let mut set = sample_desired_set();
    set.pods[0].volumes.push(Volume {
        name: "big".into(),
        source: VolumeSource::Files {
            files: vec![FileItem {
                path: "blob".into(),
                content: Base64Bytes(vec![0; MAX_DESIRED_SET_BYTES]),
                mode: 0o644,
            }],
            sensitive: false,
        },
    });
    assert!(matches!(
        Message::DesiredSet(set).encode(),
        Err(EncodeError::TooLarge {
            kind: MessageKind::DesiredSet,
            ..
        })
    ));
}

#[test]
fn kinds_on_the_wrong_topic_are_refused() {
    let hb = Message::Heartbeat(Heartbeat::default()).encode().unwrap();
    let status_topic = topic_for(MessageKind::PodStatusReport);
    assert!(matches!(
        Message::decode_on(&status_topic, &hb),
        Err(DecodeError::WrongTopic {
            kind: MessageKind::Heartbeat,
            ..
        })
    ));
    // A device must not be able to make the gateway accept a desired set on an up topic.
    let desired = Message::DesiredSet(DesiredSet::default()).encode().unwrap();
    for up in [UpChannel::Hello, UpChannel::Status, UpChannel::Resync] {
        assert!(Message::decode_on(&Topic::up(&device(), up), &desired).is_err());
    }
}

#[test]
fn secrets_do_not_leak_into_debug_output() {
    let set = sample_desired_set();
    let dbg = format!("{set:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
    assert!(!dbg.contains("pull-pass"), "{dbg}");
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let mut payload = br#"{"protocol":"1.0","kind":"heartbeat","body":"#.to_vec();
    payload.extend(std::iter::repeat_n(b'[', 100_000));
    assert!(Message::decode(&payload).is_err());
}

fn arb_device_id() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?){0,3}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Message::decode(&bytes);
        let _ = Message::decode_on(&topic_for(MessageKind::PodStatusReport), &bytes);
    }

    #[test]
    fn decoding_envelope_shaped_noise_never_panics(
        version in prop_oneof![Just("1.0".to_string()), "[0-9.]{0,6}", any::<String>()],
        kind in prop_oneof![
            proptest::sample::select(MessageKind::ALL.iter().map(|k| k.as_str().to_string()).collect::<Vec<_>>()),
            any::<String>()
        ],
        body in "[\\[\\]{}\",:0-9a-zA-Z\\\\ -]{0,200}",
    ) {
        let payload = format!(r#"{{"protocol":{},"kind":{},"body":{}}}"#,
            serde_json::Value::String(version), serde_json::Value::String(kind), body);
        let _ = Message::decode(payload.as_bytes());
    }

    #[test]
    fn parsing_arbitrary_topics_never_panics(topic in any::<String>()) {
        let _ = Topic::parse(&topic);
    }

    #[test]
    fn valid_device_ids_round_trip_through_topics(id in arb_device_id()) {
        let device = DeviceId::new(id.clone()).unwrap();
        for t in [Topic::up(&device, UpChannel::Status), Topic::down(&device, DownChannel::Desired)] {
            let parsed = Topic::parse(&t.to_string()).unwrap();
            prop_assert_eq!(parsed.device().as_str(), id.as_str());
            prop_assert_eq!(parsed, t);
        }
    }

    #[test]
    fn ids_with_wildcards_or_separators_are_rejected(prefix in "[a-z]{0,5}", bad in "[+#/A-Z ]", suffix in "[a-z]{0,5}") {
        let id = format!("{prefix}{bad}{suffix}");
        prop_assert!(DeviceId::new(id).is_err());
    }
}
