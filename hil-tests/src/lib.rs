//! # edge-hil-tests
//!
//! The test bed: a Kubernetes API server emulator, a protocol-level fake device,
//! end-to-end scenarios and benchmarks.
//!
//! # Layout
//!
//! | module | what is there |
//! |---|---|
//! | [`apiserver`] | the Kubernetes API server emulator (with scheduler and node lifecycle) |
//! | [`controlplane`] | the real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler built from upstream Go modules) as processes, like envtest |
//! | [`crash_cycles`] | crash cycles: SIGKILL of agents and gateway during pod changes, then checks that nothing was lost or runs twice |
//! | [`differential`] | the differential check: kubectl outputs of the emulator and the real kube-apiserver normalized and compared, and the known differences |
//! | [`fault_proxy`] | an MQTT-aware TCP proxy that cuts, drops, delays and stalls, for fault injection |
//! | [`fake_device`] | a device that speaks the MQTT protocol with an instant fake runtime |
//! | [`fleet_bench`] | the fleet benchmark: the real gateway against N simulated devices |
//! | [`mqtt_cli`] | `mosquitto_sub`/`mosquitto_pub` with TLS client certificates, for broker isolation checks |
//! | [`ota_signing`] | the fleet's agent-update signing key made and used with OpenSSL as docs/deploy.md shows |
//! | [`prometheus_text`] | samples of the Prometheus text format (`/metrics`, `/metrics/resource`) parsed |
//! | [`qemu_vm`] | a whole arm64 machine under qemu-system-aarch64 booting the cached VM image of `scripts/build-vm-image.sh`, serial console logged, killed on drop |
//! | [`reference_kubelet`] | the streams benchmark's reference kubelet (port-forward straight to the container, no MQTT) as a process, and its Node and Pod |
//! | [`scenario`] | what end-to-end scenarios share: pod manifests, waiting for pods and nodes, a pod's containers in the runtime |
//! | [`status_sequence`] | an agent's status report sequence numbers as the gateway logged them: none lost, in order |
//! | [`test_registry`] | a real image registry (Debian's docker-registry, TLS, htpasswd) holding the test image, for pull tests |
//! | [`stack`] | the full stack as real processes for end-to-end scenarios (emulator or real cluster, broker, gateway, agents) |

pub mod apiserver;
pub mod controlplane;
pub mod crash_cycles;
pub mod differential;
pub mod fake_device;
pub mod fault_proxy;
pub mod fleet_bench;
pub mod mqtt_cli;
pub mod ota_signing;
pub mod prometheus_text;
pub mod qemu_vm;
pub mod reference_kubelet;
pub mod scenario;
pub mod stack;
pub mod status_sequence;
pub mod test_registry;
