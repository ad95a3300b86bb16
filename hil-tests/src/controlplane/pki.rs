//! The control plane's TLS material and keys, like kubeadm's `/etc/kubernetes/pki`:
//! a cluster CA (serving certificate, admin client certificate, CSR signing), a separate
//! CA for the client certificate kube-apiserver presents to kubelets, and the service
//! account signing key.

use std::path::{Path, PathBuf};

use rcgen::{CertifiedIssuer, ExtendedKeyUsagePurpose, KeyPair};

use crate::apiserver::certs::{CertError, apiserver_sans, ca_params, leaf};
pub use crate::apiserver::rbac::{
    KUBELET_API_ADMIN_ROLE, KUBELET_API_CLIENT_BINDING, KUBELET_API_CLIENT_USER,
};

/// Common name of kube-apiserver's front proxy client certificate.
pub const FRONT_PROXY_CLIENT: &str = "front-proxy-client";

/// Files under the control plane's `pki/` directory.
#[derive(Debug, Clone)]
pub struct ControlPlanePki {
    pub dir: PathBuf,
    /// Cluster CA certificate and key (also signs approved CSRs).
    pub ca_crt: PathBuf,
    pub ca_key: PathBuf,
    pub ca_pem: String,
    pub apiserver_crt: PathBuf,
    pub apiserver_key: PathBuf,
    /// `system:masters` client certificate for the admin kubeconfig.
    pub admin_crt_pem: String,
    pub admin_key_pem: String,
    /// The CA a kubelet (here: the gateway's kubelet API) trusts for API server clients.
    pub kubelet_client_ca_crt: PathBuf,
    pub kubelet_client_crt: PathBuf,
    pub kubelet_client_key: PathBuf,
    /// The aggregation layer's front proxy: the CA extension API servers (metrics-server)
    /// trust for requests kube-apiserver proxies, and kube-apiserver's client
    /// certificate (`front-proxy-client`), as kubeadm makes them.
    pub front_proxy_ca_crt: PathBuf,
    pub front_proxy_client_crt: PathBuf,
    pub front_proxy_client_key: PathBuf,
    /// Service account token signing key (ECDSA P-256, PKCS#8) and its public key.
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

fn write(path: &Path, contents: &str) -> Result<(), CertError> {
    std::fs::write(path, contents).map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })
}

impl ControlPlanePki {
    /// Generates everything into `dir` (created if missing).
    pub fn generate(dir: &Path) -> Result<Self, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let ca_key = KeyPair::generate()?;
        let ca_key_pem = ca_key.serialize_pem();
        let ca = CertifiedIssuer::self_signed(ca_params("edge-hil-controlplane-ca")?, ca_key)?;
        let serving = leaf(
            "kube-apiserver",
            None,
            apiserver_sans()?,
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        )?;
        let admin = leaf(
            "kubernetes-admin",
            Some("system:masters"),
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca,
        )?;
        let kc_ca = CertifiedIssuer::self_signed(
            ca_params("edge-hil-kubelet-client-ca")?,
            KeyPair::generate()?,
        )?;
        // kubeadm's apiserver-kubelet-client identity (since v1.37 in no group: RBAC
        // grants it system:kubelet-api-admin, see `KUBELET_API_CLIENT_BINDING`).
        let kubelet_client = leaf(
            KUBELET_API_CLIENT_USER,
            None,
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
            &kc_ca,
        )?;
        let front_proxy_ca = CertifiedIssuer::self_signed(
            ca_params("edge-hil-front-proxy-ca")?,
            KeyPair::generate()?,
        )?;
        let front_proxy_client = leaf(
            FRONT_PROXY_CLIENT,
            None,
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
            &front_proxy_ca,
        )?;
        let sa_key = KeyPair::generate()?;

        let pki = Self {
            dir: dir.to_path_buf(),
            ca_crt: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            ca_pem: ca.pem(),
            apiserver_crt: dir.join("apiserver.crt"),
            apiserver_key: dir.join("apiserver.key"),
            admin_crt_pem: admin.cert_pem.clone(),
            admin_key_pem: admin.key_pem.clone(),
            kubelet_client_ca_crt: dir.join("kubelet-client-ca.crt"),
            kubelet_client_crt: dir.join("apiserver-kubelet-client.crt"),
            kubelet_client_key: dir.join("apiserver-kubelet-client.key"),
            front_proxy_ca_crt: dir.join("front-proxy-ca.crt"),
            front_proxy_client_crt: dir.join("front-proxy-client.crt"),
            front_proxy_client_key: dir.join("front-proxy-client.key"),
            service_account_key: dir.join("sa.key"),
            service_account_pub: dir.join("sa.pub"),
        };
        write(&pki.ca_crt, &pki.ca_pem)?;
        write(&pki.ca_key, &ca_key_pem)?;
        write(&pki.apiserver_crt, &serving.cert_pem)?;
        write(&pki.apiserver_key, &serving.key_pem)?;
        write(&pki.kubelet_client_ca_crt, &kc_ca.pem())?;
        write(&pki.kubelet_client_crt, &kubelet_client.cert_pem)?;
        write(&pki.kubelet_client_key, &kubelet_client.key_pem)?;
        write(&pki.front_proxy_ca_crt, &front_proxy_ca.pem())?;
        write(&pki.front_proxy_client_crt, &front_proxy_client.cert_pem)?;
        write(&pki.front_proxy_client_key, &front_proxy_client.key_pem)?;
        write(&pki.service_account_key, &sa_key.serialize_pem())?;
        write(&pki.service_account_pub, &sa_key.public_key_pem())?;
        Ok(pki)
    }
}
