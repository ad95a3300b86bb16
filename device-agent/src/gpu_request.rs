//! How the GPUs assigned to a container reach it through the runtime (pure): as the
//! NVIDIA Container Toolkit's Engine API device request (`docker run --gpus`), as CDI
//! device names in a device request (Docker ≥ 25 with CDI), or as the
//! `NVIDIA_VISIBLE_DEVICES` variable the NVIDIA device plugin sets by default (read by
//! the NVIDIA runtime and the NVIDIA OCI hook; the way for Podman 4, whose
//! Docker-compatible API drops device requests and takes no CDI names).

use std::fmt;
use std::str::FromStr;

use bollard::models::DeviceRequest;

/// The variable the NVIDIA runtime and hook read the visible GPUs from.
pub const VISIBLE_DEVICES_ENV: &str = "NVIDIA_VISIBLE_DEVICES";

/// The CDI kind of NVIDIA GPUs (`nvidia-ctk cdi generate`).
pub const CDI_KIND: &str = "nvidia.com/gpu";

/// How to pass assigned GPUs (`--gpu-request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GpuRequestMode {
    /// `nvidia` on the Docker Engine, `env` on Podman.
    #[default]
    Auto,
    /// `HostConfig.DeviceRequests` `{Driver: "nvidia", DeviceIDs, Capabilities:
    /// [["gpu"]]}` and `NVIDIA_VISIBLE_DEVICES`.
    Nvidia,
    /// `HostConfig.DeviceRequests` `{Driver: "cdi", DeviceIDs: ["nvidia.com/gpu=<id>"]}`.
    Cdi,
    /// `NVIDIA_VISIBLE_DEVICES=<ids>` only.
    Env,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a GPU request mode (auto, nvidia, cdi or env)")]
pub struct UnknownGpuRequestMode(pub String);

impl FromStr for GpuRequestMode {
    type Err = UnknownGpuRequestMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "nvidia" => Ok(Self::Nvidia),
            "cdi" => Ok(Self::Cdi),
            "env" => Ok(Self::Env),
            other => Err(UnknownGpuRequestMode(other.to_owned())),
        }
    }
}

impl fmt::Display for GpuRequestMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Nvidia => "nvidia",
            Self::Cdi => "cdi",
            Self::Env => "env",
        })
    }
}

impl GpuRequestMode {
    /// The mode used on this runtime (`Auto` decided).
    pub fn resolve(self, podman: bool) -> Self {
        match (self, podman) {
            (Self::Auto, true) => Self::Env,
            (Self::Auto, false) => Self::Nvidia,
            (mode, _) => mode,
        }
    }
}

/// What a container create carries for its GPUs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuCreateParts {
    pub device_requests: Vec<DeviceRequest>,
    /// `NAME=value`, after the container's own variables (so they win).
    pub env: Vec<String>,
}

/// The create parts for `ids` under `mode` (already resolved); nothing without ids.
pub fn create_parts(mode: GpuRequestMode, ids: &[String]) -> GpuCreateParts {
    if ids.is_empty() {
        return GpuCreateParts::default();
    }
    let visible = format!("{VISIBLE_DEVICES_ENV}={}", ids.join(","));
    match mode {
        GpuRequestMode::Nvidia | GpuRequestMode::Auto => GpuCreateParts {
            device_requests: vec![DeviceRequest {
                driver: Some("nvidia".to_owned()),
                device_ids: Some(ids.to_vec()),
                capabilities: Some(vec![vec!["gpu".to_owned()]]),
                ..Default::default()
            }],
            env: vec![visible],
        },
        GpuRequestMode::Cdi => GpuCreateParts {
            device_requests: vec![DeviceRequest {
                driver: Some("cdi".to_owned()),
                device_ids: Some(ids.iter().map(|id| format!("{CDI_KIND}={id}")).collect()),
                ..Default::default()
            }],
            env: Vec::new(),
        },
        GpuRequestMode::Env => GpuCreateParts {
            device_requests: Vec::new(),
            env: vec![visible],
        },
    }
}

#[cfg(test)]
mod tests;
