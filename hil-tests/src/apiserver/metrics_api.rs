//! `metrics.k8s.io/v1beta1` (`kubectl top`), which metrics-server serves beside a real
//! API server: the emulator scrapes every node's kubelet endpoint the way metrics-server
//! does (`/metrics/resource`, or the path in the Node's
//! `metrics.k8s.io/resource-metrics-path` annotation, with the emulator's kubelet client
//! certificate, every [`SCRAPE_INTERVAL`]) and serves `NodeMetrics` and `PodMetrics`
//! from the last two points ([`super::metrics_points`]). So a user of the sandbox gets
//! `kubectl top node` and `kubectl top pod` for device Nodes, as on a real cluster with
//! metrics-server. Discovery lists the group (legacy and aggregated).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::errors::{ApiError, ApiResult};
use super::log_proxy::kubelet_endpoint;
use super::router::{Body, Context, json_response};
use super::selectors::LabelSelector;
use crate::prometheus_text;

/// The API group and version served.
pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
/// How often every node is scraped (metrics-server's `--metric-resolution` in the test
/// bed's real control plane).
pub const SCRAPE_INTERVAL: Duration = Duration::from_secs(10);
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
const RESOURCE_METRICS_PATH_ANNOTATION: &str = "metrics.k8s.io/resource-metrics-path";

/// The resources of the group: (plural, kind, namespaced).
const RESOURCES: &[(&str, &str, bool)] = &[
    ("nodes", "NodeMetrics", false),
    ("pods", "PodMetrics", true),
];

/// The group's entry in `/apis`.
pub fn group_entry() -> Value {
    let gv = format!("{GROUP}/{VERSION}");
    json!({
        "name": GROUP,
        "versions": [{"groupVersion": gv, "version": VERSION}],
        "preferredVersion": {"groupVersion": gv, "version": VERSION}
    })
}

/// `/apis/metrics.k8s.io/v1beta1`.
pub fn resource_list() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({"name": plural, "singularName": "", "namespaced": namespaced,
                   "kind": kind, "verbs": ["get", "list"]})
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1",
           "groupVersion": format!("{GROUP}/{VERSION}"), "resources": resources})
}

/// The group's item in aggregated discovery (`apidiscovery.k8s.io`).
pub fn aggregated_item() -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({
                "resource": plural,
                "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": "",
                "verbs": ["get", "list"],
            })
        })
        .collect();
    json!({"metadata": {"name": GROUP, "creationTimestamp": null},
           "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}]})
}

/// Scrapes every node until the emulator stops.
pub async fn scrape_loop(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(SCRAPE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ctx.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let nodes = ctx.cluster.lock().list("nodes", None);
        for node in nodes {
            let name = node
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            match tokio::time::timeout(SCRAPE_TIMEOUT, scrape(&ctx, &node)).await {
                Ok(Ok(samples)) => ctx.metrics().record(&name, &samples),
                Ok(Err(e)) => {
                    tracing::debug!(node = %name, error = %e, "resource metrics scrape failed");
                    ctx.metrics().forget(&name);
                }
                Err(_) => ctx.metrics().forget(&name),
            }
        }
    }
}

async fn scrape(ctx: &Context, node: &Value) -> Result<Vec<prometheus_text::Sample>, String> {
    let (host, port) = kubelet_endpoint(node).map_err(|e| e.message)?;
    let path = node
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(RESOURCE_METRICS_PATH_ANNOTATION))
        .and_then(Value::as_str)
        .unwrap_or("/metrics/resource");
    let (resp, _conn) = ctx.kubelet_client.get(&host, port, path).await?;
    if !resp.status().is_success() {
        return Err(format!("{path}: HTTP {}", resp.status()));
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    prometheus_text::parse(&String::from_utf8_lossy(&body)).map_err(|e| e.to_string())
}

/// Serves `GET /apis/metrics.k8s.io/v1beta1/<rest>`.
pub fn serve(
    ctx: &Context,
    rest: &[&str],
    q: &HashMap<String, String>,
) -> ApiResult<hyper::Response<Body>> {
    let selector = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?;
    match rest {
        ["nodes"] => Ok(json_response(
            200,
            &list("NodeMetricsList", nodes(ctx, None, &selector)),
        )),
        ["nodes", name] => one(nodes(ctx, Some(name), &selector), "nodes", name),
        ["pods"] => Ok(json_response(
            200,
            &list("PodMetricsList", pods(ctx, None, None, &selector)),
        )),
        ["namespaces", ns, "pods"] => Ok(json_response(
            200,
            &list("PodMetricsList", pods(ctx, Some(ns), None, &selector)),
        )),
        ["namespaces", ns, "pods", name] => {
            one(pods(ctx, Some(ns), Some(name), &selector), "pods", name)
        }
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"kind": kind, "apiVersion": format!("{GROUP}/{VERSION}"), "metadata": {}, "items": items})
}

fn one(mut items: Vec<Value>, plural: &str, name: &str) -> ApiResult<hyper::Response<Body>> {
    match items.pop() {
        Some(mut item) => {
            let kind = if plural == "nodes" {
                "NodeMetrics"
            } else {
                "PodMetrics"
            };
            item["kind"] = json!(kind);
            item["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
            Ok(json_response(200, &item))
        }
        None => Err(ApiError::not_found(GROUP, plural, name)),
    }
}

fn usage_json(u: &super::metrics_points::Usage) -> Value {
    json!({"cpu": format!("{}n", u.nano_cores), "memory": format!("{}Ki", u.memory_bytes / 1024)})
}

fn time_of(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(super::clock::format_time)
        .unwrap_or_else(|_| super::clock::now())
}

fn window(ms: i64) -> String {
    format!("{}s", ms as f64 / 1000.0)
}

fn metadata(obj: &Value) -> Value {
    let mut m = json!({
        "name": obj.pointer("/metadata/name").cloned().unwrap_or_default(),
        "creationTimestamp": super::clock::now(),
    });
    if let Some(ns) = obj.pointer("/metadata/namespace") {
        m["namespace"] = ns.clone();
    }
    if let Some(labels) = obj.pointer("/metadata/labels") {
        m["labels"] = labels.clone();
    }
    m
}

fn nodes(ctx: &Context, name: Option<&str>, selector: &LabelSelector) -> Vec<Value> {
    let points = ctx.metrics();
    let mut names: Vec<&str> = points
        .nodes()
        .filter(|n| name.is_none_or(|x| x == *n))
        .collect();
    names.sort_unstable();
    names
        .into_iter()
        .filter_map(|n| {
            let usage = points.node_usage(n)?;
            let node = ctx.cluster.get_stored("nodes", "", n)?;
            selector.matches(&node).then(|| {
                json!({"metadata": metadata(&node), "timestamp": time_of(usage.timestamp_ms),
                       "window": window(usage.window_ms), "usage": usage_json(&usage)})
            })
        })
        .collect()
}

fn pods(
    ctx: &Context,
    namespace: Option<&str>,
    name: Option<&str>,
    selector: &LabelSelector,
) -> Vec<Value> {
    let mut by_pod: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    let mut newest: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for (key, usage) in ctx.metrics().container_usage() {
        if namespace.is_some_and(|ns| ns != key.namespace) || name.is_some_and(|n| n != key.pod) {
            continue;
        }
        let pod = (key.namespace.clone(), key.pod.clone());
        let at = newest.entry(pod.clone()).or_default();
        *at = (at.0.max(usage.timestamp_ms), at.1.max(usage.window_ms));
        by_pod
            .entry(pod)
            .or_default()
            .push(json!({"name": key.container, "usage": usage_json(&usage)}));
    }
    by_pod
        .into_iter()
        .filter_map(|((ns, pod_name), containers)| {
            let pod = ctx.cluster.get_stored("pods", &ns, &pod_name)?;
            let (at, window_ms) = newest.get(&(ns, pod_name)).copied().unwrap_or_default();
            selector.matches(&pod).then(|| {
                json!({"metadata": metadata(&pod), "timestamp": time_of(at),
                       "window": window(window_ms), "containers": containers})
            })
        })
        .collect()
}
