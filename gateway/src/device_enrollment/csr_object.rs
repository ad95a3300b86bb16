//! The Kubernetes `certificates.k8s.io/v1` CertificateSigningRequest of a device's
//! request: its name (stable per device id and key, so a repeated request finds it), the
//! object, and its state as the approval conditions and `status.certificate` say. Pure.

use std::collections::BTreeMap;

use edge_protocol::DeviceId;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition, CertificateSigningRequestSpec,
    CertificateSigningRequestStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The signer only this gateway serves.
pub const SIGNER_NAME: &str = "edge-kube.io/device-client";
pub const DEVICE_ID_LABEL: &str = "edge-kube.io/device-id";
pub const TOKEN_ID_ANNOTATION: &str = "edge-kube.io/bootstrap-token-id";
pub const ID_SOURCE_ANNOTATION: &str = "edge-kube.io/device-id-source";
/// The reason of the gateway's own approvals (as csrapproving's `AutoApproved`).
pub const AUTO_APPROVE_REASON: &str = "EdgeAutoApproved";
/// The shortest `spec.expirationSeconds` the API server accepts.
pub const MIN_EXPIRATION_SECONDS: i32 = 600;
/// The reason of approved renewals over a device's own valid identity.
pub const RENEWAL_REASON: &str = "EdgeRenewalApproved";

/// `edge-<device id>-<first 10 hex digits of the key's SHA-256 identifier>`, cut so the
/// name stays a valid object name.
pub fn csr_name(id: &DeviceId, key_id: &[u8]) -> String {
    let hex: String = key_id.iter().take(5).map(|b| format!("{b:02x}")).collect();
    let mut device = id.as_str().to_owned();
    device.truncate(253 - "edge--".len() - hex.len());
    format!("edge-{}-{hex}", device.trim_end_matches(['-', '.']))
}

/// The object the gateway creates for a device's request.
pub fn build(
    name: &str,
    id: &DeviceId,
    token_id: &str,
    id_source: Option<&str>,
    csr_pem: &str,
    expiration_seconds: i32,
) -> CertificateSigningRequest {
    let mut annotations = BTreeMap::from([(TOKEN_ID_ANNOTATION.to_owned(), token_id.to_owned())]);
    if let Some(source) = id_source {
        annotations.insert(ID_SOURCE_ANNOTATION.to_owned(), source.to_owned());
    }
    CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                DEVICE_ID_LABEL.to_owned(),
                id.to_string(),
            )])),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.as_bytes().to_vec()),
            signer_name: SIGNER_NAME.to_owned(),
            usages: Some(vec![
                "digital signature".to_owned(),
                "client auth".to_owned(),
            ]),
            expiration_seconds: Some(expiration_seconds),
            ..Default::default()
        },
        status: None,
    }
}

/// Where a CSR stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsrState {
    Pending,
    /// Approved, not signed yet.
    Approved,
    /// Signed: the certificate (PEM).
    Issued(String),
    Denied {
        reason: String,
        message: String,
    },
    Failed {
        reason: String,
        message: String,
    },
}

fn condition<'a>(
    status: &'a CertificateSigningRequestStatus,
    ty: &str,
) -> Option<&'a CertificateSigningRequestCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == ty && c.status == "True")
}

/// The state of `csr`.
pub fn state(csr: &CertificateSigningRequest) -> CsrState {
    let Some(status) = &csr.status else {
        return CsrState::Pending;
    };
    let text = |c: &CertificateSigningRequestCondition| {
        (
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    };
    if let Some(c) = condition(status, "Denied") {
        let (reason, message) = text(c);
        return CsrState::Denied { reason, message };
    }
    if let Some(c) = condition(status, "Failed") {
        let (reason, message) = text(c);
        return CsrState::Failed { reason, message };
    }
    if condition(status, "Approved").is_some() {
        return match &status.certificate {
            Some(cert) if !cert.0.is_empty() => {
                CsrState::Issued(String::from_utf8_lossy(&cert.0).into_owned())
            }
            _ => CsrState::Approved,
        };
    }
    CsrState::Pending
}

/// The object to PUT on the `approval` subresource to approve `csr` (its conditions plus
/// `Approved`).
pub fn approved(
    mut csr: CertificateSigningRequest,
    reason: &str,
    message: &str,
) -> CertificateSigningRequest {
    let status = csr.status.get_or_insert_with(Default::default);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(CertificateSigningRequestCondition {
            type_: "Approved".to_owned(),
            status: "True".to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            ..Default::default()
        });
    csr
}

/// Whether the certificate in `cert_pem` (the CSR's `status.certificate`) ended at or
/// before `now` (Unix seconds); an unreadable one counts as ended.
pub fn certificate_ended(cert_pem: &str, now: i64) -> bool {
    x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .ok()
        .and_then(|(_, pem)| {
            pem.parse_x509()
                .ok()
                .map(|c| c.validity().not_after.timestamp())
        })
        .is_none_or(|not_after| not_after <= now)
}

#[cfg(test)]
mod tests;
