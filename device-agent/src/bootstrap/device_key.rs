//! The device's own key and certificate under the identity directory: the key is
//! generated here, on the device, and never leaves it (0600); the CSR asks for a client
//! certificate with CN = device id; an issued certificate is accepted only if it is for
//! this key and this id.
//!
//! | file | what |
//! |---|---|
//! | `device.key` | the private key (ECDSA P-256, PKCS#8 PEM), kept across attempts and renewals |
//! | `device.pem` | the current certificate |
//! | `ca.pem` | the CA bundle the gateway sent with it |
//! | `device-id` | the id the certificate is for |

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use edge_protocol::DeviceId;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PublicKeyData as _,
};

/// Why the identity cannot be created, read or stored.
#[derive(Debug, thiserror::Error)]
pub enum DeviceKeyError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not hold a usable private key: {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("cannot build the certificate signing request: {0}")]
    Csr(rcgen::Error),
    #[error("the certificate from the gateway is not usable: {0}")]
    BadCertificate(String),
    #[error(
        "the certificate from the gateway is for {found:?}, but this device asked for {expected:?}"
    )]
    WrongSubject { expected: String, found: String },
    #[error("the certificate from the gateway is not for this device's key")]
    WrongKey,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DeviceKeyError {
    let path = path.to_owned();
    move |source| DeviceKeyError::Io {
        action,
        path,
        source,
    }
}

/// A certificate's subject CN, validity and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    pub common_name: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub spki_der: Vec<u8>,
}

/// Parses the first certificate of a PEM text.
pub fn certificate_facts(pem: &str) -> Result<CertificateFacts, DeviceKeyError> {
    let bad = |e: String| DeviceKeyError::BadCertificate(e);
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(e.to_string()))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(CertificateFacts {
        common_name,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        spki_der: cert.public_key().raw.to_vec(),
    })
}

/// The identity directory of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityDir {
    dir: PathBuf,
}

impl IdentityDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn key(&self) -> PathBuf {
        self.dir.join("device.key")
    }
    pub fn cert(&self) -> PathBuf {
        self.dir.join("device.pem")
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn device_id_file(&self) -> PathBuf {
        self.dir.join("device-id")
    }

    /// The key, generated (and written 0600) when there is none yet.
    pub fn load_or_generate_key(&self) -> Result<KeyPair, DeviceKeyError> {
        let path = self.key();
        match std::fs::read_to_string(&path) {
            Ok(pem) => KeyPair::from_pem(&pem).map_err(|e| DeviceKeyError::BadKey {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
                let key = KeyPair::generate().map_err(DeviceKeyError::Csr)?;
                write_file(&path, key.serialize_pem().as_bytes(), 0o600)?;
                Ok(key)
            }
            Err(e) => Err(io("read", &path)(e)),
        }
    }

    /// A new key in place of the one on disk (written 0600, atomically): a device whose
    /// certificate expired enrolls again with a fresh key, so its request is a new
    /// CertificateSigningRequest rather than the one that carried the expired certificate
    /// (their names derive from the key).
    pub fn replace_key(&self) -> Result<KeyPair, DeviceKeyError> {
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let key = KeyPair::generate().map_err(DeviceKeyError::Csr)?;
        write_file(&self.key(), key.serialize_pem().as_bytes(), 0o600)?;
        Ok(key)
    }

    /// The current certificate and its id, if both are there and the certificate is for
    /// the key on disk.
    pub fn current(&self) -> Option<(DeviceId, CertificateFacts)> {
        let id = std::fs::read_to_string(self.device_id_file()).ok()?;
        let id = DeviceId::new(id.trim()).ok()?;
        let pem = std::fs::read_to_string(self.cert()).ok()?;
        let facts = certificate_facts(&pem).ok()?;
        let key = KeyPair::from_pem(&std::fs::read_to_string(self.key()).ok()?).ok()?;
        (facts.common_name == id.as_str() && facts.spki_der == key.subject_public_key_info())
            .then_some((id, facts))
    }

    /// Checks that `cert_pem` is for `id` and this key, then stores it with the CA.
    pub fn store_issued(
        &self,
        id: &DeviceId,
        key: &KeyPair,
        cert_pem: &str,
        ca_pem: &str,
    ) -> Result<CertificateFacts, DeviceKeyError> {
        let facts = check_issued(id, key, cert_pem)?;
        write_file(&self.ca(), ca_pem.as_bytes(), 0o644)?;
        write_file(&self.cert(), cert_pem.as_bytes(), 0o644)?;
        write_file(&self.device_id_file(), format!("{id}\n").as_bytes(), 0o644)?;
        Ok(facts)
    }
}

impl IdentityDir {
    /// Stores a renewed certificate and the new key it was issued for: key and
    /// certificate are written beside the old ones first, then renamed over them (key
    /// first). A crash between the two renames leaves a pair that does not match, which
    /// [`IdentityDir::current`] treats as no identity: the agent enrolls again.
    pub fn store_renewed(
        &self,
        id: &DeviceId,
        key: &KeyPair,
        cert_pem: &str,
        ca_pem: &str,
    ) -> Result<CertificateFacts, DeviceKeyError> {
        let facts = check_issued(id, key, cert_pem)?;
        let (new_key, new_cert) = (
            self.dir.join("device.key.new"),
            self.dir.join("device.pem.new"),
        );
        write_file(&new_key, key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&new_cert, cert_pem.as_bytes(), 0o644)?;
        write_file(&self.ca(), ca_pem.as_bytes(), 0o644)?;
        std::fs::rename(&new_key, self.key()).map_err(io("rename into place", &self.key()))?;
        std::fs::rename(&new_cert, self.cert()).map_err(io("rename into place", &self.cert()))?;
        Ok(facts)
    }
}

/// The certificate must name `id` and carry `key`'s public key.
pub fn check_issued(
    id: &DeviceId,
    key: &KeyPair,
    cert_pem: &str,
) -> Result<CertificateFacts, DeviceKeyError> {
    let facts = certificate_facts(cert_pem)?;
    if facts.common_name != id.as_str() {
        return Err(DeviceKeyError::WrongSubject {
            expected: id.to_string(),
            found: facts.common_name,
        });
    }
    if facts.spki_der != key.subject_public_key_info() {
        return Err(DeviceKeyError::WrongKey);
    }
    Ok(facts)
}

/// A PKCS#10 request (PEM) for a TLS client certificate with CN = `id`.
pub fn certificate_request(id: &DeviceId, key: &KeyPair) -> Result<String, DeviceKeyError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, id.as_str());
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let csr = params.serialize_request(key).map_err(DeviceKeyError::Csr)?;
    csr.pem().map_err(DeviceKeyError::Csr)
}

/// Writes `path` atomically (a temporary file renamed over it) with `mode`.
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), DeviceKeyError> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("create", &tmp))?;
    file.write_all(data).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("rename into place", path))
}

#[cfg(test)]
mod tests;
