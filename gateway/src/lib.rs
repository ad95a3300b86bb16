//! # edge-gateway
//!
//! The virtual kubelet for a whole fleet in one process: every device that says hello
//! over MQTT becomes a Kubernetes Node, every pod bound to such a node is translated and
//! delivered to its device, and device reports become pod status, events and logs.
//!
//! # Layout
//!
//! | module | what is there |
//! |---|---|
//! | [`quantity`] | Kubernetes quantities (`250m`, `512Mi`) as exact numbers |
//! | [`node_object`] | Node labels, taint, capacity, nodeInfo, addresses from a device's hello (pure) |
//! | [`translation`] | Kubernetes pod → device [`edge_protocol::PodSpec`]: env, volumes, pull secrets, probes (pure) |
//! | [`status_mapping`] | device pod status → Kubernetes `PodStatus`: phase, conditions, containers (pure) |
//! | [`device_sync`] | [`device_sync::DeviceSync`]: per-device desired set / generation state machine (pure) |
//! | [`enrollment`] | fleet CA, device certificates, revocation, broker configuration |

pub mod device_sync;
pub mod enrollment;
pub mod node_object;
pub mod quantity;
pub mod status_mapping;
pub mod translation;
