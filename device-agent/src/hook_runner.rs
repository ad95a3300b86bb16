//! Runs one container lifecycle hook ([`Effect::RunHook`](crate::pod_lifecycle::Effect)):
//! `exec` through the runtime's exec (as exec probes), `httpGet` with the probes' HTTP
//! client (any answer is success, as the kubelet's hooks), `sleep`.

use std::time::{Duration, Instant};

use edge_protocol::LifecycleHandler;

use crate::container_runtime::ContainerRuntime;
use crate::pod_lifecycle::HookError;
use crate::probe_worker::http_get;

/// How long a hook without a timeout (postStart) may run at most.
pub const UNBOUNDED_HOOK_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Runs `handler` in container `container_id`; `target_ip` is the host of an httpGet
/// without one. Returns how long it ran and its result.
pub async fn run_hook(
    runtime: &dyn ContainerRuntime,
    container_id: &str,
    handler: &LifecycleHandler,
    target_ip: &str,
    timeout: Option<Duration>,
) -> (Duration, Result<(), HookError>) {
    let started = Instant::now();
    let limit = timeout.unwrap_or(UNBOUNDED_HOOK_LIMIT);
    let result =
        match tokio::time::timeout(limit, run(runtime, container_id, handler, target_ip, limit))
            .await
        {
            Ok(result) => result,
            Err(_) => Err(HookError::TimedOut(limit)),
        };
    (started.elapsed(), result)
}

async fn run(
    runtime: &dyn ContainerRuntime,
    container_id: &str,
    handler: &LifecycleHandler,
    target_ip: &str,
    limit: Duration,
) -> Result<(), HookError> {
    match handler {
        LifecycleHandler::Exec { command } => {
            match runtime.exec(container_id, command, limit).await {
                Ok((0, _)) => Ok(()),
                Ok((code, output)) => Err(HookError::ExitCode {
                    command: command.join(" "),
                    code,
                    output: output.trim().to_owned(),
                }),
                Err(e) => Err(HookError::Exec(e.to_string())),
            }
        }
        LifecycleHandler::HttpGet {
            host,
            port,
            path,
            scheme,
            headers,
        } => {
            let host = host.as_deref().unwrap_or(target_ip);
            let tls = scheme.eq_ignore_ascii_case("https");
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            http_get(host, *port, tls, path, &headers)
                .await
                .map(|_status| ())
                .map_err(|e| {
                    let scheme = if tls { "https" } else { "http" };
                    HookError::Http(format!("Get \"{scheme}://{host}:{port}{path}\": {e}"))
                })
        }
        LifecycleHandler::Sleep { seconds } => {
            tokio::time::sleep(Duration::from_secs(*seconds)).await;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
