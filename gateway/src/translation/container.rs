//! One Kubernetes container → device-facing [`ContainerSpec`]: env, mounts, ports,
//! probes with named ports resolved, resources, pull policy defaults.

use std::collections::BTreeMap;

use edge_protocol::{
    ContainerPort, ContainerSpec, DeviceMapping, HttpHeader, PortProtocol, Probe, ProbeHandler,
    PullPolicy, ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Pod, Probe as KubeProbe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{NodeContext, PodReferences, TranslationError, TranslationWarning, env};
use crate::quantity::Quantity;

fn port_u16(p: i32) -> Result<u16, TranslationError> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p > 0)
        .ok_or(TranslationError::BadPort(p))
}

pub(super) fn resolve_port(
    container: &Container,
    port: &IntOrString,
) -> Result<u16, TranslationError> {
    match port {
        IntOrString::Int(p) => port_u16(*p),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<i32>() {
                return port_u16(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| port_u16(p.container_port))
                .transpose()?
                .ok_or_else(|| TranslationError::UnknownProbePort {
                    container: container.name.clone(),
                    port: name.clone(),
                })
        }
    }
}

/// The headers of an `httpGet` action (probe or hook).
pub(super) fn http_headers(h: &HTTPGetAction) -> Vec<HttpHeader> {
    h.http_headers
        .iter()
        .flatten()
        .map(|h| HttpHeader {
            name: h.name.clone(),
            value: h.value.clone(),
        })
        .collect()
}

fn translate_probe(
    container: &Container,
    probe: &KubeProbe,
    node: &NodeContext,
) -> Result<Probe, TranslationError> {
    let handler = if let Some(e) = &probe.exec {
        ProbeHandler::Exec {
            command: e.command.clone().unwrap_or_default(),
        }
    } else if let Some(h) = &probe.http_get {
        ProbeHandler::HttpGet {
            host: h.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(container, &h.port)?,
            path: h.path.clone().unwrap_or_else(|| "/".to_owned()),
            scheme: h.scheme.clone().unwrap_or_else(|| "HTTP".to_owned()),
            headers: http_headers(h),
        }
    } else if let Some(t) = &probe.tcp_socket {
        ProbeHandler::TcpSocket {
            host: t.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(container, &t.port)?,
        }
    } else if let Some(g) = &probe.grpc {
        // an older agent could not decode the desired set: refused, not sent
        if !node.grpc_probes {
            return Err(TranslationError::GrpcProbe {
                container: container.name.clone(),
                agent_version: node.agent_version.clone(),
            });
        }
        ProbeHandler::Grpc {
            port: port_u16(g.port)?,
            service: g.service.clone().filter(|s| !s.is_empty()),
        }
    } else {
        return Err(TranslationError::Unsupported {
            container: container.name.clone(),
            what: "a probe without exec, httpGet, tcpSocket or grpc".to_owned(),
        });
    };
    let nonneg = |v: Option<i32>, d: u32| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(d);
    Ok(Probe {
        handler,
        initial_delay_seconds: nonneg(probe.initial_delay_seconds, 0),
        period_seconds: nonneg(probe.period_seconds, 10).max(1),
        timeout_seconds: nonneg(probe.timeout_seconds, 1).max(1),
        success_threshold: nonneg(probe.success_threshold, 1).max(1),
        failure_threshold: nonneg(probe.failure_threshold, 3).max(1),
    })
}

fn resources(container: &Container) -> Result<ResourceRequirements, TranslationError> {
    let r = container.resources.as_ref();
    let get = |limits: bool, name: &str| -> Result<Option<Quantity>, TranslationError> {
        let m = if limits {
            r.and_then(|r| r.limits.as_ref())
        } else {
            r.and_then(|r| r.requests.as_ref())
        };
        Ok(m.and_then(|m| m.get(name))
            .map(|q| Quantity::parse(&q.0))
            .transpose()?)
    };
    Ok(ResourceRequirements {
        cpu_request_millis: get(false, "cpu")?.map(Quantity::millis_u64),
        cpu_limit_millis: get(true, "cpu")?.map(Quantity::millis_u64),
        memory_request_bytes: get(false, "memory")?.map(Quantity::units_u64),
        memory_limit_bytes: get(true, "memory")?.map(Quantity::units_u64),
        extended: extended_limits(r.and_then(|r| r.limits.as_ref()))?,
    })
}

/// Extended resources (domain-qualified names such as `nvidia.com/gpu`; the API server
/// allows only whole numbers for them) of a container's limits.
fn extended_limits(
    limits: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Result<BTreeMap<String, u64>, TranslationError> {
    let mut out = BTreeMap::new();
    for (name, q) in limits.into_iter().flatten() {
        if name.contains('/') && !name.starts_with("kubernetes.io/") {
            let count = Quantity::parse(&q.0)?.units_u64();
            if count > 0 {
                out.insert(name.clone(), count);
            }
        }
    }
    Ok(out)
}

/// One container of `pod`, its env resolved and its mounts checked against the pod's
/// translated `volumes` (`device_volumes`: hostPath char/block devices by volume name,
/// passed through as devices).
pub(super) fn translate_container(
    pod: &Pod,
    c: &Container,
    refs: &PodReferences,
    node: &NodeContext,
    volumes: &[Volume],
    device_volumes: &BTreeMap<&str, &str>,
    warnings: &mut Vec<TranslationWarning>,
) -> Result<ContainerSpec, TranslationError> {
    let (env, env_warnings) = env::container_env(pod, c, refs, node)?;
    warnings.extend(
        env_warnings
            .into_iter()
            .map(|w| TranslationWarning::failed(format!("container {}: {w}", c.name))),
    );
    let lookup = |name: &str| env.iter().find(|e| e.name == name).map(|e| e.value.clone());
    let expand_all = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|s| env::expand(s, &lookup))
            .collect()
    };
    let mut mounts = Vec::new();
    let mut devices = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        if !volumes.iter().any(|v| v.name == m.name) {
            return Err(TranslationError::UnknownVolume {
                container: c.name.clone(),
                mount: m.name.clone(),
            });
        }
        if let Some(host) = device_volumes.get(m.name.as_str()) {
            devices.push(DeviceMapping {
                host_path: (*host).to_owned(),
                container_path: m.mount_path.clone(),
                permissions: if m.read_only.unwrap_or(false) {
                    "rm".to_owned()
                } else {
                    "rwm".to_owned()
                },
            });
            continue;
        }
        mounts.push(VolumeMount {
            name: m.name.clone(),
            mount_path: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
            sub_path: m.sub_path.clone().filter(|s| !s.is_empty()),
        });
    }
    let mut ports = Vec::new();
    for p in c.ports.iter().flatten() {
        ports.push(ContainerPort {
            name: p.name.clone(),
            container_port: port_u16(p.container_port)?,
            host_port: p.host_port.map(port_u16).transpose()?,
            protocol: match p.protocol.as_deref() {
                Some("UDP") => PortProtocol::Udp,
                Some("SCTP") => PortProtocol::Sctp,
                _ => PortProtocol::Tcp,
            },
        });
    }
    let probe = |p: &Option<KubeProbe>| p.as_ref().map(|p| translate_probe(c, p, node)).transpose();
    let image = c.image.clone().unwrap_or_default();
    let pull_policy = match c.image_pull_policy.as_deref() {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        // Kubernetes defaults: Always for :latest or no tag, else IfNotPresent
        _ => {
            let last = image.rsplit('/').next().unwrap_or_default();
            if image.contains('@') {
                PullPolicy::IfNotPresent
            } else if !last.contains(':') || last.ends_with(":latest") {
                PullPolicy::Always
            } else {
                PullPolicy::IfNotPresent
            }
        }
    };
    Ok(ContainerSpec {
        name: c.name.clone(),
        image,
        image_pull_policy: pull_policy,
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        env: env.clone(),
        ports,
        resources: resources(c)?,
        volume_mounts: mounts,
        devices,
        liveness_probe: probe(&c.liveness_probe)?,
        readiness_probe: probe(&c.readiness_probe)?,
        startup_probe: probe(&c.startup_probe)?,
        privileged: c
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        // Only init containers carry one (`Always`: a sidecar).
        restart_policy: match c.restart_policy.as_deref() {
            Some("Always") => Some(edge_protocol::RestartPolicy::Always),
            _ => None,
        },
        lifecycle: super::lifecycle_hooks::lifecycle(c)?,
        termination_message_path: super::lifecycle_hooks::termination_message_path(c),
        termination_message_policy: super::lifecycle_hooks::termination_message_policy(c),
    })
}
