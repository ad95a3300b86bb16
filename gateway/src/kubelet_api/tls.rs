//! TLS for the kubelet API: the serving certificate (given, or self-signed and kept in
//! the store directory) and client-certificate verification against --kubelet-client-ca.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::authn::ConnectionIdentity;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("cannot generate the self-signed kubelet certificate: {0}")]
    Generate(String),
    #[error("invalid kubelet TLS configuration: {0}")]
    Config(String),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            message: "no PEM certificate found".to_owned(),
        });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            message: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Pem {
            path: path.display().to_string(),
            message: "no PEM private key found".to_owned(),
        })
}

/// Returns the serving cert/key paths, generating a self-signed pair under
/// `<store_dir>/kubelet-tls/` when none is configured (reused on later starts).
pub fn serving_files(
    configured: Option<&(PathBuf, PathBuf)>,
    store_dir: &Path,
    node_address: &str,
) -> Result<(PathBuf, PathBuf), TlsError> {
    if let Some((c, k)) = configured {
        return Ok((c.clone(), k.clone()));
    }
    self_signed_files(&store_dir.join("kubelet-tls"), &[node_address.to_owned()])
}

/// A self-signed serving certificate and key in `dir` (`tls.crt`, `tls.key`) for
/// `names` plus localhost and 127.0.0.1: made once, reused on later starts.
pub fn self_signed_files(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("tls.crt");
    let key_path = dir.join("tls.key");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let mut all = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for name in names {
        if !all.contains(name) {
            all.push(name.clone());
        }
    }
    let certified =
        rcgen::generate_simple_self_signed(all).map_err(|e| TlsError::Generate(e.to_string()))?;
    let write = |path: &Path, data: String, mode: u32| -> Result<(), TlsError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(|source| TlsError::Write {
                path: path.display().to_string(),
                source,
            })?;
        f.write_all(data.as_bytes())
            .map_err(|source| TlsError::Write {
                path: path.display().to_string(),
                source,
            })
    };
    write(&key_path, certified.signing_key.serialize_pem(), 0o600)?;
    write(&cert_path, certified.cert.pem(), 0o644)?;
    Ok((cert_path, key_path))
}

/// Whether a TLS server asks for client certificates and needs one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// Verified when presented; connections without one go on to other authentication.
    Optional,
    /// A connection without a certificate from the CA is refused in the handshake.
    Required,
}

/// The rustls server configuration: client certificates from `client_ca` are verified
/// when presented ([`ClientCertificates::Optional`]: connections without one are allowed
/// through to bearer-token auth) or needed ([`ClientCertificates::Required`]).
pub fn server_config(
    cert: &Path,
    key_path: &Path,
    client_ca: Option<&Path>,
    client_certificates: ClientCertificates,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certs(cert)?;
    let key = key(key_path)?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| TlsError::Pem {
                    path: ca.display().to_string(),
                    message: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier = match client_certificates {
                ClientCertificates::Optional => verifier.allow_unauthenticated(),
                ClientCertificates::Required => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The user of a verified client certificate, as the kubelet's x509 authenticator reads
/// it: user = the subject's CN, groups = its O values. A certificate without a CN
/// identifies nobody.
pub fn subject_identity(cert: &CertificateDer<'_>) -> ConnectionIdentity {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return ConnectionIdentity::default();
    };
    let subject = parsed.subject();
    let certificate_cn = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .map(str::to_owned);
    let certificate_organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    ConnectionIdentity {
        certificate_cn,
        certificate_organizations,
    }
}
