//! What a device may ask for: a PKCS#10 request whose signature verifies, whose subject
//! is exactly `CN=<the requested device id>` (an `O` is ignored), with no subject
//! alternative names, and whose requested usages, if any, are client authentication
//! (extended) and digital signature / key encipherment (key usage). The certificate the
//! gateway signs is built from the id and the public key only, so nothing else of the
//! request reaches it. Pure.

use edge_protocol::DeviceId;
use rcgen::{
    CertificateSigningRequestParams, DnType, DnValue, ExtendedKeyUsagePurpose, KeyUsagePurpose,
    PublicKeyData as _,
};

/// Why a CSR is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrRefusal {
    #[error("the request is not a valid PKCS#10 CSR with a verifiable signature: {0}")]
    Unparseable(String),
    #[error("the request's CN is {found:?}, not the requested device id {expected:?}")]
    WrongCommonName { expected: String, found: String },
    #[error("the request's subject has more than a CN (and O): {0}")]
    ExtraSubject(String),
    #[error("the request asks for subject alternative names; a device certificate has none")]
    SubjectAltNames,
    #[error("the request asks for extended key usages other than client auth: {0}")]
    ExtendedKeyUsage(String),
    #[error(
        "the request asks for key usages other than digital signature and key encipherment: {0}"
    )]
    KeyUsage(String),
}

/// A request that passed: its public key (SubjectPublicKeyInfo DER) and the parsed
/// request to sign.
#[derive(Debug)]
pub struct CheckedCsr {
    pub spki_der: Vec<u8>,
    pub request: CertificateSigningRequestParams,
}

fn text(value: &DnValue) -> String {
    match value {
        DnValue::Utf8String(s) => s.clone(),
        DnValue::PrintableString(s) => s.as_str().to_owned(),
        DnValue::Ia5String(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

/// Checks `csr_pem` for `id`.
pub fn check(id: &DeviceId, csr_pem: &str) -> Result<CheckedCsr, CsrRefusal> {
    let request = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| CsrRefusal::Unparseable(e.to_string()))?;
    let params = &request.params;
    let mut cn = None;
    for (ty, value) in params.distinguished_name.iter() {
        match ty {
            DnType::CommonName => cn = Some(text(value)),
            DnType::OrganizationName => {}
            other => return Err(CsrRefusal::ExtraSubject(format!("{other:?}"))),
        }
    }
    let cn = cn.unwrap_or_default();
    if cn != id.as_str() {
        return Err(CsrRefusal::WrongCommonName {
            expected: id.to_string(),
            found: cn,
        });
    }
    if !params.subject_alt_names.is_empty() {
        return Err(CsrRefusal::SubjectAltNames);
    }
    if let Some(eku) = params
        .extended_key_usages
        .iter()
        .find(|u| **u != ExtendedKeyUsagePurpose::ClientAuth)
    {
        return Err(CsrRefusal::ExtendedKeyUsage(format!("{eku:?}")));
    }
    if let Some(ku) = params.key_usages.iter().find(|u| {
        !matches!(
            u,
            KeyUsagePurpose::DigitalSignature | KeyUsagePurpose::KeyEncipherment
        )
    }) {
        return Err(CsrRefusal::KeyUsage(format!("{ku:?}")));
    }
    Ok(CheckedCsr {
        spki_der: request.public_key.subject_public_key_info(),
        request,
    })
}

#[cfg(test)]
mod tests;
