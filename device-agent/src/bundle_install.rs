//! `edge-agent install --bundle <dir>`: copies a device bundle written by
//! `edge-gateway enroll` (agent.toml, ca.pem, device.pem, device.key, ota-signing.pub) into
//! `<prefix>/etc/edge-agent`, the key with mode 0600.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::{AgentConfig, ConfigFile};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("bundle {dir} has no {file}: pass the directory written by `edge-gateway enroll`")]
    Missing { dir: PathBuf, file: &'static str },
    #[error("bundle agent.toml is not usable: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = InstallError> = std::result::Result<T, E>;

/// Files of a bundle and their modes.
pub const BUNDLE_FILES: [(&str, u32, bool); 5] = [
    ("agent.toml", 0o644, true),
    ("ca.pem", 0o644, false),
    ("device.pem", 0o644, false),
    ("device.key", 0o600, false),
    // the agent-update public key pinned at enrollment (`edge-agent ota stage` reads it)
    ("ota-signing.pub", 0o644, false),
];

/// Installs the bundle; returns the installed config path.
pub fn install(bundle: &Path, prefix: &Path) -> Result<PathBuf> {
    let config_src = bundle.join("agent.toml");
    if !config_src.exists() {
        return Err(InstallError::Missing {
            dir: bundle.to_owned(),
            file: "agent.toml",
        });
    }
    // Validate before touching the target.
    let parsed = ConfigFile::load(&config_src)?;
    AgentConfig::from_file(parsed)?;
    let target = prefix.join("etc/edge-agent");
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| InstallError::Io {
            action,
            path,
            source,
        }
    };
    fs::create_dir_all(&target).map_err(io("creating", &target))?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))
        .map_err(io("setting mode of", &target))?;
    for (name, mode, required) in BUNDLE_FILES {
        let src = bundle.join(name);
        if !src.exists() {
            if required {
                return Err(InstallError::Missing {
                    dir: bundle.to_owned(),
                    file: name,
                });
            }
            continue;
        }
        let dst = target.join(name);
        let tmp = target.join(format!(".{name}.tmp"));
        let bytes = fs::read(&src).map_err(io("reading", &src))?;
        // Create with the final mode so the key is never world-readable, even briefly.
        let _ = fs::remove_file(&tmp);
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)
                .map_err(io("creating", &tmp))?;
            f.write_all(&bytes).map_err(io("writing", &tmp))?;
            f.sync_all().map_err(io("syncing", &tmp))?;
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(io("setting mode of", &tmp))?;
        fs::rename(&tmp, &dst).map_err(io("installing", &dst))?;
    }
    Ok(target.join("agent.toml"))
}

#[cfg(test)]
mod tests;
