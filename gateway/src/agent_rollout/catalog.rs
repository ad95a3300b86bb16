//! The agent releases the gateway serves, one signed binary per version and architecture,
//! under the store directory:
//!
//! ```text
//! <store-dir>/agent-releases/<version>/<arch>/edge-agent       the binary
//! <store-dir>/agent-releases/<version>/<arch>/edge-agent.sig   its 64-byte ed25519 signature
//! ```
//!
//! `edge-gateway agent-release add` puts them there after checking the signature with the
//! fleet's key (the gateway never holds the private half); architectures are the Nodes'
//! (`arm64`, `arm`, `amd64`). A release is hashed once when first served and cached
//! while its files stay the same.

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use edge_protocol::ota_signature::decode_signature;
use edge_protocol::{AGENT_UPDATE_CHUNK_BYTES, MAX_AGENT_BINARY_BYTES};

use super::spec::is_version;
use crate::enrollment::ota_key::FleetUpdateKey;

pub const RELEASES_DIR: &str = "agent-releases";
const BINARY: &str = "edge-agent";
const SIGNATURE: &str = "edge-agent.sig";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "no release of version {version} for {arch} (expected {path}; add it with `edge-gateway agent-release add --version {version} --arch {arch} ...`)"
    )]
    Missing {
        version: String,
        arch: String,
        path: PathBuf,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the architecture {0:?} is not one a Node reports (arm64, arm, amd64, ...)")]
    BadArch(String),
    #[error("the version {0:?} has characters other than letters, digits, '.', '-', '+', '_'")]
    BadVersion(String),
    #[error(
        "{0} is not a signature: expected 64 raw bytes (openssl pkeyutl -sign) or their base64"
    )]
    BadSignature(PathBuf),
    #[error(
        "the signature does not verify: it must be the fleet key's signature over \"edge-agent-ota v1\\nversion={version}\\nsha256={sha256}\\n\" (docs/deploy.md, Upgrade the agent)"
    )]
    SignatureMismatch { version: String, sha256: String },
    #[error("the binary is {0} bytes; at most {MAX_AGENT_BINARY_BYTES} are served")]
    TooLarge(u64),
    #[error(
        "version {version} for {arch} is already a release with another binary (sha256 {sha256}): \
         devices downloading it would fail; sign the new build as a new version, or pass --force"
    )]
    ReplaceRefused {
        version: String,
        arch: String,
        sha256: String,
    },
    #[error("offset {offset} is past the end of the {size}-byte release")]
    PastEnd { offset: u64, size: u64 },
    #[error(
        "the fleet has no agent-update key (<store-dir>/enrollment/ota-signing.pub): releases are not served"
    )]
    NoKey,
    #[error("the fleet's agent-update key cannot be read: {0}")]
    Key(String),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CatalogError + use<> {
    let path = path.to_owned();
    move |source| CatalogError::Io { what, path, source }
}

/// One release: what an order names and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub arch: String,
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
    pub signature: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> Result<FileStamp, std::io::Error> {
    let m = std::fs::metadata(path)?;
    Ok(FileStamp {
        len: m.len(),
        modified: m.modified().ok(),
    })
}

/// Releases hashed so far, by version and architecture, with the binary's stamp then.
type ReleaseCache = HashMap<(String, String), (FileStamp, Arc<Release>)>;

/// The releases under one store directory.
#[derive(Debug)]
pub struct ReleaseCatalog {
    root: PathBuf,
    /// Where the fleet's key is (the store's enrollment directory).
    enrollment: crate::enrollment::layout::EnrollmentLayout,
    cache: Mutex<ReleaseCache>,
}

fn is_arch(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 16
        && a.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The lowercase hex SHA-256 of a file.
fn sha256_file(path: &Path) -> Result<String, CatalogError> {
    edge_protocol::ota_signature::sha256_file(path).map_err(io("read", path))
}

impl ReleaseCatalog {
    pub fn new(store_dir: &Path) -> Self {
        Self {
            root: store_dir.join(RELEASES_DIR),
            enrollment: crate::enrollment::layout::EnrollmentLayout::new(store_dir),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn dir(&self, version: &str, arch: &str) -> Result<PathBuf, CatalogError> {
        if !is_version(version) {
            return Err(CatalogError::BadVersion(version.to_owned()));
        }
        if !is_arch(arch) {
            return Err(CatalogError::BadArch(arch.to_owned()));
        }
        Ok(self.root.join(version).join(arch))
    }

    /// The release of `version` for `arch`, its signature checked with the fleet's key as
    /// devices will check it (hashed on first use, then cached while its binary is
    /// unchanged): a release copied in by hand that devices would refuse is never served.
    pub fn release(&self, version: &str, arch: &str) -> Result<Arc<Release>, CatalogError> {
        let dir = self.dir(version, arch)?;
        let path = dir.join(BINARY);
        let current = match stamp(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CatalogError::Missing {
                    version: version.to_owned(),
                    arch: arch.to_owned(),
                    path,
                });
            }
            Err(e) => return Err(io("stat", &path)(e)),
        };
        let key = (version.to_owned(), arch.to_owned());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, release)) = cache.get(&key)
            && *s == current
        {
            return Ok(release.clone());
        }
        if current.len > MAX_AGENT_BINARY_BYTES {
            return Err(CatalogError::TooLarge(current.len));
        }
        let sig_path = dir.join(SIGNATURE);
        let sig = std::fs::read(&sig_path).map_err(io("read", &sig_path))?;
        let signature = decode_signature(&sig).ok_or(CatalogError::BadSignature(sig_path))?;
        let sha256 = sha256_file(&path)?;
        let fleet_key = FleetUpdateKey::load(&self.enrollment)
            .map_err(|e| CatalogError::Key(e.to_string()))?
            .ok_or(CatalogError::NoKey)?;
        if !fleet_key.verifies(version, &sha256, &signature) {
            return Err(CatalogError::SignatureMismatch {
                version: version.to_owned(),
                sha256,
            });
        }
        let release = Arc::new(Release {
            version: version.to_owned(),
            arch: arch.to_owned(),
            sha256,
            size: current.len,
            path,
            signature,
        });
        cache.insert(key, (current, release.clone()));
        Ok(release)
    }

    /// Bytes `offset..offset + length` of a release (fewer at its end, none past it).
    pub fn read_chunk(
        &self,
        release: &Release,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, CatalogError> {
        if offset >= release.size {
            return Err(CatalogError::PastEnd {
                offset,
                size: release.size,
            });
        }
        let length = length
            .min(AGENT_UPDATE_CHUNK_BYTES)
            .min(release.size - offset);
        let mut file = std::fs::File::open(&release.path).map_err(io("open", &release.path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(io("seek", &release.path))?;
        let mut data = vec![0u8; length as usize];
        file.read_exact(&mut data)
            .map_err(io("read", &release.path))?;
        Ok(data)
    }

    /// Checks `binary` and `signature_file` with the fleet's key and adds them as the
    /// release of `version` for `arch`. The same binary again changes nothing; another
    /// binary under a version already there is refused unless `force`.
    pub fn add(
        &self,
        key: &FleetUpdateKey,
        version: &str,
        arch: &str,
        binary: &Path,
        signature_file: &Path,
        force: bool,
    ) -> Result<Release, CatalogError> {
        let dir = self.dir(version, arch)?;
        let size = std::fs::metadata(binary).map_err(io("stat", binary))?.len();
        if size > MAX_AGENT_BINARY_BYTES {
            return Err(CatalogError::TooLarge(size));
        }
        let sig = std::fs::read(signature_file).map_err(io("read", signature_file))?;
        let signature = decode_signature(&sig)
            .ok_or_else(|| CatalogError::BadSignature(signature_file.into()))?;
        let sha256 = sha256_file(binary)?;
        if !key.verifies(version, &sha256, &signature) {
            return Err(CatalogError::SignatureMismatch {
                version: version.to_owned(),
                sha256,
            });
        }
        let path = dir.join(BINARY);
        let present = match path.exists() {
            true => Some(sha256_file(&path)?),
            false => None,
        };
        match present {
            // the same binary again: nothing to write
            Some(present) if present == sha256 => {}
            Some(present) if !force => {
                return Err(CatalogError::ReplaceRefused {
                    version: version.to_owned(),
                    arch: arch.to_owned(),
                    sha256: present,
                });
            }
            _ => {
                std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                let staging = dir.join(".edge-agent.new");
                let staging_sig = dir.join(".edge-agent.sig.new");
                std::fs::copy(binary, &staging).map_err(io("copy into", &staging))?;
                std::fs::write(&staging_sig, &signature).map_err(io("write", &staging_sig))?;
                // a reader between the two renames sees a pair that does not verify: it
                // is refused (never served), and the next read sees the whole new pair
                std::fs::rename(&staging_sig, dir.join(SIGNATURE))
                    .map_err(io("rename into", &dir))?;
                std::fs::rename(&staging, &path).map_err(io("rename into", &path))?;
            }
        }
        Ok(Release {
            version: version.to_owned(),
            arch: arch.to_owned(),
            path,
            size,
            sha256,
            signature,
        })
    }

    /// Every release present, by version then architecture (unreadable ones skipped).
    pub fn list(&self) -> Vec<Result<Arc<Release>, CatalogError>> {
        let mut out = Vec::new();
        let Ok(versions) = std::fs::read_dir(&self.root) else {
            return out;
        };
        let mut versions: Vec<String> = versions
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        versions.sort();
        for version in versions {
            let Ok(arches) = std::fs::read_dir(self.root.join(&version)) else {
                continue;
            };
            let mut arches: Vec<String> = arches
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect();
            arches.sort();
            for arch in arches {
                out.push(self.release(&version, &arch));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
