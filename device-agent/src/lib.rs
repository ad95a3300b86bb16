//! # edge-agent
//!
//! The small static agent that runs Kubernetes pods on an edge device (Raspberry Pi,
//! Jetson, x86) through Docker or Podman, driven over MQTT by `edge-gateway`, and keeps
//! them running when the network does not.
//!
//! # Layout
//!
//! Unit tests of a module `m` are in `m/tests.rs` (`m/` holds the module's other files
//! when it has any); tests that need processes, brokers or a cluster are under `tests/`
//! and in `hil-tests`.
//!
//! | module | what is there |
//! |---|---|
//! | [`cli`] | clap command line: `run`, `install`, `supervise`, `ota`, `--print-default-config` |
//! | [`config`] | [`config::AgentConfig`]: TOML file + env + flags, validated; the commented default file |
//! | [`resource_policy`] | the `[resources]` settings: log rotation, eviction thresholds, measured paths, image GC |
//! | [`agent`] | [`agent::run`]: wiring and the thin async loop that drives everything below; `agent/downlink_handling.rs`: what is done with each message from the gateway; `agent/agent_update_handling.rs`: agent updates over MQTT (orders, chunks, statuses, the node report's version and update status); `agent/prepull_handling.rs`: image pre-pull sets (checked, stored, handed to the worker) and its statuses (`up/prepull`, the node report, GC) |
//! | [`downlink`] | decoding at the MQTT edge: a frame becomes a typed [`downlink::Downlink`] or a [`downlink::RejectReason`] |
//! | [`unsaved_desired`] | a desired set not yet saved and the deliveries to acknowledge once it is |
//! | [`pod_lifecycle`] | the reconciler, a pure state machine (`handle(input) -> effects`): `inputs_effects`, `container_memory`, `outcomes`, `reconcile`, `sandbox` (the pod's infra container: shared network, IPC, hostname), `unlisted_creates` (containers on their way, which hold their infra container), `gpu_assignment` (`nvidia.com/gpu` devices per container, admission), `ephemeral` (containers of `kubectl debug`), `lifecycle_hooks` (postStart / preStop), `termination_message`, `status_report` |
//! | [`effect_executor`] | carries out the reconciler's effects: outbox, probe workers, runtime effects |
//! | [`runtime_effects`] | executes the reconciler's runtime and file-system effects, returns their outcomes |
//! | [`backoff`] | the kubelet's crash-loop / image-pull back-off |
//! | [`container_runtime`] | the runtime trait and its data types |
//! | [`docker_runtime`] | that trait over the Docker Engine API (Docker, Podman) with bollard |
//! | [`engine_api_get`] | raw Engine API GETs (list, inspect) tolerant of Podman's extra values |
//! | [`container_labels`] | labels and names of managed containers (adoption after restart) |
//! | [`pod_volumes`] | Files/emptyDir/hostPath volumes and device paths on the device |
//! | [`atomic_writer`] | Files volumes swapped as the kubelet's AtomicWriter does: a timestamped directory per version, an atomically renamed `..data` symlink, user-visible names as symlinks into it |
//! | [`probe_worker`] | exec / HTTP / TCP / gRPC probes with thresholds |
//! | [`hook_runner`] | runs a container's postStart / preStop hook: exec, httpGet (the probes' HTTP client), sleep |
//! | [`termination_log`] | the termination message file of each container instance: created, bound, read; the log-tail fallback |
//! | [`insecure_tls`] | TLS without CA checks for HTTPS probes (as the kubelet) |
//! | [`log_stream`] | log requests answered as sequenced chunks |
//! | [`log_tail`] | the containers' new output, cut to a tail, reported every interval for the gateway's offline log cache |
//! | [`streams`] | `kubectl exec`, `attach`, `port-forward`: stream table and limits, per-stream flow state, the task per stream, Engine API exec/attach, TCP for port-forward |
//! | [`local_store`] | files: desired set, pre-pull set, report sequence, outbox of unacknowledged uplink |
//! | [`publish_ledger`] | which QoS 1 publish the client wrote was the uplink window's and which a stream's; the stream publisher |
//! | [`uplink_window`] | pure state machine: one reliable message at a time, PUBACKs matched by connection and packet id |
//! | [`mqtt_session`] | rumqttc event loop, reconnects, subscriptions, publishing tasks |
//! | [`usage_sample`] | resource usage from raw `/proc` text and Engine API stats JSON (pure): the `up/stats` sample |
//! | [`stats_reporter`] | the task that reads those inputs every `stats_interval_seconds` and hands samples to the agent loop |
//! | [`node_pressure`] | pure: hard eviction thresholds, pressure conditions, which pod to evict |
//! | [`image_gc`] | pure: images last used when, which to remove between the GC thresholds (never an image of the pre-pull set); `status.images` |
//! | [`image_prepull`] | image pre-pull (`down/prepull`): the set checked, `plan.rs` the pure state machine (inspect, pull one at a time in order, back-off, recheck, when a status is due, ids kept from GC), `worker.rs` the task that runs it |
//! | [`image_reference`] | pure: the tag a bare image name pulls; the registry credential a pull uses (pods and pre-pulls alike) |
//! | [`pull_progress`] | pure: an image pull's bytes summed over the layers the Engine API reports |
//! | [`pressure_monitor`] | measures memory, nodefs, imagefs, PIDs every interval; runs image GC; picks the pod to evict |
//! | [`runtime_images`] | the runtime's images and the images its containers use (Engine API); removal |
//! | [`gpu_request`] | how assigned GPUs reach a container: NVIDIA device request, CDI device request, or `NVIDIA_VISIBLE_DEVICES` |
//! | [`host_facts`] | the node report read from /proc, /etc/os-release, uname, statvfs, GPUs |
//! | [`retirement`] | the wipe a retired device does on the gateway's `down/retire`: containers stopped and removed, state directory, key and certificate deleted; [`retirement::RETIRED_EXIT_CODE`] |
//! | [`systemd_notify`] | `Type=notify` readiness and watchdog |
//! | [`bootstrap`] | zero-touch enrollment: the device id from the hardware, the key generated on the device, the CSR with the bootstrap token, the issued certificate stored |
//! | [`ota`] | agent updates A/B: the signed binary verified against the pinned key, slots and `state.json`, the supervisor (`edge-agent supervise`) that commits a healthy trial or rolls it back; the download of an update ordered over MQTT (`ota::download`, pure) into `incoming/` |
//! | [`bundle_install`] | `edge-agent install --bundle <dir>` |
//! | [`wall_clock`] | Unix milliseconds |

pub mod agent;
pub mod atomic_writer;
pub mod backoff;
pub mod bootstrap;
pub mod bundle_install;
pub mod cli;
pub mod config;
pub mod container_labels;
pub mod container_runtime;
pub mod docker_runtime;
pub mod downlink;
pub mod effect_executor;
pub mod engine_api_get;
pub mod gpu_request;
pub mod hook_runner;
pub mod host_facts;
pub mod image_gc;
pub mod image_prepull;
pub mod image_reference;
pub mod insecure_tls;
pub mod local_store;
pub mod log_stream;
pub mod log_tail;
pub mod mqtt_session;
pub mod node_pressure;
pub mod ota;
pub mod pod_lifecycle;
pub mod pod_volumes;
pub mod pressure_monitor;
pub mod probe_worker;
pub mod publish_ledger;
pub mod pull_progress;
pub mod resource_policy;
pub mod retirement;
pub mod runtime_effects;
pub mod runtime_images;
pub mod stats_reporter;
pub mod streams;
pub mod systemd_notify;
pub mod termination_log;
pub mod unsaved_desired;
pub mod uplink_window;
pub mod usage_sample;
pub mod wall_clock;
