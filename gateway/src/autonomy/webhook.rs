//! The admission webhook's HTTPS endpoint (`POST /mutate-pods`, AdmissionReview v1) and
//! the registration of its CA in the MutatingWebhookConfiguration, so the deployment
//! needs no certificate manager. Thin: each review is [`super::review::review_pod`].

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::device_nodes::DeviceNodes;
use super::review::{AdmissionDecision, AutonomyPolicy, review_pod};
use crate::metrics::Metrics;

/// The path the MutatingWebhookConfiguration calls.
pub const MUTATE_PODS_PATH: &str = "/mutate-pods";

/// Why the webhook's configuration could not be updated.
#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(
        "MutatingWebhookConfiguration {name} not found: apply the kustomize base (it ships one); pass --admission-webhook-configuration \"\" if its CA is managed otherwise"
    )]
    NotFound { name: String },
    #[error("reading or patching MutatingWebhookConfiguration {name}: {source}")]
    Api {
        name: String,
        #[source]
        source: kube::Error,
    },
}

#[derive(Clone, Debug)]
struct WebhookState {
    nodes: DeviceNodes,
    policy: Arc<AutonomyPolicy>,
    metrics: Arc<Metrics>,
}

async fn mutate_pods(State(state): State<WebhookState>, body: axum::body::Bytes) -> Response {
    let review: AdmissionReview<Pod> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            state.metrics.autonomy_admission("unreadable");
            return (
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview v1 of a Pod: {e}\n"),
            )
                .into_response();
        }
    };
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(e) => {
            state.metrics.autonomy_admission("unreadable");
            let review = AdmissionResponse::invalid(e).into_review();
            return axum::Json(review).into_response();
        }
    };
    let devices = state.nodes.views();
    let (response, decision) = review_pod(&request, &devices, &state.policy);
    state.metrics.autonomy_admission(decision.label());
    match &decision {
        AdmissionDecision::Mutated { seconds, source } => debug!(
            namespace = request.namespace.as_deref().unwrap_or_default(),
            name = %request.name,
            seconds,
            ?source,
            "pod tolerates its devices going offline for its autonomy budget"
        ),
        AdmissionDecision::Unreadable(e) => {
            warn!(error = %e, "admission review failed; pod admitted unchanged")
        }
        _ => {}
    }
    let review: AdmissionReview<DynamicObject> = response.into_review();
    axum::Json(review).into_response()
}

/// Serves the webhook on `listener` until cancelled.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    nodes: DeviceNodes,
    policy: AutonomyPolicy,
    metrics: Arc<Metrics>,
    token: CancellationToken,
) {
    let app = Router::new()
        .route(MUTATE_PODS_PATH, post(mutate_pods))
        .with_state(WebhookState {
            nodes,
            policy: Arc::new(policy),
            metrics,
        });
    crate::https_server::serve(listener, tls, "admission webhook", token, move |_| {
        app.clone()
    })
    .await;
}

/// Puts `ca_pem` (the webhook's serving CA) into every webhook of the
/// MutatingWebhookConfiguration `name`, unless it is there already.
pub async fn register_ca_bundle(
    client: kube::Client,
    name: &str,
    ca_pem: &[u8],
) -> Result<(), RegistrationError> {
    use base64::Engine as _;
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let api_err = |source| RegistrationError::Api {
        name: name.to_owned(),
        source,
    };
    let Some(config) = api.get_opt(name).await.map_err(api_err)? else {
        return Err(RegistrationError::NotFound {
            name: name.to_owned(),
        });
    };
    let want = k8s_openapi::ByteString(ca_pem.to_vec());
    let webhooks = config.webhooks.unwrap_or_default();
    let ops: Vec<serde_json::Value> = webhooks
        .iter()
        .enumerate()
        .filter(|(_, w)| w.client_config.ca_bundle.as_ref() != Some(&want))
        .map(|(i, _)| {
            serde_json::json!({
                "op": "add",
                "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                "value": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            })
        })
        .collect();
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| api_err(kube::Error::SerdeError(e)))?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map_err(api_err)?;
    info!(
        configuration = name,
        "registered the admission webhook's CA"
    );
    Ok(())
}
