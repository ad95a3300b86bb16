//! TLS material: a cluster CA and the serving certificate signed by it, and a separate
//! CA with the client certificate the emulator presents to kubelets (pods/log proxy).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Errors creating or writing TLS material.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// Certificate generation failed.
    #[error("generating certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing a file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Reading a PEM file failed.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// No client certificate verifier from the given CAs.
    #[error("client certificate verifier: {0}")]
    ClientVerifier(String),
    /// Building the rustls configuration failed.
    #[error("building TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, CertError>;

/// A certificate with its key, in PEM and DER.
#[derive(Debug, Clone)]
pub struct CertAndKey {
    /// Certificate PEM.
    pub cert_pem: String,
    /// PKCS#8 key PEM.
    pub key_pem: String,
    /// Certificate DER.
    pub cert_der: CertificateDer<'static>,
    /// Key DER (PKCS#8).
    pub key_der: Vec<u8>,
}

impl CertAndKey {
    /// The rustls private key.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// All TLS material of one emulator instance, written into its directory.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// Cluster CA certificate PEM (what the kubeconfig trusts).
    pub ca_pem: String,
    /// Cluster CA key PEM (kept in memory; signs approved CSRs).
    pub ca_key_pem: String,
    /// Serving certificate.
    pub serving: CertAndKey,
    /// CA of the kubelet client certificate (what kubelets should trust for clients).
    pub kubelet_client_ca_pem: String,
    /// Client certificate presented to kubelets.
    pub kubelet_client: CertAndKey,
    /// Path of `ca.crt`.
    pub ca_path: PathBuf,
    /// Path of `kubelet-client-ca.crt`.
    pub kubelet_client_ca_path: PathBuf,
}

pub(crate) fn ca_params(cn: &str) -> Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

pub(crate) fn leaf(
    cn: &str,
    org: Option<&str>,
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    issuer: &CertifiedIssuer<'_, KeyPair>,
) -> Result<CertAndKey> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    p.distinguished_name = dn;
    p.subject_alt_names = sans;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, issuer)?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().clone(),
        key_der: key.serialize_der(),
    })
}

/// The names a kube-apiserver serving certificate carries (kubeadm's set): loopback,
/// `localhost`, the `kubernetes` Service's DNS names and its first address in the test
/// beds' service range (10.0.0.0/24).
pub(crate) fn apiserver_sans() -> Result<Vec<SanType>> {
    let mut sans = Vec::new();
    for dns in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ] {
        sans.push(SanType::DnsName(dns.try_into()?));
    }
    sans.push(SanType::IpAddress(IpAddr::from([127, 0, 0, 1])));
    sans.push(SanType::IpAddress(IpAddr::from([
        0u16, 0, 0, 0, 0, 0, 0, 1,
    ])));
    sans.push(SanType::IpAddress(IpAddr::from([10, 0, 0, 1])));
    Ok(sans)
}

/// A TLS acceptor for a kubelet stand-in in tests: a self-signed serving certificate for
/// 127.0.0.1 and `localhost`, and a client certificate required from one of the CAs in
/// `client_cas` (PEM files), as a kubelet authenticates the API server's calls.
pub fn kubelet_stand_in_acceptor(client_cas: &[&Path]) -> Result<tokio_rustls::TlsAcceptor> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for ca in client_cas {
        let pem = std::fs::read(ca).map_err(|source| CertError::Read {
            path: ca.to_path_buf(),
            source,
        })?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|source| CertError::Read {
                path: ca.to_path_buf(),
                source,
            })?;
            roots.add(cert)?;
        }
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| CertError::ClientVerifier(e.to_string()))?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
        .self_signed(&key)?;
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn write(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })
}

impl TlsMaterial {
    /// Generates fresh CAs and certificates and writes them into `dir`
    /// (`ca.crt`, `apiserver.crt`, `apiserver.key`, `kubelet-client-ca.crt`,
    /// `kubelet-client.crt`, `kubelet-client.key`).
    pub fn generate(dir: &Path, extra_ip: Option<IpAddr>) -> Result<Self> {
        let ca_key = KeyPair::generate()?;
        let ca_key_pem = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca_params("edge-hil-apiserver-ca")?, ca_key)?;
        let mut sans = apiserver_sans()?;
        if let Some(ip) = extra_ip
            && !ip.is_loopback()
            && !ip.is_unspecified()
        {
            sans.push(SanType::IpAddress(ip));
        }
        let serving = leaf(
            "kube-apiserver",
            None,
            sans,
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        )?;
        let kc_key = KeyPair::generate()?;
        let kc_ca = CertifiedIssuer::self_signed(ca_params("edge-hil-kubelet-client-ca")?, kc_key)?;
        // kubeadm's (v1.37) apiserver-kubelet-client: in no group, allowed the kubelet
        // API by the seeded binding to system:kubelet-api-admin (see `rbac`).
        let kubelet_client = leaf(
            super::rbac::KUBELET_API_CLIENT_USER,
            None,
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
            &kc_ca,
        )?;
        let ca_path = dir.join("ca.crt");
        let kubelet_client_ca_path = dir.join("kubelet-client-ca.crt");
        write(&ca_path, &ca.pem())?;
        write(&dir.join("apiserver.crt"), &serving.cert_pem)?;
        write(&dir.join("apiserver.key"), &serving.key_pem)?;
        write(&kubelet_client_ca_path, &kc_ca.pem())?;
        write(&dir.join("kubelet-client.crt"), &kubelet_client.cert_pem)?;
        write(&dir.join("kubelet-client.key"), &kubelet_client.key_pem)?;
        Ok(Self {
            ca_pem: ca.pem(),
            ca_key_pem,
            serving,
            kubelet_client_ca_pem: kc_ca.pem(),
            kubelet_client,
            ca_path,
            kubelet_client_ca_path,
        })
    }

    /// rustls server configuration (ALPN h2 and http/1.1, no client auth).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.serving.cert_der.clone()],
                self.serving.private_key(),
            )?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}
