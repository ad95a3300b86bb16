//! The CSR signing controller (kube-controller-manager's `csrsigning`): approved
//! CertificateSigningRequests for the built-in signers get `status.certificate`, signed by
//! the cluster CA, valid for `spec.expirationSeconds` (at least 600 s, checked on create)
//! or one year, backdated 5 minutes. A request that cannot be signed gets a `Failed` condition.

use base64::Engine;
use rcgen::{
    CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{Value, json};

use super::clock;
use super::cluster::{Cluster, meta_str};

/// Signers this controller issues for.
pub const SIGNERS: &[&str] = &[
    "kubernetes.io/kube-apiserver-client",
    "kubernetes.io/kube-apiserver-client-kubelet",
    "kubernetes.io/kubelet-serving",
];

/// The cluster CA, able to sign.
#[derive(Debug, Clone)]
pub struct ClusterSigner {
    ca_pem: String,
    ca_key_pem: String,
}

fn has_condition(csr: &Value, t: &str) -> bool {
    csr.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(t)
                    && c.get("status").and_then(Value::as_str) != Some("False")
            })
        })
}

impl ClusterSigner {
    /// A signer for the CA with this certificate and key (PEM).
    pub fn new(ca_pem: String, ca_key_pem: String) -> Self {
        Self { ca_pem, ca_key_pem }
    }

    /// Signs a CSR object's request; returns the certificate PEM.
    pub fn sign(&self, csr: &Value) -> Result<String, String> {
        let b64 = csr
            .pointer("/spec/request")
            .and_then(Value::as_str)
            .unwrap_or("");
        let pem = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("spec.request is not base64: {e}"))?;
        let pem = String::from_utf8(pem).map_err(|_| "spec.request is not PEM".to_string())?;
        let mut req = CertificateSigningRequestParams::from_pem(&pem)
            .map_err(|e| format!("invalid certificate request: {e}"))?;
        let usages: Vec<&str> = csr
            .pointer("/spec/usages")
            .and_then(Value::as_array)
            .map(|u| u.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let signer = csr
            .pointer("/spec/signerName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if signer.contains("client") && usages.contains(&"server auth") {
            return Err(format!(
                "invalid usage for client certificate: server auth (signer {signer})"
            ));
        }
        let p = &mut req.params;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = usages
            .iter()
            .filter_map(|u| match *u {
                "digital signature" => Some(KeyUsagePurpose::DigitalSignature),
                "key encipherment" => Some(KeyUsagePurpose::KeyEncipherment),
                "content commitment" => Some(KeyUsagePurpose::ContentCommitment),
                "data encipherment" => Some(KeyUsagePurpose::DataEncipherment),
                "key agreement" => Some(KeyUsagePurpose::KeyAgreement),
                _ => None,
            })
            .collect();
        p.extended_key_usages = usages
            .iter()
            .filter_map(|u| match *u {
                "client auth" => Some(ExtendedKeyUsagePurpose::ClientAuth),
                "server auth" => Some(ExtendedKeyUsagePurpose::ServerAuth),
                "code signing" => Some(ExtendedKeyUsagePurpose::CodeSigning),
                "email protection" => Some(ExtendedKeyUsagePurpose::EmailProtection),
                "timestamping" => Some(ExtendedKeyUsagePurpose::TimeStamping),
                "ocsp signing" => Some(ExtendedKeyUsagePurpose::OcspSigning),
                _ => None,
            })
            .collect();
        let secs = csr
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(365 * 24 * 3600);
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = now + time::Duration::seconds(secs);
        let key = KeyPair::from_pem(&self.ca_key_pem).map_err(|e| e.to_string())?;
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, key).map_err(|e| e.to_string())?;
        let cert = req.signed_by(&issuer).map_err(|e| e.to_string())?;
        Ok(cert.pem())
    }

    /// One pass: signs every approved, unsigned CSR of a built-in signer.
    pub fn run_once(&self, cluster: &Cluster) {
        let csrs = cluster.lock().list("certificatesigningrequests", None);
        for csr in csrs {
            let signer = csr
                .pointer("/spec/signerName")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !SIGNERS.contains(&signer)
                || !has_condition(&csr, "Approved")
                || has_condition(&csr, "Denied")
                || has_condition(&csr, "Failed")
                || csr
                    .pointer("/status/certificate")
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.is_empty())
            {
                continue;
            }
            let name = meta_str(&csr, "name").to_string();
            let result = self.sign(&csr);
            cluster.write_status("certificatesigningrequests", "", &name, |c| {
                if c.get("status").is_none_or(|s| !s.is_object()) {
                    c["status"] = json!({});
                }
                match &result {
                    Ok(pem) => {
                        c["status"]["certificate"] =
                            json!(base64::engine::general_purpose::STANDARD.encode(pem.as_bytes()));
                    }
                    Err(why) => {
                        let now = clock::now();
                        let cond = json!({"type": "Failed", "status": "True", "reason": "SignerValidationFailure",
                            "message": why, "lastUpdateTime": now, "lastTransitionTime": now});
                        match c["status"].get_mut("conditions").and_then(Value::as_array_mut) {
                            Some(cs) => cs.push(cond),
                            None => c["status"]["conditions"] = json!([cond]),
                        }
                    }
                }
            });
        }
    }
}
