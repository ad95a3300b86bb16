//! [`ContainerRuntime`] over the Docker Engine API (bollard): Docker, and Podman's
//! Docker-compatible socket.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use edge_protocol::{RegistryCredential, UnixMillis};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};

use crate::container_labels::{self, ContainerIdentity};
use crate::container_runtime::{
    ContainerRuntime, ContainerSnapshot, CreateContainer, LogReadOptions, ProgressSink, Result,
    RunState, RuntimeError,
};
use crate::engine_api_get::{Endpoint, get_json};
use crate::gpu_request::{self, GpuCreateParts, GpuRequestMode};
pub use crate::image_reference::{credential_matches, normalize_image};
use crate::pull_progress::PullTally;
use crate::resource_policy::LogRotation;

/// Docker Engine API client. Inspect results are cached per (container, state) so a
/// steady device costs one list call per sync.
#[derive(Debug)]
pub struct DockerRuntime {
    docker: Docker,
    socket: String,
    /// Only containers labelled with this device id are ours.
    device: String,
    endpoint: Endpoint,
    inspected: Mutex<HashMap<String, (String, ContainerSnapshot)>>,
    /// Log rotation set on every container created (`None`: the runtime's default).
    log_rotation: Option<LogRotation>,
    /// Whether the engine is Podman (asked once).
    podman: tokio::sync::OnceCell<bool>,
    /// How assigned GPUs are passed (`Auto`: by runtime).
    gpu_request: GpuRequestMode,
}

const API_TIMEOUT_SECS: u64 = 120;

impl DockerRuntime {
    /// Connects (lazily) to `unix:///path`, `/path`, `tcp://host:port` or `http://host:port`.
    pub fn connect(socket: &str, device: &str) -> Result<Self> {
        let unreachable = |e: bollard::errors::Error| RuntimeError::Unreachable {
            socket: socket.to_owned(),
            message: e.to_string(),
        };
        let docker = if let Some(rest) = socket
            .strip_prefix("tcp://")
            .or_else(|| socket.strip_prefix("http://"))
        {
            Docker::connect_with_http(
                &format!("http://{rest}"),
                API_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
            .map_err(unreachable)?
        } else {
            let path = socket.strip_prefix("unix://").unwrap_or(socket);
            Docker::connect_with_unix(path, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(unreachable)?
        };
        Ok(Self {
            docker,
            socket: socket.to_owned(),
            device: device.to_owned(),
            endpoint: Endpoint::parse(socket),
            inspected: Mutex::new(HashMap::new()),
            log_rotation: None,
            podman: tokio::sync::OnceCell::new(),
            gpu_request: GpuRequestMode::Auto,
        })
    }

    /// Containers created from now on rotate their logs so.
    pub fn with_log_rotation(mut self, rotation: Option<LogRotation>) -> Self {
        self.log_rotation = rotation;
        self
    }

    /// Assigned GPUs are passed so from now on.
    pub fn with_gpu_request(mut self, mode: GpuRequestMode) -> Self {
        self.gpu_request = mode;
        self
    }

    async fn is_podman(&self) -> bool {
        if let Some(p) = self.podman.get() {
            return *p;
        }
        let _ = self.version().await;
        self.podman.get().copied().unwrap_or(false)
    }

    /// The Engine API client, for exec and attach streams (hijacked connections).
    pub fn client(&self) -> Docker {
        self.docker.clone()
    }

    /// Agrees with the engine on the API version (an older Docker refuses requests newer
    /// than it knows); keeps the default when the engine does not say.
    pub async fn negotiate(mut self) -> Self {
        match self.docker.clone().negotiate_version().await {
            Ok(docker) => self.docker = docker,
            Err(e) => tracing::warn!(error = %e, "API version negotiation failed"),
        }
        self
    }

    /// Checks that the API answers.
    pub async fn ping(&self) -> Result<()> {
        self.docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| RuntimeError::Unreachable {
                socket: self.socket.clone(),
                message: e.to_string(),
            })
    }

    async fn inspect_snapshot(
        &self,
        id: &str,
        identity: ContainerIdentity,
    ) -> Result<ContainerSnapshot> {
        let (status, info) =
            get_json(&self.endpoint, &format!("{API}/containers/{id}/json")).await?;
        match status {
            200 => {}
            404 => return Err(RuntimeError::NotFound(id.to_owned())),
            _ => return Err(RuntimeError::Api(format!("inspect {id}: HTTP {status}"))),
        }
        let state = &info["State"];
        let started_at = state["StartedAt"].as_str().and_then(parse_time);
        let finished_at = state["FinishedAt"].as_str().and_then(parse_time);
        let status = state["Status"].as_str().unwrap_or("").to_lowercase();
        let run_state = if state["Running"].as_bool().unwrap_or(false) {
            RunState::Running {
                started_at: started_at.unwrap_or_default(),
            }
        } else if matches!(
            status.as_str(),
            "created" | "configured" | "initialized" | ""
        ) {
            RunState::Created
        } else {
            RunState::Exited {
                exit_code: state["ExitCode"]
                    .as_i64()
                    .and_then(|c| i32::try_from(c).ok())
                    .unwrap_or(-1),
                started_at,
                finished_at,
                oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
                error: state["Error"]
                    .as_str()
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned),
            }
        };
        let mut ip_address = info["NetworkSettings"]["IPAddress"]
            .as_str()
            .filter(|ip| !ip.is_empty())
            .map(str::to_owned);
        if ip_address.is_none()
            && let Some(nets) = info["NetworkSettings"]["Networks"].as_object()
        {
            ip_address = nets
                .values()
                .filter_map(|n| n["IPAddress"].as_str())
                .find(|ip| !ip.is_empty())
                .map(str::to_owned);
        }
        Ok(ContainerSnapshot {
            id: id.to_owned(),
            identity,
            state: run_state,
            image_id: info["Image"].as_str().unwrap_or("").to_owned(),
            ip_address,
        })
    }
}

/// The raw calls use unversioned paths: the engine answers in its own current version,
/// whatever its age (Docker 18.09 on an old Pi, Podman 4).
const API: &str = "";

fn api(e: bollard::errors::Error) -> RuntimeError {
    match &e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NotFound(message.clone()),
        _ => RuntimeError::Api(e.to_string()),
    }
}

/// RFC 3339 as the Engine API writes it; `0001-01-01T00:00:00Z` (never) is `None`.
pub fn parse_time(raw: &str) -> Option<UnixMillis> {
    if raw.starts_with("0001-") || raw.is_empty() {
        return None;
    }
    let t = humantime::parse_rfc3339_weak(raw).ok()?;
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
    u64::try_from(ms).ok()
}

impl ContainerRuntime for DockerRuntime {
    fn version(&self) -> BoxFuture<'_, Result<String>> {
        async move {
            let v = self.docker.version().await.map_err(api)?;
            let podman = v
                .components
                .unwrap_or_default()
                .iter()
                .any(|c| c.name.to_lowercase().contains("podman"));
            let _ = self.podman.set(podman);
            let scheme = if podman { "podman" } else { "docker" };
            Ok(format!("{scheme}://{}", v.version.unwrap_or_default()))
        }
        .boxed()
    }

    fn data_root(&self) -> BoxFuture<'_, Result<Option<String>>> {
        async move {
            let info = self.docker.info().await.map_err(api)?;
            Ok(info.docker_root_dir)
        }
        .boxed()
    }

    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ContainerSnapshot>>> {
        async move {
            // filters={"label":["io.edge-kube.managed=true","io.edge-kube.device=<id>"]}
            // (a device id is a DNS-1123 subdomain: nothing to escape)
            let path = format!(
                "{API}/containers/json?all=1&filters=%7B%22label%22%3A%5B%22{}%3Dtrue%22%2C%22{}%3D{}%22%5D%7D",
                container_labels::MANAGED,
                container_labels::DEVICE,
                self.device
            );
            let (status, list) =
                get_json(&self.endpoint, &path)
                    .await
                    .map_err(|e| RuntimeError::Unreachable {
                        socket: self.socket.clone(),
                        message: e.to_string(),
                    })?;
            if status != 200 {
                return Err(RuntimeError::Api(format!(
                    "listing containers: HTTP {status}"
                )));
            }
            let list = list.as_array().cloned().unwrap_or_default();
            let mut out = Vec::with_capacity(list.len());
            let mut seen = Vec::with_capacity(list.len());
            for summary in list {
                let Some(id) = summary["Id"].as_str().map(str::to_owned) else {
                    continue;
                };
                let labels: HashMap<String, String> = summary["Labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
                let Some(identity) = ContainerIdentity::from_labels(&labels) else {
                    continue;
                };
                if identity.device != self.device {
                    continue;
                }
                let state = summary["State"].as_str().unwrap_or("").to_owned();
                seen.push(id.clone());
                let cached = self.inspected.lock().ok().and_then(|c| {
                    c.get(&id)
                        .filter(|(s, _)| *s == state)
                        .map(|(_, v)| v.clone())
                });
                if let Some(snapshot) = cached {
                    out.push(snapshot);
                    continue;
                }
                match self.inspect_snapshot(&id, identity).await {
                    Ok(snapshot) => {
                        if let Ok(mut c) = self.inspected.lock() {
                            c.insert(id, (state, snapshot.clone()));
                        }
                        out.push(snapshot);
                    }
                    // Removed between list and inspect.
                    Err(RuntimeError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if let Ok(mut c) = self.inspected.lock() {
                c.retain(|id, _| seen.contains(id));
            }
            Ok(out)
        }
        .boxed()
    }

    fn image_present<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool>> {
        async move {
            match self.docker.inspect_image(image).await {
                Ok(_) => Ok(true),
                Err(e) => match api(e) {
                    RuntimeError::NotFound(_) => Ok(false),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn image_id<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        async move {
            match self.docker.inspect_image(image).await {
                Ok(i) => Ok(i.id.map(|id| crate::runtime_images::image_key(&id))),
                Err(e) => match api(e) {
                    RuntimeError::NotFound(_) => Ok(None),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn pull<'a>(
        &'a self,
        image: &'a str,
        credential: Option<&'a RegistryCredential>,
    ) -> BoxFuture<'a, Result<()>> {
        self.pull_with_progress(image, credential, &|_| {})
    }

    fn pull_with_progress<'a>(
        &'a self,
        image: &'a str,
        credential: Option<&'a RegistryCredential>,
        progress: ProgressSink<'a>,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let reference = normalize_image(image);
            let creds = credential.map(|c| DockerCredentials {
                username: Some(c.username.clone()),
                password: Some(c.password.clone()),
                serveraddress: Some(c.registry.clone()),
                ..Default::default()
            });
            let options = CreateImageOptionsBuilder::default()
                .from_image(&reference)
                .build();
            let mut stream = self.docker.create_image(Some(options), None, creds);
            let mut tally = PullTally::default();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| RuntimeError::Pull {
                    image: image.to_owned(),
                    message: e.to_string(),
                })?;
                let detail = info.progress_detail.unwrap_or_default();
                if let Some(p) = tally.observe(
                    info.id.as_deref(),
                    info.status.as_deref(),
                    detail.current,
                    detail.total,
                ) {
                    progress(p);
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn create<'a>(&'a self, spec: &'a CreateContainer) -> BoxFuture<'a, Result<String>> {
        async move {
            let name = spec
                .identity
                .as_ref()
                .map(ContainerIdentity::container_name);
            let mut port_bindings = HashMap::new();
            let mut exposed = Vec::new();
            for p in &spec.ports {
                let key = format!("{}/{}", p.container_port, p.protocol);
                exposed.push(key.clone());
                if let Some(hp) = p.host_port {
                    port_bindings.insert(
                        key,
                        Some(vec![PortBinding {
                            host_ip: None,
                            host_port: Some(hp.to_string()),
                        }]),
                    );
                }
            }
            // Docker gives a container in another's network that one's hostname; Podman
            // needs the UTS namespace joined explicitly (Docker refuses `container:`).
            let joined = spec
                .ipc_mode
                .as_ref()
                .filter(|m| m.starts_with("container:"));
            let uts_mode = match joined {
                Some(m) if self.is_podman().await => Some(m.clone()),
                _ => None,
            };
            // On the host's or another container's network: no ports or hostname of its own.
            let shared_network = spec.host_network || spec.network_mode.is_some();
            let gpus = if spec.gpus.is_empty() {
                GpuCreateParts::default()
            } else {
                let mode = self.gpu_request.resolve(self.is_podman().await);
                gpu_request::create_parts(mode, &spec.gpus)
            };
            let host_config = HostConfig {
                binds: Some(
                    spec.binds
                        .iter()
                        .map(|b| {
                            let mode = if b.read_only { "ro" } else { "rw" };
                            format!("{}:{}:{mode}", b.host_path, b.container_path)
                        })
                        .collect(),
                ),
                tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.iter().cloned().collect()),
                devices: Some(
                    spec.devices
                        .iter()
                        .map(|d| bollard::models::DeviceMapping {
                            path_on_host: Some(d.host_path.clone()),
                            path_in_container: Some(if d.container_path.is_empty() {
                                d.host_path.clone()
                            } else {
                                d.container_path.clone()
                            }),
                            cgroup_permissions: Some(if d.permissions.is_empty() {
                                "rwm".to_owned()
                            } else {
                                d.permissions.clone()
                            }),
                        })
                        .collect(),
                ),
                network_mode: spec
                    .network_mode
                    .clone()
                    .or_else(|| spec.host_network.then(|| "host".to_owned())),
                pid_mode: spec.pid_mode.clone(),
                ipc_mode: spec.ipc_mode.clone(),
                uts_mode,
                port_bindings: (!port_bindings.is_empty() && !shared_network)
                    .then_some(port_bindings),
                nano_cpus: spec
                    .cpu_limit_millis
                    .and_then(|m| i64::try_from(m.saturating_mul(1_000_000)).ok()),
                cpu_shares: spec.cpu_shares.and_then(|s| i64::try_from(s).ok()),
                memory: spec.memory_limit_bytes.and_then(|m| i64::try_from(m).ok()),
                privileged: Some(spec.privileged),
                log_config: self.log_rotation.map(|r| r.engine_log_config()),
                device_requests: (!gpus.device_requests.is_empty())
                    .then(|| gpus.device_requests.clone()),
                ..Default::default()
            };
            let body = ContainerCreateBody {
                image: Some(spec.image.clone()),
                entrypoint: (!spec.command.is_empty()).then(|| spec.command.clone()),
                cmd: if !spec.args.is_empty() {
                    Some(spec.args.clone())
                } else if !spec.command.is_empty() {
                    // Kubernetes: a command without args does not run the image's CMD.
                    Some(Vec::new())
                } else {
                    None
                },
                working_dir: spec.working_dir.clone(),
                env: Some(spec.env.iter().chain(&gpus.env).cloned().collect()),
                labels: spec.identity.as_ref().map(ContainerIdentity::to_labels),
                // A container in another's network namespace has that one's hostname.
                hostname: if shared_network {
                    None
                } else {
                    spec.hostname.clone()
                },
                open_stdin: Some(spec.stdin),
                attach_stdin: Some(spec.stdin),
                stdin_once: Some(spec.stdin_once),
                tty: Some(spec.tty),
                // The Engine refuses exposed ports in another container's network.
                exposed_ports: (!exposed.is_empty() && spec.network_mode.is_none())
                    .then_some(exposed),
                host_config: Some(host_config),
                ..Default::default()
            };
            let mut options = CreateContainerOptionsBuilder::default();
            if let Some(name) = &name {
                options = options.name(name);
            }
            let created = self
                .docker
                .create_container(Some(options.build()), body)
                .await
                .map_err(api)?;
            Ok(created.id)
        }
        .boxed()
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            self.docker
                .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
                .await
                .map_err(api)
        }
        .boxed()
    }

    fn stop<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
            let options = StopContainerOptionsBuilder::default().t(t).build();
            match self.docker.stop_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                // 304: already stopped.
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                Err(e) => Err(api(e)),
            }
        }
        .boxed()
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            let options = RemoveContainerOptionsBuilder::default()
                .force(true)
                .v(true)
                .build();
            match self.docker.remove_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) => match api(e) {
                    RuntimeError::NotFound(_) => Ok(()),
                    other => Err(other),
                },
            }
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        command: &'a [String],
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(i64, String)>> {
        async move {
            let run = async {
                let exec = self
                    .docker
                    .create_exec(
                        id,
                        CreateExecOptions {
                            cmd: Some(command.to_vec()),
                            attach_stdout: Some(true),
                            attach_stderr: Some(true),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(api)?;
                let mut output = String::new();
                if let StartExecResults::Attached {
                    output: mut out, ..
                } = self
                    .docker
                    .start_exec(&exec.id, Some(StartExecOptions::default()))
                    .await
                    .map_err(api)?
                {
                    while let Some(chunk) = out.next().await {
                        let chunk = chunk.map_err(api)?;
                        if output.len() < 4096 {
                            output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
                        }
                    }
                }
                let inspect = self.docker.inspect_exec(&exec.id).await.map_err(api)?;
                Ok((inspect.exit_code.unwrap_or(-1), output))
            };
            tokio::time::timeout(timeout, run)
                .await
                .map_err(|_| RuntimeError::Timeout(timeout))?
        }
        .boxed()
    }

    fn logs(&self, id: &str, options: LogReadOptions) -> BoxStream<'static, Result<Vec<u8>>> {
        let tail = options
            .tail_lines
            .map(|t| t.to_string())
            .unwrap_or_else(|| "all".to_owned());
        let mut builder = LogsOptionsBuilder::default()
            .follow(options.follow)
            .stdout(true)
            .stderr(true)
            .timestamps(options.timestamps)
            .tail(&tail);
        if let Some(since) = options.since {
            builder = builder.since(i32::try_from(since).unwrap_or(i32::MAX));
        }
        self.docker
            .logs(id, Some(builder.build()))
            .map_ok(|out: LogOutput| out.into_bytes().to_vec())
            .map_err(api)
            .boxed()
    }
}

#[cfg(test)]
mod tests;
