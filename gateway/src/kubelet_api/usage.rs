//! `/stats/summary/{node}` and `/metrics/resource/{node}`: the kubelet's Summary API and
//! resource metrics of one device, from [`crate::usage_stats`].
//!
//! The node is in the path because every Node's address is the gateway's: a request
//! for `/metrics/resource` says nothing about which node it is for. Each Node carries
//! the annotation `metrics.k8s.io/resource-metrics-path: /metrics/resource/<node>`
//! ([`resource_metrics_path`]), which metrics-server uses instead of the default path;
//! the kubelet's authorization applies unchanged (`/stats/...` → `nodes/stats`,
//! `/metrics/...` → `nodes/metrics`, on that node).

use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use edge_protocol::DeviceId;

use super::{ApiState, plain};
use crate::usage_stats::{DeviceSamples, resource_metrics, summary};

const SUMMARY_PREFIX: &str = "/stats/summary/";
const RESOURCE_PREFIX: &str = "/metrics/resource/";

/// The Node annotation metrics-server reads for the resource metrics path.
pub const RESOURCE_METRICS_PATH_ANNOTATION: &str = "metrics.k8s.io/resource-metrics-path";

/// The resource metrics path of `node` (the annotation's value).
pub fn resource_metrics_path(node: &str) -> String {
    format!("{RESOURCE_PREFIX}{node}")
}

/// The node a usage path is for (`/stats/summary/{node}`, `/metrics/resource/{node}`).
pub fn node_of_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix(SUMMARY_PREFIX)
        .or_else(|| path.strip_prefix(RESOURCE_PREFIX))?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// The routes, for the kubelet API's router.
pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/stats/summary", get(which_node))
        .route("/metrics/resource", get(which_node))
        .route("/stats/summary/{node}", get(stats_summary))
        .route("/metrics/resource/{node}", get(resource))
}

async fn which_node() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "this kubelet endpoint serves many nodes: ask /stats/summary/<node> or \
         /metrics/resource/<node> (the Node's metrics.k8s.io/resource-metrics-path annotation)",
    )
}

/// The device of `node` if the gateway serves it, and its samples (fresh or not).
fn samples_of(state: &ApiState, node: &str) -> Option<(DeviceId, Option<DeviceSamples>)> {
    let device = DeviceId::new(node)
        .ok()
        .filter(|d| state.fleet.is_known(d.as_str()))?;
    let samples = state.fleet.usage().get(&device);
    Some((device, samples))
}

fn unknown_node(node: &str) -> Response {
    plain(StatusCode::NOT_FOUND, format!("node {node:?} not found"))
}

async fn stats_summary(State(state): State<ApiState>, Path(node): Path<String>) -> Response {
    let Some((device, samples)) = samples_of(&state, &node) else {
        return unknown_node(&node);
    };
    let online = state.fleet.is_online(&device);
    match samples {
        Some(s) if s.is_fresh(online, Instant::now()) => (
            [(header::CONTENT_TYPE, "application/json")],
            summary::summary(&node, &s).to_string(),
        )
            .into_response(),
        Some(_) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no fresh usage sample from node {node}: it is offline or stopped sending"),
        ),
        None => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no usage sample from node {node} yet (its agent samples every stats_interval_seconds)"
            ),
        ),
    }
}

async fn resource(State(state): State<ApiState>, Path(node): Path<String>) -> Response {
    let Some((device, samples)) = samples_of(&state, &node) else {
        return unknown_node(&node);
    };
    let online = state.fleet.is_online(&device);
    let fresh = samples.filter(|s| s.is_fresh(online, Instant::now()));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        resource_metrics::render(fresh.as_ref().map(|s| s.latest.stats.as_ref())),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
