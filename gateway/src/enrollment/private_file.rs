//! Atomic file writes with explicit permissions: keys 0600, everything else 0644.
//!
//! A file is written to a temporary name in the same directory, flushed, then renamed
//! over the target, so a crash never leaves a half-written key or certificate behind and
//! a private key is never readable by others, not even for a moment. A replaced file
//! keeps its owner when the process may set it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::error::{EnrollmentError, Result};

/// Mode of private keys.
pub const PRIVATE_MODE: u32 = 0o600;
/// Mode of certificates and configuration.
pub const PUBLIC_MODE: u32 = 0o644;

/// Writes `contents` to `path` readable by the owner only (0600).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(path, contents, PRIVATE_MODE)
}

/// Writes `contents` to `path` with mode 0644.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<()> {
    write_with_mode(path, contents, PUBLIC_MODE)
}

/// Creates `dir` (and parents) if missing, with the given mode on the last level.
pub fn create_dir(dir: &Path, mode: u32) -> Result<()> {
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(EnrollmentError::io("create directory", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(EnrollmentError::io("set permissions of", dir))?;
    }
    Ok(())
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(EnrollmentError::io("create", &tmp))?;
        // `mode` above is filtered by the umask and ignored for an existing file: set it.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(EnrollmentError::io("set permissions of", &tmp))?;
        // Replacing a file keeps its owner (e.g. a key chowned to the broker's user), as
        // far as we may: best effort, only root can give a file away.
        if let Ok(meta) = fs::metadata(path) {
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        file.write_all(contents)
            .map_err(EnrollmentError::io("write", &tmp))?;
        file.sync_all()
            .map_err(EnrollmentError::io("flush", &tmp))?;
        fs::rename(&tmp, path).map_err(EnrollmentError::io("replace", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
