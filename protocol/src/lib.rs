//! # edge-protocol
//!
//! The versioned MQTT contract between `edge-gateway` (cloud side) and `edge-agent`
//! (on the device). Pure data and validation: serde and nothing async, so both sides
//! (and third-party agents) can depend on it cheaply.
//!
//! # Layout
//!
//! Unit tests of a module `m` are in `m/tests.rs` (`m/` holds the module's other files
//! when it has any); tests that need processes, brokers or a cluster are under `tests/`
//! and in `hil-tests`.
//!
//! | module | what is there |
//! |---|---|
//! | [`device_id`] | [`DeviceId`]: DNS-1123 subdomain = MQTT client id = Node name = cert CN |
//! | [`request_id`] | [`RequestId`]: the id of a log request, one safe topic level |
//! | [`topic`] | [`Topic`] formatting/parsing, QoS and retain per channel, subscriptions, ACL patterns |
//! | [`version`] | [`ProtocolVersion`] carried by every envelope |
//! | [`envelope`] | [`Message`] and [`MessageKind`] (generated from one list of the kinds and their `kind` strings), [`Message::encode`], [`Message::decode_on`], size limits, errors |
//! | [`node_report`] | [`NodeReport`], [`Heartbeat`], [`DeviceState`] |
//! | [`desired_set`] | [`DesiredSet`] and the device-facing [`PodSpec`] |
//! | [`ephemeral_container`] | [`EphemeralContainerSpec`]: a container `kubectl debug` adds to a running pod |
//! | [`lifecycle_hooks`] | [`Lifecycle`] (`postStart`/`preStop` handlers) and [`TerminationMessagePolicy`] of a container |
//! | [`pod_status`] | [`PodStatusReport`], [`PodStatus`], [`ContainerStatus`] |
//! | [`pod_event`] | [`PodEventReport`] (Pulling, Started, BackOff, ...) |
//! | [`logs`] | [`LogRequest`], [`LogCancel`], [`LogChunk`]; [`LogTailReport`] for the gateway's offline log cache |
//! | [`resync`] | [`ResyncRequest`] (both directions) |
//! | [`enrollment`] | zero-touch enrollment: bootstrap topics and ACL patterns, [`enrollment::CertificateRequest`] (CSR + bootstrap token), [`enrollment::CertificateReply`] |
//! | [`retirement`] | [`RetireOrder`]: the gateway tells a retired device to wipe itself and stop |
//! | [`node_stats`] | [`NodeStats`]: CPU, memory, disk and network use of the device, its pods and containers; the agent's counters |
//! | [`stream`] | exec, attach and port-forward streams: [`StreamOpen`], [`StreamData`], credit-based flow control, [`StreamClose`] |
//! | [`agent_update`] | agent updates over the air (1.4): [`AgentUpdateOrder`], [`AgentUpdateFetch`], [`AgentUpdateChunk`], [`AgentUpdateStatus`], [`signed_manifest`] |
//! | [`image_prepull`] | image pre-pull (1.5): [`ImagePrepullSet`] (the images a device keeps), [`ImagePrepullStatus`] (its progress per image) |
//! | [`binary`] | [`Base64Bytes`] for file contents and log data |
//! | [`broker_failover`] | [`BrokerFailover`]: the next broker node to try and the jittered back-off before it; `CONNACK_TIMEOUT`, how long a connection attempt waits |
//! | `ota_signature` | (feature `ota-signature`) an agent update's signature checked one way on both sides: the fleet's ed25519 key from PEM, signature encodings, a file's SHA-256 |
//! | `broker_tls` | (feature `broker-tls`) the rustls client configuration of a broker connection, from PEM files |
//!
//! # Topics
//!
//! Everything lives under `edge/v1/{device}/`. A device writes only its own `up/#`
//! and reads only its own `down/#`; a broker ACL with these two patterns isolates
//! devices (see [`topic::device_acl_patterns`]).
//!
//! | topic | direction | QoS | retained | payload |
//! |---|---|---|---|---|
//! | `edge/v1/{device}/up/hello` | device → gateway | 1 | no | [`NodeReport`] |
//! | `edge/v1/{device}/up/heartbeat` | device → gateway | 0 | no | [`Heartbeat`] |
//! | `edge/v1/{device}/up/state` | device → gateway (last will: offline) | 1 | yes | [`DeviceState`] |
//! | `edge/v1/{device}/up/status` | device → gateway | 1 | no | [`PodStatusReport`] |
//! | `edge/v1/{device}/up/events` | device → gateway | 1 | no | [`PodEventReport`] |
//! | `edge/v1/{device}/up/resync` | device → gateway | 1 | no | [`ResyncRequest`] |
//! | `edge/v1/{device}/up/logs/{request}` | device → gateway | 0 | no | [`LogChunk`] |
//! | `edge/v1/{device}/up/stats` | device → gateway | 0 | no | [`NodeStats`] |
//! | `edge/v1/{device}/up/logtail` | device → gateway | 0 | no | [`LogTailReport`] |
//! | `edge/v1/{device}/up/stream/{stream}` | device → gateway | 1 | no | [`StreamOpened`], [`StreamData`], [`StreamCredit`], [`StreamClose`] |
//! | `edge/v1/{device}/down/desired` | gateway → device | 1 | no | [`DesiredSet`] |
//! | `edge/v1/{device}/down/resync` | gateway → device (answered with `up/hello` + a full `up/status`) | 1 | no | [`ResyncRequest`] |
//! | `edge/v1/{device}/down/logs/{request}` | gateway → device | 1 | no | [`LogRequest`], [`LogCancel`] |
//! | `edge/v1/{device}/down/stream/{stream}` | gateway → device | 1 | no | [`StreamOpen`], [`StreamData`], [`StreamCredit`], [`StreamResize`], [`StreamClose`] |
//! | `edge/v1/{device}/down/retire` | gateway → device (the device wipes itself and exits) | 1 | no | [`RetireOrder`] |
//! | `edge/v1/{device}/up/agent-update` | device → gateway | 1 | no | [`AgentUpdateFetch`], [`AgentUpdateStatus`] |
//! | `edge/v1/{device}/down/agent-update` | gateway → device | 1 | no | [`AgentUpdateOrder`], [`AgentUpdateChunk`] |
//! | `edge/v1/{device}/up/prepull` | device → gateway | 1 | no | [`ImagePrepullStatus`] |
//! | `edge/v1/{device}/down/prepull` | gateway → device | 1 | no | [`ImagePrepullSet`] |
//! | `edge/v1/{device}/up/csr` | device → gateway (certificate renewal) | 1 | no | [`enrollment::CertificateRequest`] |
//! | `edge/v1/{device}/down/certificate` | gateway → device | 1 | no | [`enrollment::CertificateReply`] |
//! | `edge/bootstrap/v1/bootstrap_{device}/request` | bootstrap client → gateway (zero-touch enrollment) | 1 | no | [`enrollment::CertificateRequest`] |
//! | `edge/bootstrap/v1/bootstrap_{device}/response` | gateway → bootstrap client | 1 | no | [`enrollment::CertificateReply`] |
//!
//! # Envelope and versions
//!
//! Every payload is `{"protocol":"1.5","kind":"<kind>","body":{...}}` in JSON. Version 1.5
//! added image pre-pull: `down/prepull` with [`ImagePrepullSet`], `up/prepull` with
//! [`ImagePrepullStatus`], the node report's `imagePrepull` and
//! `capabilities.imagePrepull`; the gateway sends sets only to agents declaring it.
//! Version 1.4
//! added agent updates over the air: `down/agent-update` and `up/agent-update` with
//! [`AgentUpdateOrder`], [`AgentUpdateFetch`], [`AgentUpdateChunk`] and
//! [`AgentUpdateStatus`], the node report's `agentUpdate` and `capabilities.agentUpdate`;
//! the gateway orders updates only from agents declaring it. Version 1.3
//! added the containers' `lifecycle` (postStart/preStop hooks), `terminationMessagePath`
//! and `terminationMessagePolicy` and `capabilities.lifecycleHooks`; older agents ignore
//! them, so the gateway names them in a `FieldsNotApplied` event for those. It also
//! added the `grpc` probe handler and `capabilities.grpcProbes`; a 1.2 agent could not
//! decode a desired set with a gRPC probe, so the gateway refuses such pods for devices
//! that do not declare it. It added a container's `resources.extended` (whole counts of
//! extended resources such as `nvidia.com/gpu`) and `capabilities.gpuAssignment`; the
//! gateway keeps warning that the resource is not applied for agents without it. And it
//! added `down/retire` with [`RetireOrder`] and `capabilities.retire` (a 1.2 agent refuses
//! the kind as unknown and keeps running; the gateway retires it anyway and its Event says
//! the device must be wiped by hand). Version 1.2
//! added the node report's pressure `conditions`, `images`, `update` and
//! `capabilities.activeDeadline` and `capabilities.initContainers`, the pod's
//! `activeDeadlineSeconds` and `initContainers` (each sent only to agents declaring it),
//! the containers' `stdin`, `stdinOnce`, `tty` and `restartPolicy`, and stream protocol 2
//! (binary data frames, [`stream::data_frame`]). Version 1.1
//! added `up/stats`, `up/logtail`, the stream channels, the pod's `logCacheOptOut` and the
//! node report's `capabilities`; a 1.0 reader
//! refuses their kinds as unknown, so the gateway sends streams only to devices whose
//! node report declares them. Version 1.2 added the pod's `initContainers` (with a
//! container's `restartPolicy` for sidecars), the status's `initContainers` and
//! `capabilities.initContainers`; a 1.1 agent would ignore init containers, so the
//! gateway refuses such pods for devices that do not declare them.
//! Readers ignore unknown fields (minor versions only add optional ones) and refuse a
//! different major version, an unknown kind, a kind that does not belong on the topic,
//! and payloads over [`MAX_MESSAGE_BYTES`] ([`MAX_DESIRED_SET_BYTES`] for desired sets),
//! each with its own [`DecodeError`]. Decoding never panics.
//!
//! ```
//! use edge_protocol::{DeviceId, Heartbeat, Message, Topic, UpChannel};
//!
//! let device = DeviceId::new("pi-01").unwrap();
//! let topic = Topic::up(&device, UpChannel::Heartbeat);
//! let payload = Message::from(Heartbeat { sequence: 1, ..Default::default() }).encode().unwrap();
//! let parsed = Topic::parse(&topic.to_string()).unwrap();
//! assert!(matches!(Message::decode_on(&parsed, &payload), Ok(Message::Heartbeat(_))));
//! ```

pub mod agent_update;
pub mod binary;
pub mod broker_failover;
#[cfg(feature = "broker-tls")]
pub mod broker_tls;
pub mod desired_set;
pub mod device_id;
pub mod enrollment;
pub mod envelope;
pub mod ephemeral_container;
pub mod image_prepull;
pub mod lifecycle_hooks;
pub mod logs;
pub mod node_report;
pub mod node_stats;
#[cfg(feature = "ota-signature")]
pub mod ota_signature;
pub mod pod_event;
pub mod pod_status;
pub mod request_id;
pub mod resync;
pub mod retirement;
pub mod stream;
pub mod topic;
pub mod version;

pub use agent_update::{
    AGENT_UPDATE_CHUNK_BYTES, AgentUpdateChunk, AgentUpdateFetch, AgentUpdateOrder,
    AgentUpdatePhase, AgentUpdateStatus, MAX_AGENT_BINARY_BYTES, signed_manifest,
};
pub use binary::Base64Bytes;
pub use broker_failover::BrokerFailover;
pub use desired_set::{
    ContainerPort, ContainerSpec, DesiredSet, DeviceMapping, EnvVar, FileItem, HttpHeader, PodSpec,
    PortProtocol, Probe, ProbeHandler, PullPolicy, RegistryCredential, ResourceRequirements,
    RestartPolicy, Volume, VolumeMount, VolumeSource,
};
pub use device_id::{DeviceId, DeviceIdError};
pub use envelope::{
    DecodeError, EncodeError, MAX_DESIRED_SET_BYTES, MAX_MESSAGE_BYTES, Message, MessageKind,
    allowed_kinds,
};
pub use ephemeral_container::EphemeralContainerSpec;
pub use image_prepull::{
    ImagePrepullSet, ImagePrepullStatus, MAX_PREPULL_IMAGES, PrepullImageStatus, PrepullPhase,
};
pub use lifecycle_hooks::{
    DEFAULT_TERMINATION_MESSAGE_PATH, Lifecycle, LifecycleHandler, TerminationMessagePolicy,
};
pub use logs::{
    ContainerLogTail, LogCancel, LogChunk, LogError, LogErrorCode, LogRequest, LogTailReport,
    MAX_LOG_CHUNK_BYTES, MAX_LOG_TAIL_BYTES, cut_to_line_start,
};
pub use node_report::{
    DeviceCapabilities, DeviceState, Heartbeat, MAX_NODE_IMAGES, NodeAddress, NodeAddressKind,
    NodeConditionKind, NodeImage, NodePressureCondition, NodeReport, NodeResources, UnixMillis,
};
pub use node_stats::{
    AgentCounters, ContainerUsage, CpuMemoryUsage, FilesystemUsage, NetworkUsage, NodeStats,
    NodeUsage, PodUsage,
};
pub use pod_event::{EventType, PodEvent, PodEventReport};
pub use pod_status::{ContainerState, ContainerStatus, PodPhase, PodStatus, PodStatusReport};
pub use request_id::{RequestId, RequestIdError};
pub use resync::ResyncRequest;
pub use retirement::RetireOrder;
pub use stream::{
    BINARY_DATA_FRAMES_SINCE, DEFAULT_STREAM_WINDOW_BYTES, MAX_STREAM_DATA_BYTES,
    MAX_STREAM_WINDOW_BYTES, MIN_STREAM_PROTOCOL_VERSION, STREAM_PROTOCOL_VERSION, StdioSelection,
    StreamChannel, StreamClose, StreamCredit, StreamData, StreamError, StreamErrorCode, StreamOpen,
    StreamOpened, StreamPod, StreamResize, StreamTarget, TerminalSize,
};
pub use topic::{DownChannel, Qos, Topic, TopicError, UpChannel};
pub use version::{PROTOCOL_VERSION, ProtocolVersion};
