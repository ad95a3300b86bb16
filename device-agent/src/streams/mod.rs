//! `kubectl exec`, `attach` and `port-forward` on the device: the streams the gateway
//! opens on `down/stream/{id}` (protocol: [`edge_protocol::stream`]). [`StreamManager`]
//! checks each open (only containers of pods this agent runs, found by its labels; the
//! limit on concurrent streams), starts one task per stream ([`runner`]) and routes the
//! gateway's messages to it; every stream ends when the MQTT session is lost.
//!
//! | file | what is there |
//! |---|---|
//! | `stream_table.rs` | pure: the streams by id, the limit, repeated opens, session loss |
//! | `stream_state.rs` | pure: one stream's windows, order, half-close and idle deadline |
//! | `runner.rs` | the async task of one stream |
//! | `engine_io.rs` | exec and attach through the Docker Engine API (hijacked connections) |
//! | `exec_start_size.rs` | the start request of a TTY exec with the terminal's initial size (Podman) |
//! | `port_forward.rs` | the TCP connection of a port-forward |

pub mod engine_io;
pub mod exec_start_size;
pub mod port_forward;
pub mod runner;
pub mod stream_state;
pub mod stream_table;

use std::time::Duration;

use bollard::Docker;
use edge_protocol::{RequestId, StreamClose, StreamErrorCode, StreamOpen, StreamPod, StreamTarget};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::container_runtime::{ContainerSnapshot, RunState};
use crate::downlink::StreamDownlink;
use crate::pod_lifecycle::PodLifecycle;
use crate::publish_ledger::StreamPublisher;
use engine_io::close_with;
use runner::{StreamInput, StreamRun};
use stream_table::{Admission, StreamTable};

/// Messages from the gateway one stream may have waiting (a sane gateway has at most a
/// window's worth of data frames plus a few credits out).
const INPUT_QUEUE: usize = 1024;

#[derive(Debug)]
struct StreamHandle {
    inputs: mpsc::Sender<StreamInput>,
    cancel: CancellationToken,
}

/// What an accepted open connects to.
#[derive(Debug)]
enum Resolved {
    Exec {
        container_id: String,
        container: String,
    },
    Attach {
        container_id: String,
        container: String,
    },
    PortForward {
        addresses: Vec<std::net::SocketAddr>,
    },
}

/// The streams of this device.
#[derive(Debug)]
pub struct StreamManager {
    table: StreamTable<StreamHandle>,
    docker: Docker,
    idle_timeout: Duration,
    tasks: CancellationToken,
}

fn not_found(pod: &StreamPod, container: &str) -> StreamClose {
    close_with(
        StreamErrorCode::NotFound,
        format!(
            "container not found ({container:?}) in pod {}/{}",
            pod.namespace, pod.pod_name
        ),
    )
}

/// Checks an open against the containers the agent runs (pure).
fn resolve(open: &StreamOpen, lifecycle: &PodLifecycle) -> Result<Resolved, StreamClose> {
    if open.version == 0 {
        return Err(close_with(
            StreamErrorCode::Unsupported,
            "stream protocol version 0 is not supported",
        ));
    }
    let pod = open.target.pod();
    let containers = |name: Option<&str>| {
        lifecycle.stream_containers(&pod.pod_uid, &pod.namespace, &pod.pod_name, name)
    };
    let running = |c: &ContainerSnapshot| matches!(c.state, RunState::Running { .. });
    let one = |container: &str, stdio: &edge_protocol::StdioSelection| {
        if container.is_empty() {
            return Err(close_with(
                StreamErrorCode::BadRequest,
                "a container name is required",
            ));
        }
        if !(stdio.stdin || stdio.stdout || stdio.stderr) {
            return Err(close_with(
                StreamErrorCode::BadRequest,
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        let found = containers(Some(container));
        let c = found.first().ok_or_else(|| not_found(pod, container))?;
        if !running(c) {
            return Err(close_with(
                StreamErrorCode::NotRunning,
                format!(
                    "container {container:?} in pod {}/{} is not running",
                    pod.namespace, pod.pod_name
                ),
            ));
        }
        Ok(c.id.clone())
    };
    match &open.target {
        StreamTarget::Exec {
            container,
            command,
            stdio,
            ..
        } => {
            if command.is_empty() {
                return Err(close_with(
                    StreamErrorCode::BadRequest,
                    "a command is required",
                ));
            }
            Ok(Resolved::Exec {
                container_id: one(container, stdio)?,
                container: container.clone(),
            })
        }
        StreamTarget::Attach {
            container, stdio, ..
        } => Ok(Resolved::Attach {
            container_id: one(container, stdio)?,
            container: container.clone(),
        }),
        StreamTarget::PortForward { port, .. } => {
            if *port == 0 {
                return Err(close_with(StreamErrorCode::BadRequest, "port 0"));
            }
            let all = containers(None);
            if all.is_empty() {
                return Err(close_with(
                    StreamErrorCode::NotFound,
                    format!(
                        "pod {}/{} is not on this device",
                        pod.namespace, pod.pod_name
                    ),
                ));
            }
            // A pod with an infra container is entered at its address (the pod IP);
            // without one (host network) each running container is tried.
            let addresses: Vec<_> = match all.iter().find(|c| c.identity.is_sandbox()) {
                Some(infra) => infra
                    .ip_address
                    .as_deref()
                    .filter(|_| running(infra))
                    .and_then(|ip| port_forward::address(Some(ip), *port))
                    .into_iter()
                    .collect(),
                None => all
                    .iter()
                    .filter(|c| running(c))
                    .filter_map(|c| port_forward::address(c.ip_address.as_deref(), *port))
                    .collect(),
            };
            if addresses.is_empty() {
                return Err(close_with(
                    StreamErrorCode::NotRunning,
                    format!(
                        "pod {}/{} has no running container",
                        pod.namespace, pod.pod_name
                    ),
                ));
            }
            Ok(Resolved::PortForward { addresses })
        }
    }
}

impl StreamManager {
    pub fn new(
        limit: usize,
        idle_timeout: Duration,
        docker: Docker,
        tasks: CancellationToken,
    ) -> Self {
        Self {
            table: StreamTable::new(limit),
            docker,
            idle_timeout,
            tasks,
        }
    }

    /// Streams running now.
    pub fn open_streams(&mut self) -> usize {
        self.table.prune(|h| !h.cancel.is_cancelled());
        self.table.len()
    }

    /// A message on `down/stream/{id}`.
    pub fn on_message(
        &mut self,
        id: &RequestId,
        message: StreamDownlink,
        lifecycle: &PodLifecycle,
        publisher: StreamPublisher,
    ) {
        let input = match message {
            StreamDownlink::Open(open) => return self.open(id, open, lifecycle, publisher),
            StreamDownlink::Data(d) => StreamInput::Data(d),
            StreamDownlink::Credit(c) => StreamInput::Credit(c),
            StreamDownlink::Resize(r) => StreamInput::Resize(r),
            StreamDownlink::Close(c) => StreamInput::Close(c),
        };
        let Some(handle) = self
            .table
            .get(id.as_str())
            .filter(|h| !h.cancel.is_cancelled())
        else {
            if matches!(input, StreamInput::Data(_)) {
                // The gateway waits for credit that will never come: tell it.
                answer(
                    publisher,
                    id.clone(),
                    close_with(StreamErrorCode::Cancelled, "no such stream on this device"),
                );
            }
            return;
        };
        match handle.inputs.try_send(input) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                handle.cancel.cancel();
                answer(publisher, id.clone(), runner::overrun_close());
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn open(
        &mut self,
        id: &RequestId,
        open: StreamOpen,
        lifecycle: &PodLifecycle,
        publisher: StreamPublisher,
    ) {
        self.table.prune(|h| !h.cancel.is_cancelled());
        let (inputs_tx, inputs) = mpsc::channel(INPUT_QUEUE);
        let cancel = self.tasks.child_token();
        let admission = self.table.admit(id.as_str(), || StreamHandle {
            inputs: inputs_tx,
            cancel: cancel.clone(),
        });
        match admission {
            Admission::Admitted => {}
            Admission::AlreadyOpen => return,
            Admission::TooMany { limit } => {
                return answer(
                    publisher,
                    id.clone(),
                    close_with(
                        StreamErrorCode::TooManyStreams,
                        format!("the device serves at most {limit} streams at once"),
                    ),
                );
            }
        }
        let resolved = resolve(&open, lifecycle);
        let kind = match &open.target {
            StreamTarget::Exec { .. } => "exec",
            StreamTarget::Attach { .. } => "attach",
            StreamTarget::PortForward { .. } => "port-forward",
        };
        match &resolved {
            Ok(_) => {
                tracing::info!(stream = %id, kind, open_streams = self.table.len(), "stream accepted")
            }
            Err(close) => {
                tracing::info!(stream = %id, kind, error = ?close.error, "stream refused")
            }
        }
        let run = StreamRun {
            id: id.clone(),
            publisher: publisher.for_stream_version(open.version),
            send_window: open.window_bytes,
            idle_timeout: self.idle_timeout,
            inputs,
            cancel: cancel.clone(),
        };
        let docker = self.docker.clone();
        tokio::spawn(async move {
            let opened = match resolved {
                Err(close) => Err(close),
                Ok(Resolved::Exec {
                    container_id,
                    container,
                }) => {
                    let (command, stdio) = match &open.target {
                        StreamTarget::Exec { command, stdio, .. } => (command.as_slice(), *stdio),
                        _ => (&[][..], Default::default()),
                    };
                    engine_io::exec(
                        &docker,
                        &container_id,
                        &container,
                        command,
                        stdio,
                        open.terminal_size,
                    )
                    .await
                }
                Ok(Resolved::Attach {
                    container_id,
                    container,
                }) => {
                    let stdio = match &open.target {
                        StreamTarget::Attach { stdio, .. } => *stdio,
                        _ => Default::default(),
                    };
                    engine_io::attach(
                        &docker,
                        &container_id,
                        &container,
                        stdio,
                        open.terminal_size,
                    )
                    .await
                }
                Ok(Resolved::PortForward { addresses }) => {
                    let port = match &open.target {
                        StreamTarget::PortForward { port, .. } => *port,
                        _ => 0,
                    };
                    port_forward::connect(open.target.pod(), port, &addresses).await
                }
            };
            match opened {
                Ok(io) => run.serve(io).await,
                Err(close) => run.refuse(close).await,
            }
            cancel.cancel();
        });
    }

    /// The MQTT session is gone: the gateway no longer knows any stream.
    pub fn session_lost(&mut self) {
        let ended = self.table.session_lost();
        if !ended.is_empty() {
            tracing::info!(
                streams = ended.len(),
                "broker connection lost: ending every stream"
            );
        }
        for handle in ended {
            handle.cancel.cancel();
        }
    }
}

/// Publishes one answer without a stream task (refusals).
fn answer(publisher: StreamPublisher, id: RequestId, close: StreamClose) {
    tokio::spawn(async move {
        if let Err(e) = publisher.publish(&id, close.into()).await {
            tracing::debug!(stream = %id, error = %e, "stream refusal not sent");
        }
    });
}

#[cfg(test)]
mod tests;
