//! The files of a ConfigMap, Secret, downward API or projected volume, swapped the way
//! the kubelet's AtomicWriter does, so a reader never sees half an update: each version
//! is written whole into a new timestamped directory `..<time>`, the `..data` symlink is
//! pointed at it by an atomic rename, and the user-visible names are symlinks into
//! `..data`. The previous version's directory is kept until the next swap (a reader that
//! resolved `..data` just before a swap can still finish reading it; the kubelet removes
//! it at once, leaving a reader in that instant a "no such file"); older ones are
//! removed. A bind mount of the
//! volume directory sees every new version at once; a `subPath` mount (bound to a
//! resolved file) keeps the version it was created with, as in Kubernetes.
//! Blocking file-system code.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use edge_protocol::FileItem;

/// The symlink to the current version's directory.
pub const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// File mode on disk: 0600 for sensitive volumes (Secrets, tokens), else the item's mode
/// (0644 when unset).
pub fn file_mode(item: &FileItem, sensitive: bool) -> u32 {
    if sensitive {
        0o600
    } else if item.mode == 0 {
        0o644
    } else {
        item.mode & 0o777
    }
}

/// The first component of each path: the user-visible names.
fn top_level_names(files: &[FileItem]) -> BTreeSet<String> {
    files
        .iter()
        .filter_map(|f| f.path.split('/').next().map(str::to_owned))
        .collect()
}

/// The directory `..data` points at now, if any.
pub fn current_version(dir: &Path) -> Option<PathBuf> {
    let target = fs::read_link(dir.join(DATA_DIR)).ok()?;
    Some(dir.join(target))
}

/// Whether `version` holds exactly `files` (contents and modes).
fn holds(version: &Path, files: &[FileItem], sensitive: bool) -> bool {
    let mut expected: BTreeSet<PathBuf> = BTreeSet::new();
    for f in files {
        let path = version.join(&f.path);
        let same = fs::read(&path).is_ok_and(|c| c == f.content.as_slice())
            && fs::symlink_metadata(&path).is_ok_and(|m| {
                m.is_file() && m.permissions().mode() & 0o777 == file_mode(f, sensitive)
            });
        if !same {
            return false;
        }
        expected.insert(path);
    }
    count_files(version).is_ok_and(|n| n == expected.len())
}

fn count_files(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            n += count_files(&entry.path())?;
        } else {
            n += 1;
        }
    }
    Ok(n)
}

/// A new, unused `..<unix seconds>_<nanoseconds>` directory name.
fn new_version_name(dir: &Path) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let base = format!("..{}_{:09}", now.as_secs(), now.subsec_nanos());
    let mut name = base.clone();
    let mut n = 0u32;
    while dir.join(&name).symlink_metadata().is_ok() {
        n += 1;
        name = format!("{base}.{n}");
    }
    name
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes `dir` hold `files` (paths already checked to be safe and relative). Nothing is
/// written when the current version already holds them.
pub fn write(dir: &Path, files: &[FileItem], sensitive: bool) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let names = top_level_names(files);
    let current = current_version(dir);
    let name_of = |v: &PathBuf| {
        v.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut previous = None;
    let version_name = match &current {
        Some(v) if holds(v, files, sensitive) => name_of(v),
        _ => {
            previous = current.as_ref().map(name_of);
            let name = new_version_name(dir);
            let version = dir.join(&name);
            fs::create_dir(&version)?;
            fs::set_permissions(&version, fs::Permissions::from_mode(0o755))?;
            for f in files {
                let path = version.join(&f.path);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                fs::write(&path, f.content.as_slice())?;
                fs::set_permissions(&path, fs::Permissions::from_mode(file_mode(f, sensitive)))?;
            }
            // the swap: one rename of a symlink
            let tmp = dir.join(DATA_DIR_TMP);
            remove_any(&tmp)?;
            symlink(&name, &tmp)?;
            fs::rename(&tmp, dir.join(DATA_DIR))?;
            name
        }
    };
    // user-visible names: symlinks into ..data (files of an older layout replaced)
    for name in &names {
        let path = dir.join(name);
        let link = Path::new(DATA_DIR).join(name);
        match fs::read_link(&path) {
            Ok(target) if target == link => continue,
            _ => remove_any(&path)?,
        }
        symlink(&link, &path)?;
    }
    // everything else goes: older versions, names no longer in the volume
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == DATA_DIR
            || name == version_name
            || previous.as_ref() == Some(&name)
            || names.contains(&name)
        {
            continue;
        }
        remove_any(&entry.path())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
