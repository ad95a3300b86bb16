//! # edge-gateway
//!
//! The virtual kubelet for a whole fleet in one process: every device that says hello
//! over MQTT becomes a Kubernetes Node, every pod bound to such a node is translated and
//! delivered to its device, and device reports become pod status, events and logs.
//!
//! # Layout
//!
//! Unit tests of a module `m` are in `m/tests.rs` (`m/` holds the module's other files
//! when it has any); tests that need processes, brokers or a cluster are under `tests/`
//! and in `hil-tests`.
//!
//! | module | what is there |
//! |---|---|
//! | [`agent_rollout`] | agent rollouts: the ConfigMap `edge-agent-rollout` (version, nodeSelector, maxUnavailable, maxFailures), the pure wave planner, signed releases under the store served in chunks over MQTT, per-Node progress (annotation, Events) and the rollout's status; `edge-gateway agent-release` |
//! | [`autonomy`] | offline autonomy budgets and the mutating admission webhook that turns them into device pods' not-ready/unreachable tolerations |
//! | [`config`] | `edge-gateway run` flags and the validated [`config::GatewayConfig`] |
//! | [`gateway`] | wiring: [`gateway::start`] / [`gateway::run`], ready file, shutdown |
//! | [`fleet`] | [`fleet::FleetState`]: the pure state machine (inputs → effects) of device registry, liveness, Leases, Node claims, desired sets, pod status, revocation and retirement (Node, Lease and pods deleted, the device told to wipe itself), with one controller per file; [`fleet::FleetRunner`]: the one task that owns it and executes its effects; [`fleet::Fleet`]: the handle other tasks queue inputs and ask questions through |
//! | [`device_sync`] | per-device desired set / generation state machine (pure), with the set's size kept under one MQTT message |
//! | [`translation`] | Kubernetes pod → device [`edge_protocol::PodSpec`]: env, volumes, pull secrets, probes, one container at a time (`translation/container.rs`), its lifecycle hooks and termination message settings (`translation/lifecycle_hooks.rs`), ephemeral containers of `kubectl debug` (`translation/ephemeral.rs`) (pure); ConfigMap/Secret lookups in one place ([`translation::PodReferences::object`]); non-fatal problems as [`translation::TranslationWarning`]s with their Event reason |
//! | [`status_mapping`] | device pod status → Kubernetes `PodStatus`: phase, conditions, containers (pure); what a new status keeps of the pod's current one, in one place |
//! | [`node_object`] | what a device's hello says about its Node (pure): labels (the device's, filtered, and ours), board family, the device's own address; the gateway-wide [`node_object::NodeSettings`] |
//! | [`node_ownership`] | which Nodes the gateway may touch: only those it created (managed-by label) |
//! | [`node_resources`] | validation of a device's capacity and extended resources |
//! | [`quantity`] | Kubernetes quantities (`250m`, `512Mi`) as exact numbers |
//! | [`pod_watch`] | the one pod watch for all nodes; fetches referenced ConfigMaps/Secrets and requests service account tokens; translates pods again when those change (`pod_watch/object_watches.rs`: one watch per referenced object) or a token is due |
//! | [`reference_index`] | which device pods use which ConfigMaps/Secrets: the per-object watches to start and stop, the pods to translate again on a change, immutable objects left unwatched (pure) |
//! | [`token_schedule`] | the service account tokens held per pod and when each is due (80 % of its lifetime or 24 h, as the kubelet) (pure) |
//! | [`kube_writer`] | one owner per Kubernetes kind: `node.rs` (the Node object with its taint; create, claim, labels; only ours), `node_status.rs` (capacity, conditions, nodeInfo, addresses), `lease.rs`, `pod.rs` (status, deletion), `events.rs` (typed reasons in `event_reason.rs`, repeats folded by `event_correlator.rs`); sharded workers behind latest-wins queues (`write_queue.rs`) |
//! | [`mqtt_link`] | the gateway's MQTT client: reconnect across a cluster's nodes with jittered back-off, subscribe, decode each frame into a typed [`mqtt_link::DeviceFrame`] or a rejection (`device_frame.rs`), dispatch, outbox (flush, then publish) |
//! | [`embedded_broker`] | rumqttd in-process, the zero-setup default broker; `capacity.rs`: the warning past its measured device limit |
//! | [`store`] | sled store: desired sets, acknowledged generations, last hellos; the `--store-dir` flag every command shares ([`store::StoreDirArg`]) |
//! | [`stream_protocols`] | exec/attach/port-forward wire protocols: SPDY/3.1 frames, header compression, session; remote-command, port-forward and WebSocket channel sub-protocols (pure) |
//! | [`log_cache`] | the offline log cache: each container's last output reported on `up/logtail`, kept in the store, served as `kubectl logs` while its device is offline |
//! | [`device_nodes`] | what agent rollouts and image pre-pull share about device Nodes: their watch and snapshots, label selectors (pure) |
//! | [`image_prepull`] | image pre-pull: ConfigMaps labelled `edge-kube.io/image-prepull` (images, nodeSelector, imagePullSecrets), each device's image set sent over MQTT, per-Node progress (annotation, Events) and each pre-pull's status |
//! | [`side_inbox`] | the bounded queue from the fleet's handle to the controllers beside it |
//! | [`usage_stats`] | the devices' latest resource usage samples (`up/stats`), kept beside the fleet; the kubelet's Summary API and resource metrics rendered from them (pure) |
//! | [`device_streams`] | exec/attach/port-forward streams to devices: the registry routing each device's `up/stream/{id}` to its kubelet API connection, target checks, per-stream flow control (pure) |
//! | [`log_streams`] | routes log chunks to the kubelet API request that asked for them |
//! | [`kubelet_api`] | HTTPS `/healthz`, `/pods`, `/metrics`, `/containerLogs/...`, `/exec/...`, `/attach/...`, `/portForward/...` (SPDY or WebSocket upgrades relayed to devices); authn + SubjectAccessReview per request |
//! | [`local_endpoints`] | plain-HTTP `/metrics` and `/readyz` on loopback; `edge-gateway check-ready` |
//! | [`metrics`] | Prometheus metrics (prometheus-client) |
//! | [`https_server`] | the accept loop of the HTTPS endpoints (kubelet API, admission webhook): TLS with a handshake deadline, TCP_NODELAY, HTTP/1.1 with upgrades and HTTP/2 |
//! | [`health`] | readiness (`/readyz`): store writes and flushes, MQTT connection |
//! | [`hostile_input`] | why a message is dropped ([`hostile_input::RejectReason`]), counting and rate-limited logging of dropped messages |
//! | [`sharding`] | several gateway replicas sharing the fleet: replica Leases, rendezvous assignment of devices, fencing of writes ([`sharding::ShardGate`]), hand-overs (pure parts and the renew loop) |
//! | [`rbac`] | [`rbac::API_PERMISSIONS`]: every Kubernetes API call the gateway makes |
//! | [`retire_trigger`] | a device Node deleted with `edge-kube.io/retire=true` (label or annotation) puts its device on the revocation list, which retires it |
//! | [`device_enrollment`] | zero-touch enrollment: bootstrap tokens (Secrets), device CSRs as Kubernetes CertificateSigningRequests (signer `edge-kube.io/device-client`), auto-approval rules, signing with the fleet CA |
//! | [`enrollment`] | fleet CA, device certificates, revocation, broker configuration (Mosquitto, a NATS cluster); the `enroll`, `revoke` and `broker-config` commands ([`enrollment::CliError`]) |

pub mod agent_rollout;
pub mod autonomy;
pub mod config;
pub mod device_enrollment;
pub mod device_nodes;
pub mod device_streams;
pub mod device_sync;
pub mod embedded_broker;
pub mod enrollment;
pub mod fleet;
pub mod gateway;
pub mod health;
pub mod hostile_input;
pub mod https_server;
pub mod image_prepull;
pub mod kube_writer;
pub mod kubelet_api;
pub mod local_endpoints;
pub mod log_cache;
pub mod log_streams;
pub mod metrics;
pub mod mqtt_link;
pub mod node_object;
pub mod node_ownership;
pub mod node_resources;
pub mod pod_watch;
pub mod quantity;
pub mod rbac;
pub mod reference_index;
pub mod retire_trigger;
pub mod sharding;
pub mod side_inbox;
pub mod status_mapping;
pub mod store;
pub mod stream_protocols;
pub mod token_schedule;
pub mod translation;
pub mod usage_stats;
