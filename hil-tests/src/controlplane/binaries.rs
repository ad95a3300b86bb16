//! Where the upstream binaries are: built by `scripts/build-control-plane.sh` from the
//! Go modules pinned in `hil-tests/controlplane/go.mod`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::stack::{StackError, StackResult};

/// Environment variable naming the directory with the built binaries
/// (`scripts/test.sh` sets it).
pub const BIN_DIR_ENV: &str = "EDGE_CONTROL_PLANE_BIN_DIR";

/// The five upstream binaries of one Kubernetes release.
#[derive(Debug, Clone)]
pub struct ControlPlaneBinaries {
    pub dir: PathBuf,
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    /// kubectl of the same release (the version skew policy allows kubectl one minor
    /// away; the PATH kubectl may be further off).
    pub kubectl: PathBuf,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The directory `scripts/<script> --print` names (the build scripts know the pinned
/// version and honour `CARGO_TARGET_DIR`); `what` names the build in errors.
pub(super) fn build_script_dir(script: &str, what: &str) -> StackResult<PathBuf> {
    let script = workspace_root().join("scripts").join(script);
    let out = Command::new("bash")
        .arg(&script)
        .arg("--print")
        .output()
        .map_err(|e| StackError::Spawn {
            program: script.display().to_string(),
            error: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(StackError::MissingTool {
            tool: what.to_owned(),
            hint: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

impl ControlPlaneBinaries {
    /// `$EDGE_CONTROL_PLANE_BIN_DIR`, else the build script's output directory. Missing
    /// binaries are an error that says how to build them: never a silent skip.
    pub fn locate() -> StackResult<Self> {
        let dir = match std::env::var_os(BIN_DIR_ENV) {
            Some(d) => PathBuf::from(d),
            None => build_script_dir("build-control-plane.sh", "the Kubernetes control plane")?,
        };
        let bins = Self {
            etcd: dir.join("etcd"),
            kube_apiserver: dir.join("kube-apiserver"),
            kube_controller_manager: dir.join("kube-controller-manager"),
            kube_scheduler: dir.join("kube-scheduler"),
            kubectl: dir.join("kubectl"),
            dir,
        };
        for b in [
            &bins.etcd,
            &bins.kube_apiserver,
            &bins.kube_controller_manager,
            &bins.kube_scheduler,
            &bins.kubectl,
        ] {
            if !b.is_file() {
                return Err(StackError::MissingTool {
                    tool: b.display().to_string(),
                    hint: "build the real control plane with `scripts/build-control-plane.sh` \
                           (needs Go >= 1.26 and the Go module proxy; scripts/test.sh runs it)"
                        .to_owned(),
                });
            }
        }
        Ok(bins)
    }
}
