//! What the devices actually run: the containers of the run's namespace in the container
//! runtime (Podman through its Docker API), read from the labels the agent puts on every
//! container it creates.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::CrashCycleError;

const POD_UID: &str = "io.edge-kube.pod-uid";
const POD_NAMESPACE: &str = "io.edge-kube.pod-namespace";
const CONTAINER_NAME: &str = "io.edge-kube.container-name";
const RESTART_COUNT: &str = "io.edge-kube.restart-count";
const DEVICE: &str = "io.edge-kube.device";

/// One container in the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeContainer {
    pub id: String,
    /// The agent (device) that created it.
    pub device: String,
    pub pod_uid: String,
    pub container_name: String,
    /// Which instance of the container this is (0 for the first).
    pub restart_count: u32,
    /// `running`, `exited`, `created`, ... as Podman says.
    pub state: String,
    pub exit_code: i64,
    /// The image reference it was created from.
    pub image: String,
}

impl RuntimeContainer {
    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PodmanPs {
    id: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    exit_code: i64,
    #[serde(default)]
    image: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Every container the agents made for pods of `namespace`.
pub async fn runtime_containers(
    docker_host: &str,
    namespace: &str,
) -> Result<Vec<RuntimeContainer>, CrashCycleError> {
    let out = tokio::process::Command::new("podman")
        .args(["--url", docker_host, "ps", "-a", "--format", "json"])
        .args(["--filter", &format!("label={POD_NAMESPACE}={namespace}")])
        .output()
        .await
        .map_err(|e| CrashCycleError::Runtime(format!("running podman (is it installed?): {e}")))?;
    if !out.status.success() {
        return Err(CrashCycleError::Runtime(format!(
            "podman ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_podman_ps(&out.stdout)
}

/// Parses `podman ps -a --format json`.
pub fn parse_podman_ps(json: &[u8]) -> Result<Vec<RuntimeContainer>, CrashCycleError> {
    let listed: Vec<PodmanPs> = serde_json::from_slice(json)
        .map_err(|e| CrashCycleError::Runtime(format!("podman ps output: {e}")))?;
    Ok(listed
        .into_iter()
        .map(|c| {
            let labels = c.labels.unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
            RuntimeContainer {
                restart_count: label(RESTART_COUNT).parse().unwrap_or(0),
                device: label(DEVICE),
                pod_uid: label(POD_UID),
                container_name: label(CONTAINER_NAME),
                id: c.id,
                state: c.state,
                exit_code: c.exit_code,
                image: c.image,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_identity_from_labels() {
        let raw = br#"[{"Id":"abc","State":"exited","ExitCode":3,"Image":"localhost/busybox:test",
            "Labels":{"io.edge-kube.pod-uid":"u1","io.edge-kube.device":"d1",
            "io.edge-kube.container-name":"main","io.edge-kube.restart-count":"2"}},
            {"Id":"def","State":"running","Labels":null}]"#;
        let got = parse_podman_ps(raw).unwrap();
        assert_eq!(got[0].pod_uid, "u1");
        assert_eq!(got[0].device, "d1");
        assert_eq!(got[0].restart_count, 2);
        assert_eq!(got[0].exit_code, 3);
        assert!(!got[0].is_running());
        assert!(got[1].is_running());
        assert_eq!(got[1].pod_uid, "");
    }
}
