//! A pod's `spec.ephemeralContainers` (added by `kubectl debug`) → device-facing
//! [`EphemeralContainerSpec`]s, translated like containers (env, mounts, pull policy).

use std::collections::BTreeMap;

use edge_protocol::{EphemeralContainerSpec, Volume};
use k8s_openapi::api::core::v1::{Container, EphemeralContainer, Pod};

use super::container::translate_container;
use super::{NodeContext, PodReferences, TranslationWarning};

/// Every ephemeral container of `pod`, in order. The API server forbids ports, probes
/// and resources on them, so only what a debugging container uses is carried over. One
/// that cannot be translated (a missing ConfigMap) is left out with a warning: the pod
/// it was added to keeps running.
pub(super) fn translate_ephemeral_containers(
    pod: &Pod,
    refs: &PodReferences,
    node: &NodeContext,
    volumes: &[Volume],
    device_volumes: &BTreeMap<&str, &str>,
    warnings: &mut Vec<TranslationWarning>,
) -> Vec<EphemeralContainerSpec> {
    let mut out = Vec::new();
    for e in pod
        .spec
        .iter()
        .flat_map(|s| s.ephemeral_containers.iter().flatten())
    {
        let translated = translate_container(
            pod,
            &as_container(e),
            refs,
            node,
            volumes,
            device_volumes,
            warnings,
        );
        let c = match translated {
            Ok(c) => c,
            Err(why) => {
                // The pod runs on; only this debugging container cannot be started.
                warnings.push(TranslationWarning::failed(format!(
                    "ephemeral container {}: {why}",
                    e.name
                )));
                continue;
            }
        };
        out.push(EphemeralContainerSpec {
            name: c.name,
            image: c.image,
            image_pull_policy: c.image_pull_policy,
            command: c.command,
            args: c.args,
            working_dir: c.working_dir,
            env: c.env,
            volume_mounts: c.volume_mounts,
            stdin: e.stdin.unwrap_or(false),
            stdin_once: e.stdin_once.unwrap_or(false),
            tty: e.tty.unwrap_or(false),
            target_container_name: e.target_container_name.clone().filter(|t| !t.is_empty()),
            privileged: c.privileged,
        });
    }
    out
}

/// The fields of an ephemeral container that a container translates from.
pub(super) fn as_container(e: &EphemeralContainer) -> Container {
    Container {
        name: e.name.clone(),
        image: e.image.clone(),
        image_pull_policy: e.image_pull_policy.clone(),
        command: e.command.clone(),
        args: e.args.clone(),
        working_dir: e.working_dir.clone(),
        env: e.env.clone(),
        env_from: e.env_from.clone(),
        volume_mounts: e.volume_mounts.clone(),
        security_context: e.security_context.clone(),
        stdin: e.stdin,
        stdin_once: e.stdin_once,
        tty: e.tty,
        ..Container::default()
    }
}

#[cfg(test)]
mod tests;
