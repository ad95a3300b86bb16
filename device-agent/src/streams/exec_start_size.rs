//! The start request of a TTY exec with the terminal's initial size in it, so that a
//! command that asks at once (`stty size`, a shell's first prompt) never sees 0x0.
//!
//! Docker applies `ConsoleSize` of the exec's create, but Podman (4.x, compat API)
//! ignores it and applies a size only when the start request's body carries its own
//! `h` and `w` fields: then before the process starts; a resize after the start comes
//! too late for such a command. bollard's `StartExecOptions` has neither field, so an
//! engine handle made for this one exec rewrites the body of its start request:
//! `Detach`, `Tty`, Podman's `h` / `w` and Docker's `ConsoleSize` (API 1.42+); each
//! engine ignores the fields it does not know.

use bollard::{BollardRequest, Docker};
use bytes::Bytes;
use edge_protocol::TerminalSize;

/// The body of the start request of an attached TTY exec with `size`.
pub fn start_body(size: TerminalSize) -> String {
    serde_json::json!({
        "Detach": false,
        "Tty": true,
        "h": size.height,
        "w": size.width,
        "ConsoleSize": [size.height, size.width],
    })
    .to_string()
}

/// Gives the start request of exec `exec_id` the body [`start_body`]; other requests
/// pass unchanged.
pub fn sized_start(
    exec_id: &str,
    size: TerminalSize,
) -> impl Fn(BollardRequest) -> BollardRequest + Send + Sync + use<> {
    let path_end = format!("/exec/{exec_id}/start");
    let body = Bytes::from(start_body(size));
    move |request: BollardRequest| {
        if !request.uri().path().ends_with(&path_end) {
            return request;
        }
        let (parts, _) = request.into_parts();
        BollardRequest::from_parts(parts, bollard::body_full(body.clone()))
    }
}

/// `docker` for starting exec `exec_id` with its terminal at `size`.
pub fn engine_for_start(docker: &Docker, exec_id: &str, size: TerminalSize) -> Docker {
    docker
        .clone()
        .with_request_modifier(sized_start(exec_id, size))
}

#[cfg(test)]
mod tests;
