//! Pod volumes on the device: `Files` (resolved ConfigMaps/Secrets, written under the
//! state directory and mounted read-only; 0600 when sensitive), `EmptyDir` (a directory
//! or tmpfs living as long as the pod), `HostPath` (with the kubelet's type checks), and
//! device paths. Blocking file-system code: call from `spawn_blocking`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use edge_protocol::{ContainerSpec, PodSpec, VolumeSource};

use crate::atomic_writer;
use crate::container_runtime::BindMount;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    #[error("volume mount {mount:?} names no volume of the pod")]
    UnknownVolume { mount: String },
    #[error("path {path:?} in volume {volume:?} must be relative without '..'")]
    UnsafePath { volume: String, path: String },
    #[error("hostPath {path:?} of volume {volume:?}: {problem}")]
    HostPath {
        volume: String,
        path: String,
        problem: String,
    },
    #[error("device {path:?} does not exist on this device")]
    DeviceMissing { path: String },
    #[error("subPath is not supported on in-memory emptyDir volume {volume:?}")]
    SubPathOnTmpfs { volume: String },
    #[error("writing volume {volume:?}: {message}")]
    Io { volume: String, message: String },
}

pub type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// `<state>/pods/<uid>`: everything the agent keeps on disk for one pod.
pub fn pod_dir(state_dir: &Path, uid: &str) -> PathBuf {
    let safe: String = uid
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state_dir.join("pods").join(safe)
}

fn volume_dir(state_dir: &Path, uid: &str, volume: &str) -> PathBuf {
    pod_dir(state_dir, uid).join("volumes").join(volume)
}

/// A relative path without `..`, absolute parts or empty components.
fn safe_relative(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn io(volume: &str) -> impl Fn(std::io::Error) -> VolumeError + '_ {
    move |e| VolumeError::Io {
        volume: volume.to_owned(),
        message: e.to_string(),
    }
}

/// Creates or refreshes the pod's volumes. Files volumes are swapped atomically
/// ([`atomic_writer`]): a running container's bind mount of the volume directory sees
/// each new version whole, and no container is restarted for it.
pub fn prepare(state_dir: &Path, pod: &PodSpec) -> Result<()> {
    for volume in &pod.volumes {
        let name = &volume.name;
        match &volume.source {
            VolumeSource::EmptyDir { in_memory, .. } => {
                if !in_memory {
                    let dir = volume_dir(state_dir, &pod.uid, name);
                    fs::create_dir_all(&dir).map_err(io(name))?;
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))
                        .map_err(io(name))?;
                }
            }
            VolumeSource::HostPath { path, kind } => check_host_path(name, path, kind.as_deref())?,
            VolumeSource::Files { files, sensitive } => {
                for f in files {
                    // `..data` and the version directories are the writer's own names
                    if !safe_relative(&f.path) || f.path.starts_with("..") {
                        return Err(VolumeError::UnsafePath {
                            volume: name.clone(),
                            path: f.path.clone(),
                        });
                    }
                }
                let dir = volume_dir(state_dir, &pod.uid, name);
                fs::create_dir_all(&dir).map_err(io(name))?;
                let dir_mode = if *sensitive { 0o700 } else { 0o755 };
                fs::set_permissions(&dir, fs::Permissions::from_mode(dir_mode))
                    .map_err(io(name))?;
                atomic_writer::write(&dir, files, *sensitive).map_err(io(name))?;
            }
        }
    }
    Ok(())
}

fn check_host_path(volume: &str, path: &str, kind: Option<&str>) -> Result<()> {
    let err = |problem: &str| VolumeError::HostPath {
        volume: volume.to_owned(),
        path: path.to_owned(),
        problem: problem.to_owned(),
    };
    if !path.starts_with('/') {
        return Err(err("must be an absolute path"));
    }
    let meta = fs::metadata(path);
    match kind.unwrap_or("") {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                fs::create_dir_all(path).map_err(|e| err(&e.to_string()))?;
                fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                    .map_err(|e| err(&e.to_string()))?;
                return Ok(());
            }
            match meta {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(err("exists but is not a directory")),
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = Path::new(path).parent() {
                    fs::create_dir_all(parent).map_err(|e| err(&e.to_string()))?;
                }
                fs::write(path, b"").map_err(|e| err(&e.to_string()))?;
                return Ok(());
            }
            match meta {
                Ok(m) if m.is_file() => Ok(()),
                _ => Err(err("exists but is not a file")),
            }
        }
        expected => {
            let m = meta.map_err(|_| err(&format!("does not exist (type {expected})")))?;
            let ft = m.file_type();
            let ok = match expected {
                "Directory" => ft.is_dir(),
                "File" => ft.is_file(),
                "Socket" => ft.is_socket(),
                "CharDevice" => ft.is_char_device(),
                "BlockDevice" => ft.is_block_device(),
                _ => return Err(err(&format!("unknown hostPath type {expected:?}"))),
            };
            if ok {
                Ok(())
            } else {
                Err(err(&format!("is not a {expected}")))
            }
        }
    }
}

/// Mounts of one container: binds and tmpfs (container path, options).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerMounts {
    pub binds: Vec<BindMount>,
    pub tmpfs: Vec<(String, String)>,
}

/// Works out a container's mounts (pure apart from creating subPath directories and
/// checking that devices exist).
pub fn container_mounts(
    state_dir: &Path,
    pod: &PodSpec,
    container: &ContainerSpec,
) -> Result<ContainerMounts> {
    let mut out = ContainerMounts::default();
    for m in &container.volume_mounts {
        let volume = pod
            .volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| VolumeError::UnknownVolume {
                mount: m.name.clone(),
            })?;
        if let Some(sub) = &m.sub_path
            && !sub.is_empty()
            && !safe_relative(sub)
        {
            return Err(VolumeError::UnsafePath {
                volume: m.name.clone(),
                path: sub.clone(),
            });
        }
        let sub = m.sub_path.as_deref().filter(|s| !s.is_empty());
        let (base, read_only, create_sub) = match &volume.source {
            VolumeSource::EmptyDir {
                in_memory: true,
                size_limit_bytes,
            } => {
                if sub.is_some() {
                    return Err(VolumeError::SubPathOnTmpfs {
                        volume: m.name.clone(),
                    });
                }
                let mut opts = "rw,mode=1777".to_owned();
                if let Some(size) = size_limit_bytes {
                    opts.push_str(&format!(",size={size}"));
                }
                out.tmpfs.push((m.mount_path.clone(), opts));
                continue;
            }
            VolumeSource::EmptyDir { .. } => {
                (volume_dir(state_dir, &pod.uid, &m.name), m.read_only, true)
            }
            VolumeSource::HostPath { path, .. } => (PathBuf::from(path), m.read_only, true),
            VolumeSource::Files { .. } => (volume_dir(state_dir, &pod.uid, &m.name), true, false),
        };
        let host = match sub {
            Some(s) => {
                let p = base.join(s);
                if create_sub && !p.exists() {
                    fs::create_dir_all(&p).map_err(io(&m.name))?;
                }
                if matches!(volume.source, VolumeSource::Files { .. }) {
                    // the file of the current version: later versions do not reach a
                    // subPath mount, as in Kubernetes
                    fs::canonicalize(&p).unwrap_or(p)
                } else {
                    p
                }
            }
            None => base,
        };
        out.binds.push(BindMount {
            host_path: host.to_string_lossy().into_owned(),
            container_path: m.mount_path.clone(),
            read_only,
        });
    }
    for d in &container.devices {
        if !Path::new(&d.host_path).exists() {
            return Err(VolumeError::DeviceMissing {
                path: d.host_path.clone(),
            });
        }
    }
    Ok(out)
}

/// Deletes everything kept on disk for a pod.
pub fn cleanup(state_dir: &Path, uid: &str) -> std::io::Result<()> {
    let dir = pod_dir(state_dir, uid);
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
