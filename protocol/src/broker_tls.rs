//! The TLS side of a connection to the broker, the same for gateway and agent: a rustls
//! client configuration (ring provider) from PEM files, the CA that signed the broker's
//! certificate and, for brokers that require one, the client's certificate and key.
//! Compiled with the `broker-tls` feature.

use std::path::Path;
use std::sync::Arc;

/// The PEM files of a broker connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrokerTlsFiles<'a> {
    /// The CA that signed the broker's certificate. Without it no broker is trusted.
    pub ca: Option<&'a Path>,
    /// The client's certificate chain and private key (PKCS#8, RSA or SEC1).
    pub client: Option<(&'a Path, &'a Path)>,
}

/// Why the TLS configuration cannot be built; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum BrokerTlsError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} {path} is not valid PEM: {message}")]
    Pem {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("the key file {0} holds no private key")]
    NoPrivateKey(String),
    #[error("invalid TLS material for the broker connection: {0}")]
    Config(String),
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, BrokerTlsError> {
    std::fs::read(path).map_err(|source| BrokerTlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path, e: impl std::fmt::Display) -> BrokerTlsError {
    BrokerTlsError::Pem {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// The client configuration for `files`.
pub fn client_config(files: &BrokerTlsFiles<'_>) -> Result<rustls::ClientConfig, BrokerTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = files.ca {
        let pem = read("CA file", ca)?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| pem_error("CA file", ca, e))?;
            roots.add(cert).map_err(|e| pem_error("CA file", ca, e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerTlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    match files.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let cert_pem = read("certificate file", cert)?;
            let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error("certificate file", cert, e))?;
            let key_pem = read("key file", key)?;
            let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
                .map_err(|e| pem_error("key file", key, e))?
                .ok_or_else(|| BrokerTlsError::NoPrivateKey(key.display().to_string()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| BrokerTlsError::Config(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests;
