//! Certificate rotation, as the kubelet's client certificate manager: the renewal is
//! due at a random point between 70 % and 90 % of the certificate's lifetime; the agent
//! then generates a new key, sends a CSR over its current identity on its own topic
//! (`edge/v1/<id>/up/csr`), and swaps key and certificate once the gateway signs it. The
//! schedule is pure; [`renew`] is the exchange.

use std::hash::{BuildHasher as _, Hasher as _};
use std::time::Duration;

use edge_protocol::enrollment::CertificateRequest;
use rcgen::KeyPair;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::device_key::{self, CertificateFacts, IdentityDir};
use super::exchange::{self, ExchangeTimings, ExchangeTopics};
use super::{BootstrapError, DeviceIdentity};
use crate::config::BrokerUrl;

/// How long a renewal may take before the agent goes back to work with its current
/// certificate (and tries again later).
pub const RENEWAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Start and end of the renewal window, as fractions of the lifetime.
pub const WINDOW: (f64, f64) = (0.7, 0.9);

/// When to renew a certificate valid from `not_before` to `not_after` (Unix seconds),
/// `jitter` in `[0, 1]` picking the point in the 70-90 % window.
pub fn renewal_at(not_before: i64, not_after: i64, jitter: f64) -> i64 {
    let lifetime = (not_after - not_before).max(0) as f64;
    let fraction = WINDOW.0 + (WINDOW.1 - WINDOW.0) * jitter.clamp(0.0, 1.0);
    not_before + (lifetime * fraction) as i64
}

/// After a failed renewal: a tenth of the time left, between 5 s and 10 min.
pub fn retry_after(now: i64, not_after: i64) -> Duration {
    let left = (not_after - now).max(0) as u64;
    Duration::from_secs((left / 10).clamp(5, 600))
}

/// A random number in `[0, 1]` (the process's randomly keyed hasher).
pub fn jitter() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Renews `identity`'s certificate with a new key; returns the new certificate's facts.
pub async fn renew(
    identity: &DeviceIdentity,
    dir: &IdentityDir,
    timings: ExchangeTimings,
    shutdown: &CancellationToken,
) -> Result<CertificateFacts, BootstrapError> {
    let id = &identity.device_id;
    let broker = identity
        .broker_urls
        .first()
        .map(|u| BrokerUrl::parse(u))
        .transpose()?
        .ok_or(BootstrapError::NoBroker)?;
    let key = KeyPair::generate().map_err(device_key::DeviceKeyError::Csr)?;
    let request = CertificateRequest {
        device_id: id.clone(),
        bootstrap_token: String::new(),
        csr_pem: device_key::certificate_request(id, &key)?,
        id_source: None,
    };
    info!(device = %id, "renewing the device certificate");
    let options = exchange::options(
        id.to_string(),
        &broker,
        Some(&identity.ca_file),
        Some((&identity.cert_file, &identity.key_file)),
    )?;
    let issued = exchange::exchange(
        options,
        ExchangeTopics::renewal(id),
        &request,
        timings,
        shutdown,
    )
    .await?;
    let facts = dir.store_renewed(id, &key, &issued.certificate_pem, &issued.ca_pem)?;
    info!(device = %id, csr = %issued.request_name, not_after = facts.not_after, "device certificate renewed");
    Ok(facts)
}

#[cfg(test)]
mod tests;
