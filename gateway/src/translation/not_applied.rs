//! The fields of a pod's spec that a device does not apply (yet), found so that none is
//! ignored silently: each pod that sets one gets a Warning Event `FieldsNotApplied`
//! naming them (the pod still runs, as most charts set some of them, e.g. a restricted
//! `securityContext`). Fields the API server defaults (`terminationMessagePath:
//! /dev/termination-log`, `dnsPolicy: ClusterFirst`, an empty `securityContext`) count
//! only when set to something else. Scheduler-side fields (affinity, topology spread,
//! priority class) are the scheduler's and not listed.

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};

/// The resources a device applies to a container: the rest are counted by the
/// scheduler but not given to the container.
const APPLIED_RESOURCES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// The resource agents with [`edge_protocol::DeviceCapabilities::gpu_assignment`]
/// apply (a field path `...resources[nvidia.com/gpu]` of [`not_applied`]).
pub fn is_gpu_resource(field: &str) -> bool {
    field.ends_with(".resources[nvidia.com/gpu]")
}

fn container_fields(path: &str, c: &Container, out: &mut Vec<String>) {
    let mut note = |field: &str| out.push(format!("{path}.{field}"));
    if let Some(l) = &c.lifecycle {
        for (name, hook) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
            match hook {
                // the kubelet runs no tcpSocket hook: never applied
                Some(h) if h.tcp_socket.is_some() => note(&format!("lifecycle.{name}.tcpSocket")),
                Some(_) => note(&format!("lifecycle.{name}")),
                None => {}
            }
        }
        if l.stop_signal.is_some() {
            note("lifecycle.stopSignal");
        }
    }
    if c.termination_message_path
        .as_deref()
        .is_some_and(|p| p != "/dev/termination-log")
    {
        note("terminationMessagePath");
    }
    if c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError") {
        note("terminationMessagePolicy");
    }
    if let Some(s) = &c.security_context {
        security_context_fields(s, &mut note);
    }
    if let Some(r) = &c.resources {
        let names = r
            .limits
            .iter()
            .chain(r.requests.iter())
            .flat_map(|m| m.keys());
        let mut seen = Vec::new();
        for name in names {
            if !APPLIED_RESOURCES.contains(&name.as_str()) && !seen.contains(name) {
                seen.push(name.clone());
                note(&format!("resources[{name}]"));
            }
        }
        if r.claims.as_ref().is_some_and(|c| !c.is_empty()) {
            note("resources.claims");
        }
    }
    if c.volume_devices.as_ref().is_some_and(|v| !v.is_empty()) {
        note("volumeDevices");
    }
    if c.resize_policy.as_ref().is_some_and(|v| !v.is_empty()) {
        note("resizePolicy");
    }
    if c.ports
        .iter()
        .flatten()
        .any(|p| p.host_ip.as_deref().is_some_and(|ip| !ip.is_empty()))
    {
        note("ports[].hostIP");
    }
}

fn security_context_fields(s: &SecurityContext, note: &mut impl FnMut(&str)) {
    let set = [
        ("securityContext.runAsUser", s.run_as_user.is_some()),
        ("securityContext.runAsGroup", s.run_as_group.is_some()),
        (
            "securityContext.runAsNonRoot",
            s.run_as_non_root == Some(true),
        ),
        (
            "securityContext.readOnlyRootFilesystem",
            s.read_only_root_filesystem == Some(true),
        ),
        ("securityContext.capabilities", s.capabilities.is_some()),
        (
            "securityContext.allowPrivilegeEscalation",
            s.allow_privilege_escalation == Some(false),
        ),
        (
            "securityContext.seccompProfile",
            s.seccomp_profile.is_some(),
        ),
        (
            "securityContext.seLinuxOptions",
            s.se_linux_options.is_some(),
        ),
        (
            "securityContext.appArmorProfile",
            s.app_armor_profile.is_some(),
        ),
        ("securityContext.procMount", s.proc_mount.is_some()),
    ];
    for (field, present) in set {
        if present {
            note(field);
        }
    }
}

fn pod_security_context_fields(s: &PodSecurityContext, out: &mut Vec<String>) {
    let set = [
        ("runAsUser", s.run_as_user.is_some()),
        ("runAsGroup", s.run_as_group.is_some()),
        ("runAsNonRoot", s.run_as_non_root == Some(true)),
        ("fsGroup", s.fs_group.is_some()),
        (
            "supplementalGroups",
            s.supplemental_groups
                .as_ref()
                .is_some_and(|g| !g.is_empty()),
        ),
        ("sysctls", s.sysctls.as_ref().is_some_and(|g| !g.is_empty())),
        ("seccompProfile", s.seccomp_profile.is_some()),
        ("seLinuxOptions", s.se_linux_options.is_some()),
        ("appArmorProfile", s.app_armor_profile.is_some()),
    ];
    for (field, present) in set {
        if present {
            out.push(format!("spec.securityContext.{field}"));
        }
    }
}

/// Every field of `pod` a device does not apply, as `spec.…` paths (containers by name).
pub fn not_applied(pod: &Pod) -> Vec<String> {
    let mut out = Vec::new();
    let Some(spec) = &pod.spec else {
        return out;
    };
    let flags = [
        ("spec.hostPID", spec.host_pid == Some(true)),
        ("spec.hostIPC", spec.host_ipc == Some(true)),
        (
            "spec.shareProcessNamespace",
            spec.share_process_namespace == Some(true),
        ),
        ("spec.dnsConfig", spec.dns_config.is_some()),
        ("spec.dnsPolicy", spec.dns_policy.as_deref() == Some("None")),
        (
            "spec.hostAliases",
            spec.host_aliases.as_ref().is_some_and(|h| !h.is_empty()),
        ),
        ("spec.runtimeClassName", spec.runtime_class_name.is_some()),
        (
            "spec.readinessGates",
            spec.readiness_gates.as_ref().is_some_and(|g| !g.is_empty()),
        ),
        (
            "spec.resourceClaims",
            spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()),
        ),
        ("spec.hostUsers", spec.host_users == Some(false)),
        ("spec.subdomain", spec.subdomain.is_some()),
    ];
    for (field, present) in flags {
        if present {
            out.push(field.to_owned());
        }
    }
    if let Some(s) = &spec.security_context {
        pod_security_context_fields(s, &mut out);
    }
    for c in &spec.containers {
        container_fields(&format!("spec.containers[{}]", c.name), c, &mut out);
    }
    for c in spec.init_containers.iter().flatten() {
        container_fields(&format!("spec.initContainers[{}]", c.name), c, &mut out);
    }
    out
}

/// A field [`not_applied`] names that agents declaring
/// [`edge_protocol::DeviceCapabilities::lifecycle_hooks`] do apply.
pub fn applied_with_lifecycle_hooks(field: &str) -> bool {
    [
        ".lifecycle.postStart",
        ".lifecycle.preStop",
        ".terminationMessagePath",
        ".terminationMessagePolicy",
    ]
    .iter()
    .any(|suffix| field.ends_with(suffix))
}

/// The Warning Event's message for `fields`.
pub fn message(fields: &[String]) -> String {
    format!(
        "the edge device does not apply these fields of the pod spec, and runs the pod \
         without them: {} (see docs/agent.md, \"Kubernetes pod features\")",
        fields.join(", ")
    )
}

#[cfg(test)]
mod tests;
