//! The container ends of a stream: an exec or an attach through the Docker Engine API
//! (hijacked connections: output frames in, stdin bytes out, resize, exit code), and a
//! TCP connection for port-forward ([`super::port_forward`]). Each becomes a
//! [`StreamIo`] the stream task drives.

use std::pin::Pin;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use bollard::query_parameters::{
    AttachContainerOptions, ResizeContainerTTYOptions, ResizeExecOptions,
};
use edge_protocol::{
    StdioSelection, StreamChannel, StreamClose, StreamError, StreamErrorCode, TerminalSize,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::io::AsyncWrite;

/// Output of the container end: bytes and the channel they belong to.
pub type Output = BoxStream<'static, std::io::Result<(StreamChannel, Vec<u8>)>>;
/// Where the gateway's bytes go (stdin, or the socket).
pub type Input = Pin<Box<dyn AsyncWrite + Send>>;

/// What can be done to the process besides reading and writing.
#[derive(Debug, Clone)]
pub enum Control {
    Exec {
        docker: Docker,
        exec_id: String,
        tty: bool,
    },
    Attach {
        docker: Docker,
        container_id: String,
    },
    Socket,
}

/// One opened container end.
pub struct StreamIo {
    pub output: Output,
    pub input: Option<Input>,
    pub control: Control,
    /// The channels the output uses (each gets an `end` frame when the output ends).
    pub output_channels: Vec<StreamChannel>,
}

impl std::fmt::Debug for StreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamIo")
            .field("control", &self.control)
            .field("stdin", &self.input.is_some())
            .field("output_channels", &self.output_channels)
            .finish()
    }
}

/// A [`StreamClose`] with an error.
pub fn close_with(code: StreamErrorCode, message: impl Into<String>) -> StreamClose {
    StreamClose {
        exit_code: None,
        error: Some(StreamError {
            code,
            message: message.into(),
        }),
    }
}

fn engine_error(e: bollard::errors::Error, container: &str) -> StreamClose {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => close_with(
            StreamErrorCode::NotFound,
            format!("container not found ({container:?})"),
        ),
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            message,
        } => close_with(
            StreamErrorCode::NotRunning,
            format!("container {container:?} is not running: {message}"),
        ),
        other => close_with(StreamErrorCode::Runtime, other.to_string()),
    }
}

fn output_channels(stdio: &StdioSelection) -> Vec<StreamChannel> {
    let mut channels = Vec::new();
    if stdio.stdout || (stdio.tty && stdio.stderr) {
        channels.push(StreamChannel::Stdout);
    }
    if stdio.stderr && !stdio.tty {
        channels.push(StreamChannel::Stderr);
    }
    channels
}

fn frames(
    output: BoxStream<'static, Result<LogOutput, bollard::errors::Error>>,
    tty: bool,
) -> Output {
    output
        .filter_map(move |item| async move {
            match item {
                Ok(LogOutput::StdErr { message }) if !tty => {
                    Some(Ok((StreamChannel::Stderr, message.to_vec())))
                }
                Ok(
                    LogOutput::StdOut { message }
                    | LogOutput::Console { message }
                    | LogOutput::StdErr { message },
                ) => Some(Ok((StreamChannel::Stdout, message.to_vec()))),
                Ok(LogOutput::StdIn { .. }) => None,
                Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
            }
        })
        .boxed()
}

/// Starts `command` in the container with a hijacked connection.
pub async fn exec(
    docker: &Docker,
    container_id: &str,
    container: &str,
    command: &[String],
    stdio: StdioSelection,
    size: Option<TerminalSize>,
) -> Result<StreamIo, StreamClose> {
    let created = docker
        .create_exec(
            container_id,
            ExecConfig {
                cmd: Some(command.to_vec()),
                attach_stdin: Some(stdio.stdin),
                attach_stdout: Some(stdio.stdout),
                attach_stderr: Some(stdio.stderr),
                tty: Some(stdio.tty),
                // The size from the start: a command that asks at once (`stty size`)
                // must not see 0x0 before the first resize (Docker; Podman takes it
                // from the start request, `exec_start_size.rs`).
                console_size: size
                    .filter(|_| stdio.tty)
                    .map(|s| vec![usize::from(s.height), usize::from(s.width)]),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| engine_error(e, container))?;
    // Podman applies the size only from the start request (before the process runs)
    let starter = match size.filter(|_| stdio.tty) {
        Some(size) => super::exec_start_size::engine_for_start(docker, &created.id, size),
        None => docker.clone(),
    };
    let started = starter
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: stdio.tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| engine_error(e, container))?;
    let StartExecResults::Attached { output, input } = started else {
        return Err(close_with(
            StreamErrorCode::Runtime,
            "the runtime started the exec detached",
        ));
    };
    let control = Control::Exec {
        docker: docker.clone(),
        exec_id: created.id,
        tty: stdio.tty,
    };
    if let Some(size) = size.filter(|_| stdio.tty) {
        control.resize(size).await;
    }
    Ok(StreamIo {
        output: frames(output, stdio.tty),
        input: stdio.stdin.then_some(input),
        control,
        output_channels: output_channels(&stdio),
    })
}

/// Attaches to the container's main process (no earlier output).
pub async fn attach(
    docker: &Docker,
    container_id: &str,
    container: &str,
    stdio: StdioSelection,
    size: Option<TerminalSize>,
) -> Result<StreamIo, StreamClose> {
    let attached = docker
        .attach_container(
            container_id,
            Some(AttachContainerOptions {
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                stream: true,
                logs: false,
                detach_keys: None,
            }),
        )
        .await
        .map_err(|e| engine_error(e, container))?;
    let control = Control::Attach {
        docker: docker.clone(),
        container_id: container_id.to_owned(),
    };
    if let Some(size) = size.filter(|_| stdio.tty) {
        control.resize(size).await;
    }
    Ok(StreamIo {
        output: frames(attached.output, stdio.tty),
        input: stdio.stdin.then_some(attached.input),
        control,
        output_channels: output_channels(&stdio),
    })
}

impl Control {
    /// Resizes the terminal; a failure is logged (the session goes on).
    pub async fn resize(&self, size: TerminalSize) {
        let (h, w) = (i32::from(size.height), i32::from(size.width));
        let result = match self {
            Control::Exec {
                docker, exec_id, ..
            } => {
                docker
                    .resize_exec(exec_id, ResizeExecOptions { h, w })
                    .await
            }
            Control::Attach {
                docker,
                container_id,
            } => {
                docker
                    .resize_container_tty(container_id, ResizeContainerTTYOptions { h, w })
                    .await
            }
            Control::Socket => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "terminal resize failed");
        }
    }

    /// After the output ended: the exec's exit code (the engine may take a moment to
    /// mark it finished); None for attach and sockets.
    pub async fn exit_code(&self) -> Result<Option<i32>, StreamClose> {
        let Control::Exec {
            docker, exec_id, ..
        } = self
        else {
            return Ok(None);
        };
        for _ in 0..50 {
            let inspect = docker
                .inspect_exec(exec_id)
                .await
                .map_err(|e| close_with(StreamErrorCode::Runtime, e.to_string()))?;
            if inspect.running != Some(true) {
                let code = inspect.exit_code.unwrap_or(-1);
                return Ok(Some(i32::try_from(code).unwrap_or(-1)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(close_with(
            StreamErrorCode::Runtime,
            "the exec's output ended but the runtime still reports it running",
        ))
    }
}

impl Control {
    /// The stream ended before the process did (the client went away, the session was
    /// lost, idle): a process on a terminal gets SIGHUP, as when a terminal hangs up.
    /// (Closing the connection gives stdin EOF, but Podman keeps an exec's terminal open
    /// after its attach connection closed.) Needs the agent in the host's PID namespace,
    /// as its systemd service is; otherwise the process keeps running.
    pub async fn hang_up(&self) {
        let Control::Exec {
            docker,
            exec_id,
            tty: true,
        } = self
        else {
            return;
        };
        let pid = match docker.inspect_exec(exec_id).await {
            Ok(i) if i.running == Some(true) => i.pid,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot inspect the exec to hang it up");
                return;
            }
        };
        let Some(pid) = pid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        else {
            return;
        };
        if let Err(e) = rustix::process::kill_process(pid, rustix::process::Signal::HUP) {
            tracing::debug!(error = %e, pid = pid.as_raw_nonzero().get(), "cannot hang up the exec");
        }
    }
}
