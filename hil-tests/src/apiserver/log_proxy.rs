//! pods/log: proxied to the node's kubelet endpoint
//! (`https://<address>:<daemonEndpoints.kubeletEndpoint.Port>/containerLogs/...`, the
//! address of the first kind among Hostname, InternalDNS, InternalIP, ExternalDNS,
//! ExternalIP the node has, as kube-apiserver picks it)
//! presenting the emulator's kubelet client certificate, streaming the body as it arrives.
//! Like kube-apiserver without `--kubelet-certificate-authority`, the kubelet's serving
//! certificate is not verified.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use super::certs::{CertAndKey, CertError};
use super::errors::{ApiError, ApiResult};
use super::router::{Body, Context, stream_response};

/// The query parameters kube-apiserver passes on to the kubelet.
pub const PASSED_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "tailLines",
    "limitBytes",
];

#[derive(Debug)]
struct AcceptAnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// HTTPS client to kubelets, presenting the kubelet client certificate.
#[derive(Clone)]
pub struct KubeletClient {
    connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient").finish_non_exhaustive()
    }
}

impl KubeletClient {
    /// A client presenting `cert`.
    pub fn new(cert: &CertAndKey) -> Result<Self, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            .with_client_auth_cert(vec![cert.cert_der.clone()], cert.private_key())?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
        })
    }

    /// A TLS connection to the kubelet at `host:port` (for upgrades: exec, attach,
    /// port-forward).
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
        let server_name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?,
        };
        self.connector
            .connect(server_name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with kubelet {host}:{port}: {e}"))
    }

    /// GETs `path_and_query` from `host:port`, returning the response with a streaming body
    /// and the connection; dropping the [`KubeletConnection`] closes the connection, which
    /// is how the kubelet learns that the client went away.
    pub async fn get(
        &self,
        host: &str,
        port: u16,
        path_and_query: &str,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, KubeletConnection), String> {
        let tls = self.connect(host, port).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        let conn = KubeletConnection(tokio::spawn(async move {
            let _ = conn.await;
        }));
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let req = Request::get(path_and_query)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                "kube-apiserver/v1.32.0 (edge-hil emulator)",
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        Ok((resp, conn))
    }
}

/// The connection to a kubelet; closed when dropped.
#[derive(Debug)]
pub struct KubeletConnection(tokio::task::JoinHandle<()>);

impl Drop for KubeletConnection {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn pct(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The node address kinds tried in order (kube-apiserver's default
/// `--kubelet-preferred-address-types`).
const PREFERRED_ADDRESS_TYPES: &[&str] = &[
    "Hostname",
    "InternalDNS",
    "InternalIP",
    "ExternalDNS",
    "ExternalIP",
];

/// Where a pod's logs are: (host, port, path with query).
pub fn log_location(
    pod: &Value,
    node: &Value,
    container: &str,
    q: &HashMap<String, String>,
) -> ApiResult<(String, u16, String)> {
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (host, port) = kubelet_endpoint(node)?;
    let mut query: Vec<String> = Vec::new();
    for p in PASSED_PARAMS {
        if let Some(v) = q.get(*p) {
            query.push(format!("{p}={}", pct(v)));
        }
    }
    let mut path = format!(
        "/containerLogs/{}/{}/{}",
        pct(ns),
        pct(name),
        pct(container)
    );
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    Ok((host, port, path))
}

/// Where `node`'s kubelet serves: the first address of the kinds kube-apiserver prefers
/// and the port of `status.daemonEndpoints.kubeletEndpoint` (10250 when unset).
pub fn kubelet_endpoint(node: &Value) -> ApiResult<(String, u16)> {
    let addresses = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let host = PREFERRED_ADDRESS_TYPES
        .iter()
        .find_map(|t| {
            addresses
                .iter()
                .find(|x| x.get("type").and_then(Value::as_str) == Some(t))
                .and_then(|x| x.get("address").and_then(Value::as_str))
        })
        .ok_or_else(|| {
            ApiError::internal(format!(
                "no preferred addresses found; known addresses: {}",
                node.pointer("/status/addresses")
                    .cloned()
                    .unwrap_or_default()
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p <= u64::from(u16::MAX))
        .unwrap_or(10250) as u16;
    Ok((host.to_string(), port))
}

fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

/// The Node pod `name` is bound to (400 when it is not bound yet).
pub fn bound_node(ctx: &Context, pod: &Value, name: &str) -> ApiResult<Arc<Value>> {
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    ctx.cluster
        .get_stored("nodes", "", node_name)
        .ok_or_else(|| ApiError::not_found("", "nodes", node_name))
}

/// Validates the request like kube-apiserver's LogREST and proxies it.
pub async fn proxy(
    ctx: &Arc<Context>,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> ApiResult<hyper::Response<Body>> {
    let pod = ctx
        .cluster
        .get_stored("pods", ns, name)
        .ok_or_else(|| ApiError::not_found("", "pods", name))?;
    for p in ["sinceSeconds", "tailLines", "limitBytes"] {
        if let Some(v) = q.get(p) {
            let n: i64 = v.parse().map_err(|_| {
                ApiError::bad_request(format!("{p}: Invalid value: {v:?}: must be an integer"))
            })?;
            let min = if p == "tailLines" { 0 } else { 1 };
            if n < min {
                return Err(ApiError::invalid(
                    "PodLogOptions",
                    "",
                    "",
                    p,
                    &format!("Invalid value: {n}: must be greater than {}", min - 1),
                ));
            }
        }
    }
    if q.contains_key("sinceSeconds") && q.contains_key("sinceTime") {
        return Err(ApiError::invalid(
            "PodLogOptions",
            "",
            "",
            "sinceSeconds",
            "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    let names: Vec<String> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let main: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match q.get("container").filter(|c| !c.is_empty()) {
        Some(c) => {
            if !names.contains(c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.clone()
        }
        None => {
            let default = pod
                .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
                .and_then(Value::as_str);
            match (main.len(), default) {
                (_, Some(d)) if names.iter().any(|n| n == d) => d.to_string(),
                (1, _) => main[0].clone(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {name}, choose one of: [{}]",
                        main.join(" ")
                    )));
                }
            }
        }
    };
    let node = bound_node(ctx, &pod, name)?;
    let (host, port, path) = log_location(&pod, &node, &container, q)?;
    let (resp, conn) = ctx
        .kubelet_client
        .get(&host, port, &path)
        .await
        .map_err(|e| ApiError::internal(format!("error dialing backend: {e}")))?;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain")
        .to_string();
    let mut body = resp.into_body();
    if !(200..300).contains(&status) {
        let mut text = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(d) = frame.data_ref() {
                text.extend_from_slice(d);
            }
            if text.len() > 4096 {
                break;
            }
        }
        let msg = String::from_utf8_lossy(&text).trim().to_string();
        let mut e = ApiError::new(status, reason_for(status), msg);
        e.details = Some(serde_json::json!({"name": name, "kind": "pods/log"}));
        return Err(e);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        let _conn = conn;
        loop {
            let frame = tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tx.closed() => return,
                f = body.frame() => f,
            };
            match frame {
                None => return,
                Some(Err(e)) => {
                    let _ = tx.send(Err(std::io::Error::other(e))).await;
                    return;
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data()
                        && tx.send(Ok(data)).await.is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
    Ok(stream_response(200, &content_type, rx))
}
