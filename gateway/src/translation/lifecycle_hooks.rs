//! A container's `lifecycle` hooks and termination message settings → the device-facing
//! [`Lifecycle`], [`TerminationMessagePolicy`] (named ports resolved as for probes).
//! API-server defaults (`/dev/termination-log`, `File`) are left out, so specs of pods
//! without them encode, and hash on the device, as before.

use edge_protocol::{
    DEFAULT_TERMINATION_MESSAGE_PATH, Lifecycle, LifecycleHandler, TerminationMessagePolicy,
};
use k8s_openapi::api::core::v1::{Container, LifecycleHandler as KubeHandler};

use super::TranslationError;
use super::container::{http_headers, resolve_port};

/// `None` for a handler the kubelet does not run (`tcpSocket`, which the gateway names
/// in its `FieldsNotApplied` event instead).
fn handler(c: &Container, h: &KubeHandler) -> Result<Option<LifecycleHandler>, TranslationError> {
    Ok(if let Some(e) = &h.exec {
        Some(LifecycleHandler::Exec {
            command: e.command.clone().unwrap_or_default(),
        })
    } else if let Some(g) = &h.http_get {
        Some(LifecycleHandler::HttpGet {
            host: g.host.clone().filter(|h| !h.is_empty()),
            port: resolve_port(c, &g.port)?,
            path: g.path.clone().unwrap_or_else(|| "/".to_owned()),
            scheme: g.scheme.clone().unwrap_or_else(|| "HTTP".to_owned()),
            headers: http_headers(g),
        })
    } else {
        h.sleep.as_ref().map(|s| LifecycleHandler::Sleep {
            seconds: u64::try_from(s.seconds).unwrap_or(0),
        })
    })
}

/// The container's postStart / preStop hooks, `None` when it has none the device runs.
pub(super) fn lifecycle(c: &Container) -> Result<Option<Lifecycle>, TranslationError> {
    let Some(l) = &c.lifecycle else {
        return Ok(None);
    };
    let run = |h: &Option<KubeHandler>| h.as_ref().map(|h| handler(c, h)).transpose();
    let out = Lifecycle {
        post_start: run(&l.post_start)?.flatten(),
        pre_stop: run(&l.pre_stop)?.flatten(),
    };
    Ok((out != Lifecycle::default()).then_some(out))
}

/// `terminationMessagePath` when not the default.
pub(super) fn termination_message_path(c: &Container) -> Option<String> {
    c.termination_message_path
        .clone()
        .filter(|p| !p.is_empty() && p != DEFAULT_TERMINATION_MESSAGE_PATH)
}

pub(super) fn termination_message_policy(c: &Container) -> TerminationMessagePolicy {
    match c.termination_message_policy.as_deref() {
        Some("FallbackToLogsOnError") => TerminationMessagePolicy::FallbackToLogsOnError,
        _ => TerminationMessagePolicy::File,
    }
}

#[cfg(test)]
mod tests;
