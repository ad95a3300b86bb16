//! `containerLogs` of a pod whose device is offline: answered from the gateway's offline
//! log cache ([`crate::log_cache`]) with a notice line, or a clear error that says since
//! when the device is offline.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::log_query::LogQuery;
use super::plain;
use crate::fleet::Fleet;
use crate::log_cache::offline_answer::offline_answer;

/// The answer for a pod on an offline device; `offline` is the fleet's error, used when
/// the device came back meanwhile.
pub(super) async fn answer(
    fleet: &Fleet,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &LogQuery,
    offline: String,
) -> Response {
    let Some(source) = fleet.offline_log_source(namespace, pod, container).await else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, offline);
    };
    let tail = fleet
        .log_cache()
        .get(&source.device, &source.pod_uid, container);
    let now = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0);
    match offline_answer(&source.pod, tail.as_ref(), query, now) {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], body).into_response(),
        // 400 as the kubelet answers for a container whose log it cannot serve: the API
        // server passes a 400's text on to kubectl, a 503's it replaces with a generic
        // "unable to handle the request"
        Err(e) => plain(StatusCode::BAD_REQUEST, e.to_string()),
    }
}
