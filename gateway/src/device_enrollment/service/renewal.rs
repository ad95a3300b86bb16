//! Renewal over a device's own identity (`edge/v1/<id>/up/csr`, which only the device
//! itself may write on Mosquitto): approved without a rule when the device holds a valid
//! certificate the gateway issued, as kube-controller-manager approves a kubelet's
//! renewal of its own client certificate; a new CertificateSigningRequest records it.

use edge_protocol::DeviceId;
use edge_protocol::enrollment::{CertificateRequest, RefusalReason};

use super::{Outcome, Service, refused};
use crate::enrollment::IssuedCertificates;

/// The token id annotation of renewals.
pub const RENEWAL_TOKEN_ID: &str = "renewal";

impl Service {
    pub(super) async fn on_renewal(
        &self,
        request: &CertificateRequest,
        reply_topic: String,
    ) -> Outcome {
        let id = &request.device_id;
        let checked = match self.checked(id, &request.csr_pem) {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        if !self.holds_valid_certificate(id) {
            return refused(
                RefusalReason::Denied,
                format!(
                    "{id} holds no valid certificate from this gateway to renew; it enrolls again with its bootstrap file"
                ),
            );
        }
        self.submit(
            request,
            &checked,
            RENEWAL_TOKEN_ID.to_owned(),
            true,
            reply_topic,
        )
        .await
    }

    /// Whether the certificate last issued to `id` is still valid.
    fn holds_valid_certificate(&self, id: &DeviceId) -> bool {
        let Some(path) = IssuedCertificates::new(&self.layout).current(id) else {
            return false;
        };
        let Ok(pem) = std::fs::read(&path) else {
            return false;
        };
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(&pem) else {
            return false;
        };
        pem.parse_x509().is_ok_and(|cert| {
            cert.validity().not_after.timestamp() > jiff::Timestamp::now().as_second()
        })
    }
}
