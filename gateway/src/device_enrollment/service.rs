//! The enrollment task: each bootstrap request from the MQTT link is checked (CSR,
//! revocation, bootstrap token, duplicate id), becomes a Kubernetes
//! CertificateSigningRequest, is approved by a rule or waits for
//! `kubectl certificate approve`, and once approved is signed with the fleet CA; the
//! device gets its certificate, "pending", or a refusal that says what to do.
//! Pending requests are looked at again every [`POLL_INTERVAL`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use edge_protocol::DeviceId;
use edge_protocol::enrollment::{
    CertificateReply, CertificateRequest, RefusalReason, bootstrap_response_topic,
    parse_bootstrap_request_topic, parse_renewal_request_topic, renewal_response_topic,
};
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Event, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::bootstrap_token::{self, PresentedToken, TokenCheck};
use super::csr_object::{self, CsrState};
use super::{EnrollmentSettings, approval_rule, csr_check};
use crate::enrollment::fleet_ca::key_id_of;
use crate::enrollment::{EnrollmentLayout, FleetCa, IssuedCertificates, RevocationList};

/// How often pending requests are looked at again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A publish on a bootstrap topic, as the MQTT link received it.
#[derive(Debug, Clone)]
pub struct BootstrapPublish {
    pub topic: String,
    pub payload: Bytes,
}

/// A request on its way through approval and signing.
#[derive(Debug, Clone)]
struct Pending {
    csr_name: String,
    token_id: String,
    /// A renewal over the device's own identity (approved without a rule).
    renewal: bool,
    reply_topic: String,
}

/// What a request comes to: the reply and whether it stays pending.
#[derive(Debug)]
enum Outcome {
    Reply(CertificateReply),
    Pending(CertificateReply, Box<Pending>),
}

fn refused(reason: RefusalReason, message: impl Into<String>) -> Outcome {
    Outcome::Reply(CertificateReply::Refused {
        reason,
        message: message.into(),
    })
}

/// Runs until `token` is cancelled.
pub async fn run(
    settings: EnrollmentSettings,
    client: kube::Client,
    mqtt: AsyncClient,
    mut requests: mpsc::Receiver<BootstrapPublish>,
    token: CancellationToken,
) {
    let service = Service {
        layout: EnrollmentLayout::new(&settings.store_dir),
        settings,
        csrs: Api::all(client.clone()),
        client,
    };
    let mut pending: BTreeMap<DeviceId, Pending> = BTreeMap::new();
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            publish = requests.recv() => {
                let Some(publish) = publish else { break };
                let Some((id, reply_topic, outcome)) = service.on_publish(&publish).await else { continue };
                service.settle(&mqtt, &mut pending, id, &reply_topic, outcome).await;
            }
            _ = poll.tick(), if !pending.is_empty() => {
                let waiting: Vec<(DeviceId, Pending)> =
                    pending.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                for (id, p) in waiting {
                    let reply_topic = p.reply_topic.clone();
                    let outcome = service.advance(&id, p).await;
                    if !matches!(outcome, Outcome::Pending(..)) {
                        service.settle(&mqtt, &mut pending, id, &reply_topic, outcome).await;
                    }
                }
            }
        }
    }
}

struct Service {
    settings: EnrollmentSettings,
    layout: EnrollmentLayout,
    csrs: Api<CertificateSigningRequest>,
    client: kube::Client,
}

impl Service {
    async fn settle(
        &self,
        mqtt: &AsyncClient,
        pending: &mut BTreeMap<DeviceId, Pending>,
        id: DeviceId,
        reply_topic: &str,
        outcome: Outcome,
    ) {
        let reply = match outcome {
            Outcome::Pending(reply, p) => {
                pending.insert(id.clone(), *p);
                reply
            }
            Outcome::Reply(reply) => {
                pending.remove(&id);
                reply
            }
        };
        if let CertificateReply::Refused { reason, message } = &reply {
            warn!(device = %id, ?reason, "enrollment refused: {message}");
        }
        if let Err(e) = mqtt
            .publish(reply_topic, QoS::AtLeastOnce, false, reply.encode())
            .await
        {
            warn!(device = %id, error = %e, "cannot send the enrollment reply");
        }
    }

    async fn on_publish(&self, publish: &BootstrapPublish) -> Option<(DeviceId, String, Outcome)> {
        let (id, renewal) = match parse_renewal_request_topic(&publish.topic) {
            Some(id) => (id, true),
            None => match parse_bootstrap_request_topic(&publish.topic) {
                Ok(id) => (id, false),
                Err(e) => {
                    warn!(error = %e, "ignoring a publish on a bootstrap topic");
                    return None;
                }
            },
        };
        let reply_topic = if renewal {
            renewal_response_topic(&id)
        } else {
            bootstrap_response_topic(&id)
        };
        let request = match CertificateRequest::decode(&publish.payload) {
            Ok(r) if r.device_id == id => r,
            Ok(r) => {
                let message = format!("the request names {} on the topic of {id}", r.device_id);
                let outcome = refused(RefusalReason::InvalidRequest, message);
                return Some((id, reply_topic, outcome));
            }
            Err(e) => {
                let outcome = refused(RefusalReason::InvalidRequest, e.to_string());
                return Some((id, reply_topic, outcome));
            }
        };
        let outcome = if renewal {
            self.on_renewal(&request, reply_topic.clone()).await
        } else {
            self.on_request(&request, reply_topic.clone()).await
        };
        Some((id, reply_topic, outcome))
    }

    /// The CSR checked for `id`, unless the id is revoked.
    fn checked(&self, id: &DeviceId, csr_pem: &str) -> Result<csr_check::CheckedCsr, Outcome> {
        let checked = csr_check::check(id, csr_pem)
            .map_err(|e| refused(RefusalReason::InvalidRequest, e.to_string()))?;
        match RevocationList::load(&self.settings.store_dir) {
            Ok(revoked) if revoked.contains(id) => Err(refused(
                RefusalReason::Revoked,
                format!(
                    "{id} was revoked or retired; flash the board with another id template or serial"
                ),
            )),
            Ok(_) => Ok(checked),
            Err(e) => Err(refused(RefusalReason::Unavailable, e.to_string())),
        }
    }

    async fn on_request(&self, request: &CertificateRequest, reply_topic: String) -> Outcome {
        let id = &request.device_id;
        let checked = match self.checked(id, &request.csr_pem) {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let Some(presented) = PresentedToken::parse(&request.bootstrap_token) else {
            return refused(
                RefusalReason::TokenInvalid,
                "the bootstrap token is malformed",
            );
        };
        match self.check_token(&presented).await {
            Ok(TokenCheck::Valid) => {}
            Ok(TokenCheck::Invalid(why)) => {
                warn!(device = %id, token_id = %presented.id, "bootstrap token refused: {why}");
                return refused(
                    RefusalReason::TokenInvalid,
                    format!(
                        "bootstrap token {} is not valid (deleted or never created?); create one with `edge-gateway bootstrap-token` and update the bootstrap file",
                        presented.id
                    ),
                );
            }
            Ok(TokenCheck::Expired { expiration }) => {
                return refused(
                    RefusalReason::TokenExpired,
                    format!(
                        "bootstrap token {} expired at {expiration}; create a new token and update the bootstrap file",
                        presented.id
                    ),
                );
            }
            Err(e) => return refused(RefusalReason::Unavailable, e.to_string()),
        }
        if let Some(message) = self.duplicate(id, &checked.spki_der) {
            self.duplicate_event(id, &message).await;
            return refused(RefusalReason::DuplicateId, message);
        }
        self.submit(request, &checked, presented.id, false, reply_topic)
            .await
    }

    /// Creates the request's CertificateSigningRequest (unless it exists) and takes it
    /// as far as it goes.
    async fn submit(
        &self,
        request: &CertificateRequest,
        checked: &csr_check::CheckedCsr,
        token_id: String,
        renewal: bool,
        reply_topic: String,
    ) -> Outcome {
        let csr_name = match self.create_csr(request, checked, &token_id).await {
            Ok(name) => name,
            Err(outcome) => return outcome,
        };
        let pending = Pending {
            csr_name,
            token_id,
            renewal,
            reply_topic,
        };
        self.advance(&request.device_id, pending).await
    }

    /// Creates the CertificateSigningRequest of `request` unless it exists; its name.
    async fn create_csr(
        &self,
        request: &CertificateRequest,
        checked: &csr_check::CheckedCsr,
        token_id: &str,
    ) -> Result<String, Outcome> {
        let id = &request.device_id;
        let key_id = key_id_of(&checked.request.public_key);
        let name = csr_object::csr_name(id, &key_id);
        let existing = self
            .csrs
            .get_opt(&name)
            .await
            .map_err(|e| refused(RefusalReason::Unavailable, e.to_string()))?;
        if existing.is_none() {
            // The API server refuses less than 600 s; a shorter --enrollment-certificate-validity
            // still wins when signing (the shorter of the two).
            let expiration = i32::try_from(self.settings.certificate_validity.as_secs())
                .unwrap_or(i32::MAX)
                .max(csr_object::MIN_EXPIRATION_SECONDS);
            let object = csr_object::build(
                &name,
                id,
                token_id,
                request.id_source.as_deref(),
                &request.csr_pem,
                expiration,
            );
            match self.csrs.create(&PostParams::default(), &object).await {
                Ok(_) => {
                    info!(device = %id, csr = %name, %token_id, "CertificateSigningRequest created")
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(refused(RefusalReason::Unavailable, e.to_string())),
            }
        }
        Ok(name)
    }

    async fn check_token(&self, presented: &PresentedToken) -> Result<TokenCheck, kube::Error> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let Some(secret) = secrets.get_opt(&presented.secret_name()).await? else {
            return Ok(TokenCheck::Invalid(
                "no such Secret (revoked or never created)",
            ));
        };
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in secret.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        Ok(bootstrap_token::check(
            presented,
            secret.type_.as_deref(),
            &data,
            jiff::Timestamp::now().as_second(),
        ))
    }

    /// A message when another key holds a valid certificate for `id`.
    fn duplicate(&self, id: &DeviceId, spki_der: &[u8]) -> Option<String> {
        let path = IssuedCertificates::new(&self.layout).current(id)?;
        let pem = std::fs::read(&path).ok()?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
        let cert = pem.parse_x509().ok()?;
        let valid = cert.validity().not_after.timestamp() > jiff::Timestamp::now().as_second();
        (valid && cert.public_key().raw != spki_der).then(|| {
            format!(
                "device id {id} already has a valid certificate for another key (until {}): a second board \
                 with the same id (a cloned SD card?) is refused. If the board was reflashed, revoke the \
                 old identity (`edge-gateway revoke {id}` retires the id) or wait until it expires",
                cert.validity().not_after
            )
        })
    }

    async fn duplicate_event(&self, id: &DeviceId, message: &str) {
        let now = Time(jiff::Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{id}.")),
                namespace: Some("default".to_owned()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Node".to_owned()),
                name: Some(id.to_string()),
                ..Default::default()
            },
            reason: Some("DuplicateDeviceId".to_owned()),
            message: Some(message.to_owned()),
            type_: Some("Warning".to_owned()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            source: Some(k8s_openapi::api::core::v1::EventSource {
                component: Some("edge-gateway".to_owned()),
                host: None,
            }),
            ..Default::default()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        if let Err(e) = events.create(&PostParams::default(), &event).await {
            warn!(device = %id, error = %e, "cannot record the DuplicateDeviceId event");
        }
    }

    /// Looks at the CSR again: approves it by rule, signs it once approved, or reports
    /// where it stands.
    async fn advance(&self, id: &DeviceId, p: Pending) -> Outcome {
        let unavailable = |e: kube::Error| refused(RefusalReason::Unavailable, e.to_string());
        let csr = match self.csrs.get_opt(&p.csr_name).await {
            Ok(Some(csr)) => csr,
            Ok(None) => {
                return refused(
                    RefusalReason::Denied,
                    format!("the CertificateSigningRequest {} was deleted", p.csr_name),
                );
            }
            Err(e) => return unavailable(e),
        };
        match csr_object::state(&csr) {
            CsrState::Pending => {
                let approval = if p.renewal {
                    Some((
                        csr_object::RENEWAL_REASON,
                        format!(
                            "edge-gateway auto-approved: renewal of the valid certificate of {id} over its own identity"
                        ),
                    ))
                } else {
                    approval_rule::auto_approved(
                        &self.settings.auto_approve,
                        &p.token_id,
                        id.as_str(),
                    )
                    .map(|rule| {
                        (
                            csr_object::AUTO_APPROVE_REASON,
                            format!(
                                "edge-gateway auto-approved: token {} and id pattern {}",
                                rule.token_id, rule.id_pattern
                            ),
                        )
                    })
                };
                if let Some((reason, message)) = approval {
                    let body = csr_object::approved(csr, reason, &message);
                    if let Err(e) = self
                        .csrs
                        .replace_subresource("approval", &p.csr_name, &PostParams::default(), &body)
                        .await
                    {
                        return unavailable(e);
                    }
                    info!(device = %id, csr = %p.csr_name, "{message}");
                    return Box::pin(self.advance(id, p)).await;
                }
                let reply = CertificateReply::Pending {
                    request_name: p.csr_name.clone(),
                    message: format!(
                        "CertificateSigningRequest {} waits for approval",
                        p.csr_name
                    ),
                };
                Outcome::Pending(reply, Box::new(p))
            }
            CsrState::Approved => match self.sign(id, &csr, &p.csr_name).await {
                Ok(cert_pem) => self.issued(p.csr_name, cert_pem),
                Err(outcome) => outcome,
            },
            // A request with the key of an earlier one names the same object: never hand
            // back a certificate that has ended (older agents re-enroll with the key
            // they kept once their certificate expired).
            CsrState::Issued(cert_pem)
                if csr_object::certificate_ended(&cert_pem, jiff::Timestamp::now().as_second()) =>
            {
                refused(
                    RefusalReason::Denied,
                    format!(
                        "the certificate CertificateSigningRequest {name} carried for this key has expired; \
                         the device must request one for a new key (an older agent keeps its key: delete the \
                         request with `kubectl delete csr {name}` and restart the agent)",
                        name = p.csr_name
                    ),
                )
            }
            CsrState::Issued(cert_pem) => self.issued(p.csr_name, cert_pem),
            CsrState::Denied { reason, message } => refused(
                RefusalReason::Denied,
                format!(
                    "CertificateSigningRequest {} was denied ({reason}: {message})",
                    p.csr_name
                ),
            ),
            CsrState::Failed { reason, message } => refused(
                RefusalReason::Denied,
                format!(
                    "CertificateSigningRequest {} failed ({reason}: {message})",
                    p.csr_name
                ),
            ),
        }
    }

    fn issued(&self, request_name: String, certificate_pem: String) -> Outcome {
        // The trust bundle: during a CA rotation the device trusts both CAs from now on.
        match crate::enrollment::ca_rotation::trust_bundle_pem(&self.layout) {
            Ok(ca_pem) => Outcome::Reply(CertificateReply::Issued {
                request_name,
                certificate_pem,
                ca_pem,
            }),
            Err(e) => refused(RefusalReason::Unavailable, e.to_string()),
        }
    }

    /// Signs an approved CSR, writes `status.certificate` and records the certificate.
    async fn sign(
        &self,
        id: &DeviceId,
        csr: &CertificateSigningRequest,
        name: &str,
    ) -> Result<String, Outcome> {
        let unavailable = |m: String| refused(RefusalReason::Unavailable, m);
        let pem = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
        let checked = csr_check::check(id, &pem)
            .map_err(|e| refused(RefusalReason::InvalidRequest, e.to_string()))?;
        let ca = FleetCa::load(&self.layout).map_err(|e| unavailable(e.to_string()))?;
        let requested = csr
            .spec
            .expiration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs);
        let validity = requested
            .map(|r| r.min(self.settings.certificate_validity))
            .unwrap_or(self.settings.certificate_validity);
        let (cert_pem, _serial) = ca
            .sign_device_key(id, &checked.request.public_key, validity)
            .map_err(|e| unavailable(e.to_string()))?;
        let patch = serde_json::json!({ "status": { "certificate": k8s_openapi::ByteString(cert_pem.as_bytes().to_vec()) } });
        self.csrs
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        IssuedCertificates::new(&self.layout)
            .record(id, &cert_pem)
            .map_err(|e| unavailable(e.to_string()))?;
        info!(device = %id, csr = %name, validity = ?validity, "device certificate signed");
        Ok(cert_pem)
    }
}

mod renewal;
