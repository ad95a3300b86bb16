//! Zero-touch enrollment (protocol 1.4): a device with no identity yet sends a PKCS#10
//! certificate signing request with a bootstrap token, and the gateway answers with its
//! certificate, "pending approval", or a refusal.
//!
//! A bootstrap client is not a device: it connects with MQTT client id
//! `bootstrap_<device id>` (the underscore makes it an invalid device id, so it never
//! takes over a device's session) and may use only its own two topics (see
//! [`bootstrap_acl_patterns`]):
//!
//! | topic | direction | QoS | payload |
//! |---|---|---|---|
//! | `edge/bootstrap/v1/bootstrap_{device}/request` | device → gateway | 1 | [`CertificateRequest`] |
//! | `edge/bootstrap/v1/bootstrap_{device}/response` | gateway → device | 1 | [`CertificateReply`] |
//!
//! Payloads are `{"protocol":"1.5","kind":"certificateRequest"|"certificateReply","body":{...}}`.
//!
//! Renewal goes over the device's own identity, with the same payloads (the bootstrap
//! token is then empty and ignored):
//!
//! | topic | direction | QoS | payload |
//! |---|---|---|---|
//! | `edge/v1/{device}/up/csr` | device → gateway | 1 | [`CertificateRequest`] |
//! | `edge/v1/{device}/down/certificate` | gateway → device | 1 | [`CertificateReply`] |

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::device_id::DeviceId;
use crate::version::{PROTOCOL_VERSION, ProtocolVersion};

/// First two levels of every bootstrap topic.
pub const BOOTSTRAP_TOPIC_ROOT: &str = "edge/bootstrap/v1";
/// What the MQTT client id of a bootstrap client starts with.
pub const BOOTSTRAP_CLIENT_PREFIX: &str = "bootstrap_";
/// Largest request or reply accepted (a CSR and a certificate chain are a few KiB).
pub const MAX_ENROLLMENT_PAYLOAD_BYTES: usize = 64 * 1024;

/// The MQTT client id a device uses while it enrolls.
pub fn bootstrap_client_id(device: &DeviceId) -> String {
    format!("{BOOTSTRAP_CLIENT_PREFIX}{device}")
}

/// `edge/bootstrap/v1/bootstrap_{device}/request`.
pub fn bootstrap_request_topic(device: &DeviceId) -> String {
    format!(
        "{BOOTSTRAP_TOPIC_ROOT}/{}/request",
        bootstrap_client_id(device)
    )
}

/// `edge/bootstrap/v1/bootstrap_{device}/response`.
pub fn bootstrap_response_topic(device: &DeviceId) -> String {
    format!(
        "{BOOTSTRAP_TOPIC_ROOT}/{}/response",
        bootstrap_client_id(device)
    )
}

/// The filter the gateway subscribes to: every bootstrap request.
pub fn bootstrap_subscription() -> String {
    format!("{BOOTSTRAP_TOPIC_ROOT}/+/request")
}

/// Mosquitto ACL pattern lines (`%c` = the client id) confining a bootstrap client to
/// writing its own request topic and reading its own response topic.
pub fn bootstrap_acl_patterns() -> [String; 2] {
    [
        format!("pattern write {BOOTSTRAP_TOPIC_ROOT}/%c/request"),
        format!("pattern read {BOOTSTRAP_TOPIC_ROOT}/%c/response"),
    ]
}

/// `edge/v1/{device}/up/csr`: an enrolled device asks to renew its certificate over its
/// own identity (the broker's ACL lets only the device itself write there).
pub fn renewal_request_topic(device: &DeviceId) -> String {
    format!("edge/v1/{device}/up/csr")
}

/// `edge/v1/{device}/down/certificate`: the answer to a renewal.
pub fn renewal_response_topic(device: &DeviceId) -> String {
    format!("edge/v1/{device}/down/certificate")
}

/// The device of `edge/v1/{device}/up/csr`, or `None` for any other topic.
pub fn parse_renewal_request_topic(topic: &str) -> Option<DeviceId> {
    let device = topic.strip_prefix("edge/v1/")?.strip_suffix("/up/csr")?;
    if device.contains('/') {
        return None;
    }
    DeviceId::new(device).ok()
}

/// Why a topic is not a bootstrap request topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapTopicError {
    #[error(
        "topic {0:?} is not a bootstrap request topic ({BOOTSTRAP_TOPIC_ROOT}/{BOOTSTRAP_CLIENT_PREFIX}<device id>/request)"
    )]
    NotARequest(String),
    #[error("topic {topic:?} names an invalid device id: {source}")]
    InvalidDevice {
        topic: String,
        #[source]
        source: crate::device_id::DeviceIdError,
    },
}

/// The device id of `edge/bootstrap/v1/bootstrap_{device}/request`.
pub fn parse_bootstrap_request_topic(topic: &str) -> Result<DeviceId, BootstrapTopicError> {
    let not = || BootstrapTopicError::NotARequest(topic.to_owned());
    let rest = topic
        .strip_prefix(BOOTSTRAP_TOPIC_ROOT)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(not)?;
    let client = rest.strip_suffix("/request").ok_or_else(not)?;
    let device = client
        .strip_prefix(BOOTSTRAP_CLIENT_PREFIX)
        .ok_or_else(not)?;
    if device.contains('/') {
        return Err(not());
    }
    DeviceId::new(device).map_err(|source| BootstrapTopicError::InvalidDevice {
        topic: topic.to_owned(),
        source,
    })
}

/// A device asks for a client certificate for `device_id`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequest {
    pub device_id: DeviceId,
    /// `<token-id>.<token-secret>`: the bootstrap token from the bootstrap file.
    pub bootstrap_token: String,
    /// PKCS#10 request (PEM) signed with the device's own key; its subject CN is `device_id`.
    pub csr_pem: String,
    /// Where the id came from on the device (`serial`, `machine-id`, `mac`, `configured`),
    /// for the operator reviewing the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_source: Option<String>,
}

impl fmt::Debug for CertificateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateRequest")
            .field("device_id", &self.device_id)
            .field("bootstrap_token", &"<redacted>")
            .field("id_source", &self.id_source)
            .finish_non_exhaustive()
    }
}

/// Why the gateway refuses a request (the device stops retrying on all but
/// [`RefusalReason::Unavailable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RefusalReason {
    /// No such bootstrap token (never created, or deleted = revoked).
    TokenInvalid,
    /// The token's expiration has passed.
    TokenExpired,
    /// The CSR is malformed or asks for something else than a client certificate for
    /// the requested id.
    InvalidRequest,
    /// Another key already holds a valid certificate for this id (a cloned SD card?).
    DuplicateId,
    /// The id was revoked or retired.
    Revoked,
    /// An operator denied the Kubernetes CertificateSigningRequest.
    Denied,
    /// The gateway cannot serve the request now (Kubernetes unreachable); retry later.
    Unavailable,
}

/// The gateway's answer to a [`CertificateRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum CertificateReply {
    /// The Kubernetes CertificateSigningRequest `request_name` waits for approval.
    #[serde(rename_all = "camelCase")]
    Pending {
        request_name: String,
        message: String,
    },
    /// The signed certificate and the CA bundle the device should trust from now on.
    #[serde(rename_all = "camelCase")]
    Issued {
        request_name: String,
        certificate_pem: String,
        ca_pem: String,
    },
    /// Refused; `message` says what the operator can do.
    #[serde(rename_all = "camelCase")]
    Refused {
        reason: RefusalReason,
        message: String,
    },
}

/// Why an enrollment payload cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentDecodeError {
    #[error("enrollment payload of {0} bytes is over the limit of {MAX_ENROLLMENT_PAYLOAD_BYTES}")]
    TooLarge(usize),
    #[error("enrollment payload is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("enrollment payload has kind {found:?}, expected {expected:?}")]
    WrongKind {
        found: String,
        expected: &'static str,
    },
    #[error("enrollment payload has protocol {0:?}; this build reads 1.x")]
    Version(String),
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    protocol: String,
    kind: String,
    body: T,
}

const REQUEST_KIND: &str = "certificateRequest";
const REPLY_KIND: &str = "certificateReply";

fn encode<T: Serialize>(kind: &str, body: &T) -> Vec<u8> {
    let envelope = Envelope {
        protocol: PROTOCOL_VERSION.to_string(),
        kind: kind.to_owned(),
        body,
    };
    // Plain structs of strings: serialization cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(
    payload: &[u8],
    expected: &'static str,
) -> Result<T, EnrollmentDecodeError> {
    if payload.len() > MAX_ENROLLMENT_PAYLOAD_BYTES {
        return Err(EnrollmentDecodeError::TooLarge(payload.len()));
    }
    let envelope: Envelope<serde_json::Value> = serde_json::from_slice(payload)?;
    match ProtocolVersion::parse(&envelope.protocol) {
        Some(v) if PROTOCOL_VERSION.can_read(v) => {}
        _ => return Err(EnrollmentDecodeError::Version(envelope.protocol)),
    }
    if envelope.kind != expected {
        return Err(EnrollmentDecodeError::WrongKind {
            found: envelope.kind,
            expected,
        });
    }
    Ok(serde_json::from_value(envelope.body)?)
}

impl CertificateRequest {
    pub fn encode(&self) -> Vec<u8> {
        encode(REQUEST_KIND, self)
    }

    pub fn decode(payload: &[u8]) -> Result<Self, EnrollmentDecodeError> {
        decode(payload, REQUEST_KIND)
    }
}

impl CertificateReply {
    pub fn encode(&self) -> Vec<u8> {
        encode(REPLY_KIND, self)
    }

    pub fn decode(payload: &[u8]) -> Result<Self, EnrollmentDecodeError> {
        decode(payload, REPLY_KIND)
    }
}

#[cfg(test)]
mod tests;
