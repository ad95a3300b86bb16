//! HTTP: authentication, path and query parsing, content negotiation, and dispatch to the
//! API semantics.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::cluster::{Cluster, ListOptions, meta_str};
use super::conversion::from_storage;
use super::deletion::{DeleteOptions, delete_response};
use super::errors::{ApiError, ApiResult};
use super::log_proxy::{self, KubeletClient};
use super::patch::{self, PatchType};
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::tables::{self, IncludeObject};
use super::watch::{self, WatchOptions};
use super::{discovery, openapi, reviews, scale, validation};

/// Response body type.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// Shared request context.
#[derive(Debug)]
pub struct Context {
    /// The cluster.
    pub cluster: Arc<Cluster>,
    /// Bearer tokens (the kubeconfig's and issued ServiceAccount tokens).
    pub tokens: super::tokens::Tokens,
    /// `host:port` clients reach us at.
    pub server_address: String,
    /// Watch bookmark interval.
    pub bookmark_interval: Duration,
    /// Shutdown.
    pub cancel: CancellationToken,
    /// HTTPS client for kubelets.
    pub kubelet_client: KubeletClient,
    /// What the metrics API serves, scraped from the kubelets.
    pub metrics: std::sync::Mutex<super::metrics_points::MetricsPoints>,
}

impl Context {
    /// The scraped resource metrics.
    pub fn metrics(&self) -> std::sync::MutexGuard<'_, super::metrics_points::MetricsPoints> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }
}

const MAX_BODY: usize = 3 * 1024 * 1024;

fn full(code: u16, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e: Infallible| match e {})
            .boxed(),
    );
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response.
/// An empty body (for 101 Switching Protocols).
pub fn empty_body() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    full(code, "application/json", v.to_string().into_bytes())
}

fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// A streaming response from a channel of chunks.
pub fn stream_response(
    code: u16,
    content_type: &str,
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> Response<Body> {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = StreamBody::new(futures::StreamExt::map(stream, |r| r.map(Frame::data)));
    let mut resp = Response::new(BodyExt::boxed(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

/// A parsed resource request.
#[derive(Debug)]
struct ResourceRequest {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_resource_path(segs: &[&str]) -> Option<(String, String, Vec<String>)> {
    match segs {
        ["api", v, rest @ ..] => Some((
            String::new(),
            v.to_string(),
            rest.iter().map(|s| s.to_string()).collect(),
        )),
        ["apis", g, v, rest @ ..] => Some((
            g.to_string(),
            v.to_string(),
            rest.iter().map(|s| s.to_string()).collect(),
        )),
        _ => None,
    }
}

fn resolve(group: &str, version: &str, rest: &[String]) -> ApiResult<ResourceRequest> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (namespace, rest) = if rest.len() >= 3
        && rest[0] == "namespaces"
        && resources::find(group, version, &rest[2]).is_some_and(|r| r.namespaced)
    {
        (Some(rest[1].clone()), &rest[2..])
    } else {
        (None, rest)
    };
    let plural = rest.first().ok_or_else(not_found)?;
    let rt = resources::find(group, version, plural).ok_or_else(not_found)?;
    if rest.len() > 3 {
        return Err(not_found());
    }
    let sub = rest.get(2).cloned();
    if let Some(s) = &sub
        && rt.subresource(s).is_none()
    {
        return Err(not_found());
    }
    Ok(ResourceRequest {
        rt,
        namespace,
        name: rest.get(1).cloned(),
        sub,
    })
}

fn query_map(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

fn list_options(rt: &ResourceType, q: &HashMap<String, String>) -> ApiResult<ListOptions> {
    Ok(ListOptions {
        label: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        field: FieldSelector::parse(
            rt.storage,
            q.get("fieldSelector").map_or("", String::as_str),
        )?,
        limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
        continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
    })
}

fn header_str(req: &Request<Incoming>, h: header::HeaderName) -> &str {
    req.headers()
        .get(h)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Handles one request.
pub async fn handle(ctx: Arc<Context>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = match route(&ctx, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

async fn route(ctx: &Arc<Context>, req: Request<Incoming>) -> ApiResult<Response<Body>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let public = matches!(
        path.as_str(),
        "/healthz" | "/livez" | "/readyz" | "/version"
    );
    let auth = header_str(&req, header::AUTHORIZATION);
    let mut user = None;
    match auth.strip_prefix("Bearer ") {
        Some(t) => match ctx.tokens.authenticate(t.trim()) {
            Some(u) => user = Some(u),
            None => return Err(ApiError::unauthorized()),
        },
        None if public => {}
        None => {
            return Err(ApiError::forbidden(format!(
                "forbidden: User \"system:anonymous\" cannot get path \"{path}\""
            )));
        }
    }
    let accept = header_str(&req, header::ACCEPT).to_string();
    let q = query_map(req.uri().query());
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method() == Method::GET;
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz"] if get => {
            return Ok(full(200, "text/plain; charset=utf-8", b"ok".to_vec()));
        }
        ["version"] if get => return Ok(json_response(200, &discovery::version())),
        ["api"] if get => {
            return Ok(match discovery::wants_aggregated(&accept) {
                Some(v) => aggregated(true, v),
                None => json_response(200, &discovery::core_versions(&ctx.server_address)),
            });
        }
        ["apis"] if get => {
            return Ok(match discovery::wants_aggregated(&accept) {
                Some(v) => aggregated(false, v),
                None => json_response(200, &discovery::group_list()),
            });
        }
        ["api", v] if get => {
            return discovery::resource_list("", v)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| {
                    ApiError::new(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    )
                });
        }
        ["apis", g] if get => {
            return discovery::group(g)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| {
                    ApiError::new(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    )
                });
        }
        ["apis", g, v] if get => {
            return discovery::resource_list(g, v)
                .map(|d| json_response(200, &d))
                .ok_or_else(|| {
                    ApiError::new(
                        404,
                        "NotFound",
                        "the server could not find the requested resource",
                    )
                });
        }
        [
            "apis",
            super::metrics_api::GROUP,
            super::metrics_api::VERSION,
            rest @ ..,
        ] if get && !rest.is_empty() => {
            return super::metrics_api::serve(ctx, rest, &q);
        }
        ["openapi", ..] if get => {
            let rest: Vec<&str> = segs[1..].to_vec();
            return openapi::serve(&rest, &accept);
        }
        _ => {}
    }
    let Some((group, version, rest)) = parse_resource_path(&segs) else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    let rr = resolve(&group, &version, &rest)?;
    resource(ctx, req, rr, q, accept, user).await
}

fn aggregated(core: bool, version: &str) -> Response<Body> {
    let av = format!("apidiscovery.k8s.io/{version}");
    full(
        200,
        &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
        discovery::aggregated(core, &av).to_string().into_bytes(),
    )
}

async fn read_body(req: Request<Incoming>) -> ApiResult<Vec<u8>> {
    let collected = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("reading request body: {e}"),
            )
        })?;
    Ok(collected.to_bytes().to_vec())
}

fn parse_json(body: &[u8], content_type: &str) -> ApiResult<Value> {
    if super::protobuf::is_protobuf(content_type, body) {
        return super::protobuf::decode(body);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => Ok(v),
        Err(e) => {
            // kube-apiserver also accepts YAML bodies.
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request(format!("error decoding request body: {e}")))?;
            match patch::yaml_to_json(text) {
                Ok(v) if v.is_object() => Ok(v),
                _ => Err(ApiError::bad_request(format!(
                    "error decoding request body: {e}"
                ))),
            }
        }
    }
}

/// Whether the client asked for `PartialObjectMetadata` (metadata-only clients).
fn wants_metadata(accept: &str) -> bool {
    accept.split(',').any(|p| {
        let p = p.replace(' ', "");
        p.contains("as=PartialObjectMetadata") && p.contains("g=meta.k8s.io")
    })
}

/// An object reduced to `PartialObjectMetadata`.
fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_default()})
}

fn respond_object(
    rt: &ResourceType,
    code: u16,
    obj: &Value,
    accept: &str,
    q: &HashMap<String, String>,
) -> Response<Body> {
    if tables::wants_table(accept).is_none()
        && wants_metadata(accept)
        && obj.get("kind").and_then(Value::as_str) == Some(rt.kind)
    {
        return json_response(code, &partial(obj));
    }
    match tables::wants_table(accept) {
        Some(v) if obj.get("kind").and_then(Value::as_str) == Some(rt.kind) => {
            let include = IncludeObject::parse(q.get("includeObject").map(String::as_str));
            let meta = json!({"resourceVersion": meta_str(obj, "resourceVersion")});
            json_response(
                code,
                &tables::table(rt, std::slice::from_ref(obj), meta, include, v, true),
            )
        }
        _ => json_response(code, obj),
    }
}

async fn resource(
    ctx: &Arc<Context>,
    req: Request<Incoming>,
    rr: ResourceRequest,
    q: HashMap<String, String>,
    accept: String,
    user: Option<super::tokens::TokenUser>,
) -> ApiResult<Response<Body>> {
    let rt = rr.rt;
    let dry = q.get("dryRun").map(String::as_str) == Some("All");
    if let Some(d) = q
        .get("dryRun")
        .filter(|d| !d.is_empty() && d.as_str() != "All")
    {
        return Err(ApiError::bad_request(format!(
            "Invalid dryRun value: {d:?}: supported values: \"All\""
        )));
    }
    let dry_cluster;
    let cluster = if dry && req.method() != Method::GET {
        dry_cluster = Arc::new(ctx.cluster.dry_run_copy());
        &dry_cluster
    } else {
        &ctx.cluster
    };
    let ns = rr.namespace.as_deref();
    if rt.namespaced && rr.name.is_some() && ns.is_none() {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let method = req.method().clone();
    let content_type = header_str(&req, header::CONTENT_TYPE).to_string();
    // The field manager: the fieldManager parameter, else the User-Agent up to its first '/'
    // (apply requires the parameter; checked later).
    let manager = match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => m.clone(),
        None if content_type.starts_with("application/apply-patch") => String::new(),
        None => header_str(&req, header::USER_AGENT)
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string(),
    };
    match (&method, rr.name.as_deref(), rr.sub.as_deref()) {
        (&Method::GET, None, None) => {
            if flag(&q, "watch") {
                return start_watch(ctx, rt, rr.namespace.clone(), &q, &accept);
            }
            let opts = list_options(rt, &q)?;
            let list = cluster.list(rt, ns, &opts)?;
            match tables::wants_table(&accept) {
                Some(v) => {
                    let include = IncludeObject::parse(q.get("includeObject").map(String::as_str));
                    let items: Vec<Value> = list
                        .get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let meta = list.get("metadata").cloned().unwrap_or_default();
                    Ok(json_response(
                        200,
                        &tables::table(rt, &items, meta, include, v, true),
                    ))
                }
                None if wants_metadata(&accept) => {
                    let items: Vec<Value> = list
                        .get("items")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().map(partial).collect())
                        .unwrap_or_default();
                    Ok(json_response(
                        200,
                        &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                            "metadata": list.get("metadata").cloned().unwrap_or_default(), "items": items}),
                    ))
                }
                None => Ok(json_response(200, &list)),
            }
        }
        (&Method::GET, Some(name), Some("scale")) => Ok(json_response(
            200,
            &scale::get(cluster, rt, ns.unwrap_or(""), name)?,
        )),
        (&Method::PUT, Some(name), Some("scale")) => {
            let body = read_body(req).await?;
            let obj = parse_json(&body, &content_type)?;
            let out = scale::write(
                cluster,
                rt,
                ns.unwrap_or(""),
                name,
                scale::ScaleWrite::Put(&obj),
            )?;
            Ok(json_response(200, &out))
        }
        (&Method::PATCH, Some(name), Some("scale")) => {
            let pt = PatchType::from_content_type(&content_type)?;
            let body = read_body(req).await?;
            let p = patch::parse_body(pt, &body)?;
            let out = scale::write(
                cluster,
                rt,
                ns.unwrap_or(""),
                name,
                scale::ScaleWrite::Patch(pt, &p),
            )?;
            Ok(json_response(200, &out))
        }
        (&Method::GET, Some(name), None | Some("status") | Some("approval")) => {
            let obj = cluster.get(rt, ns, name)?;
            Ok(respond_object(rt, 200, &obj, &accept, &q))
        }
        (&Method::GET, Some(name), Some("log")) => {
            log_proxy::proxy(ctx, ns.unwrap_or(""), name, &q).await
        }
        (
            &Method::GET | &Method::POST,
            Some(name),
            Some(sub @ ("exec" | "attach" | "portforward")),
        ) if rt.plural == "pods" => {
            let sub = sub.to_owned();
            super::stream_proxy::proxy(ctx, ns.unwrap_or(""), name, &sub, &q, req).await
        }
        (&Method::POST, None, None) => {
            let body = read_body(req).await?;
            let obj = parse_json(&body, &content_type)?;
            validation::check_body(rt, &obj, q.get("fieldValidation").map(String::as_str))?;
            if rt.virtual_only {
                let out = reviews::review(rt, &ctx.tokens, cluster, user.as_ref(), obj)?;
                return Ok(json_response(201, &out));
            }
            let created = cluster.create_as(rt, ns, obj, Some(&manager))?;
            Ok(respond_object(rt, 201, &created, &accept, &q))
        }
        (&Method::POST, Some(name), Some("binding")) => {
            let body = read_body(req).await?;
            let b = parse_json(&body, &content_type)?;
            let out = cluster.bind(ns.unwrap_or(""), name, &b)?;
            Ok(json_response(201, &out))
        }
        (&Method::POST, Some(name), Some("token")) => {
            let body = read_body(req).await?;
            let tr = if body.is_empty() {
                json!({})
            } else {
                parse_json(&body, &content_type)?
            };
            let sa = cluster
                .get_stored("serviceaccounts", ns.unwrap_or(""), name)
                .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
            Ok(json_response(201, &ctx.tokens.request(&sa, &tr)?))
        }
        (&Method::POST, Some(name), Some("eviction")) => {
            // No PodDisruptionBudgets exist here, so an eviction is always allowed and is
            // the delete it carries.
            let body = read_body(req).await?;
            let ev = parse_json(&body, &content_type)?;
            let opts_body = ev
                .get("deleteOptions")
                .map(|o| o.to_string().into_bytes())
                .unwrap_or_default();
            let opts = DeleteOptions::parse(&opts_body, None, None)?;
            cluster.delete(rt, ns, name, &opts)?;
            Ok(json_response(
                201,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            ))
        }
        (&Method::PUT, Some(name), sub @ (None | Some("status") | Some("approval"))) => {
            let body = read_body(req).await?;
            let obj = parse_json(&body, &content_type)?;
            validation::check_body(rt, &obj, q.get("fieldValidation").map(String::as_str))?;
            let out = cluster.update_as(rt, ns, name, obj, sub, Some(&manager))?;
            Ok(respond_object(rt, 200, &out, &accept, &q))
        }
        (&Method::PATCH, Some(name), sub @ (None | Some("status") | Some("approval"))) => {
            let pt = PatchType::from_content_type(&content_type)?;
            let body = read_body(req).await?;
            let p = patch::parse_body(pt, &body)?;
            let (out, created) = cluster.patch(
                rt,
                ns,
                name,
                pt,
                &p,
                sub,
                Some(manager.as_str()),
                q.get("fieldValidation").map(String::as_str),
                flag(&q, "force"),
            )?;
            Ok(respond_object(
                rt,
                if created { 201 } else { 200 },
                &out,
                &accept,
                &q,
            ))
        }
        (&Method::DELETE, Some(name), None) => {
            let body = read_body(req).await?;
            let opts = DeleteOptions::parse(
                &body,
                q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()),
                q.get("propagationPolicy").cloned(),
            )?;
            let outcome = cluster.delete(rt, ns, name, &opts)?;
            Ok(json_response(200, &delete_response(rt, &outcome)))
        }
        (&Method::DELETE, None, None) => {
            let body = read_body(req).await?;
            let opts = DeleteOptions::parse(
                &body,
                q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()),
                q.get("propagationPolicy").cloned(),
            )?;
            let list = list_options(rt, &q)?;
            let out = cluster.delete_collection(rt, ns, &list, &opts)?;
            Ok(json_response(200, &out))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {})",
            rt.plural
        ))),
    }
}

fn start_watch(
    ctx: &Arc<Context>,
    rt: &'static ResourceType,
    ns: Option<String>,
    q: &HashMap<String, String>,
    accept: &str,
) -> ApiResult<Response<Body>> {
    let opts = WatchOptions {
        resource_version: q.get("resourceVersion").cloned().unwrap_or_default(),
        label: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        field: FieldSelector::parse(
            rt.storage,
            q.get("fieldSelector").map_or("", String::as_str),
        )?,
        bookmarks: flag(q, "allowWatchBookmarks"),
        timeout: q
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .map(Duration::from_secs),
        send_initial_events: q.get("sendInitialEvents").map(|v| v == "true"),
    };
    if opts.send_initial_events == Some(true)
        && q.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan")
    {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            "resourceVersionMatch",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let table = tables::wants_table(accept);
    let metadata_only = table.is_none() && wants_metadata(accept);
    let include = IncludeObject::parse(q.get("includeObject").map(String::as_str));
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let render: watch::Render = Arc::new(move |o: &Value| {
        let served = from_storage(rt, o);
        match table {
            Some(v) => {
                let with_columns = first.swap(false, std::sync::atomic::Ordering::Relaxed);
                let meta = json!({"resourceVersion": meta_str(&served, "resourceVersion")});
                tables::table(
                    rt,
                    std::slice::from_ref(&served),
                    meta,
                    include,
                    v,
                    with_columns,
                )
            }
            None if metadata_only => partial(&served),
            None => served,
        }
    });
    let rx = watch::start(
        &ctx.cluster,
        rt,
        ns,
        opts,
        render,
        ctx.bookmark_interval,
        ctx.cancel.clone(),
    )?;
    let (tx, out) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut rx = rx;
        while let Some(b) = rx.recv().await {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
    });
    Ok(stream_response(200, "application/json", out))
}
