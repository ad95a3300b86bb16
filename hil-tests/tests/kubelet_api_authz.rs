//! The gateway's kubelet API authenticates and authorizes every request as a kubelet in
//! webhook mode does, against the API emulator and against the real control plane
//! (v1.37.2, real RBAC): a client certificate of a user without RBAC gets 403 for another
//! namespace's logs, a user bound to nodes/proxy gets them, ServiceAccount bearer tokens
//! likewise, no credentials get 401, `/metrics` needs `nodes/metrics` (the shipped
//! metrics-reader role), and `kubectl logs` through the API server (its kubelet client
//! certificate, bound to system:kubelet-api-admin) keeps working.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use edge_gateway::config::GatewayConfig;
use edge_gateway::gateway::{self, Gateway};
use edge_hil_tests::controlplane::client_from_kubeconfig;
use edge_hil_tests::fake_device::{FakeDevice, FakeDeviceConfig};
use edge_hil_tests::stack::{Cluster, ClusterBackend};
use edge_protocol::DeviceId;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, LogParams, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A client CA of the test's own, and certificates of users it signs.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl TestCa {
    fn new(dir: &Path) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kubelet-api-authz-test-ca");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        Self {
            issuer,
            dir: dir.to_owned(),
        }
    }

    /// Writes `<user>.crt`/`<user>.key` (CN = user, O = groups) and returns their paths.
    fn user(&self, user: &str, groups: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        for g in groups {
            dn.push(DnType::OrganizationName, *g);
        }
        p.distinguished_name = dn;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.join(format!("{user}.crt")),
            self.dir.join(format!("{user}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}

struct Bed {
    _dir: tempfile::TempDir,
    cluster: Cluster,
    admin: kube::Client,
    gateway: Gateway,
    ca: TestCa,
    /// Names unique to this bed (the control plane is shared by the test binary).
    ns: String,
    device: String,
    _dev: FakeDevice,
}

async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bed(backend: ClusterBackend, suffix: &str) -> Bed {
    bed_with(backend, suffix, |_| {}).await
}

async fn bed_with(
    backend: ClusterBackend,
    suffix: &str,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> Bed {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(backend, dir.path(), Duration::from_secs(600))
        .await
        .unwrap();
    let admin = cluster.client().await.unwrap();
    let gateway_client = client_from_kubeconfig(cluster.gateway_kubeconfig_path())
        .await
        .unwrap();
    // Trusted client CAs: the API server's kubelet client CA and the test's own.
    let ca = TestCa::new(dir.path());
    let bundle = dir.path().join("client-ca-bundle.crt");
    let api_ca = std::fs::read_to_string(cluster.kubelet_client_ca().unwrap()).unwrap();
    std::fs::write(&bundle, format!("{api_ca}\n{}", ca.issuer.pem())).unwrap();

    let mut config = GatewayConfig::local(dir.path().join("gateway"));
    config.kubelet_client_ca = Some(bundle);
    config.kubelet_authn.token_webhook = true;
    config.log_request_timeout = Duration::from_secs(5);
    tweak(&mut config);
    let gateway = gateway::start(config, gateway_client, CancellationToken::new())
        .await
        .unwrap();

    let ns = format!("authz-{suffix}");
    let device = format!("authz-dev-{suffix}");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let dev = FakeDevice::start(FakeDeviceConfig::new(
        DeviceId::new(device.clone()).unwrap(),
        "127.0.0.1",
        gateway.ports.mqtt_port.unwrap(),
    ))
    .await
    .unwrap();
    let nodes: Api<Node> = Api::all(admin.clone());
    eventually(30, "the device's Node", || {
        let nodes = nodes.clone();
        let device = device.clone();
        async move { nodes.get_opt(&device).await.unwrap() }
    })
    .await;
    run_pod(&admin, &ns, "secret-talker", &device).await;
    dev.set_log("secret-talker", "app", "the secret line\n");
    Bed {
        _dir: dir,
        cluster,
        admin,
        gateway,
        ca,
        ns,
        device,
        _dev: dev,
    }
}

/// Creates pod `name` in `ns` on node `node` and waits until it runs.
async fn run_pod(admin: &kube::Client, ns: &str, name: &str, node: &str) {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists", "effect": "NoSchedule"}],
            "automountServiceAccountToken": false,
            "containers": [{"name": "app", "image": "localhost/busybox:test", "command": ["sleep", "3600"]}]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually(60, "the pod Running", || {
        let pods = pods.clone();
        async move {
            let p = pods.get(name).await.unwrap();
            (p.status.and_then(|s| s.phase).as_deref() == Some("Running")).then_some(())
        }
    })
    .await;
}

/// `curl` against the gateway's kubelet API: body and status code.
async fn call(bed: &Bed, path: &str, args: &[String]) -> (String, u16) {
    let port = bed.gateway.ports.kubelet_port;
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .await
        .expect("curl is needed for this test (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (body.to_owned(), code.parse().unwrap_or(0))
}

fn cert_args(cert: &(PathBuf, PathBuf)) -> Vec<String> {
    vec![
        "--cert".into(),
        cert.0.display().to_string(),
        "--key".into(),
        cert.1.display().to_string(),
    ]
}

fn bearer(token: &str) -> Vec<String> {
    vec!["-H".into(), format!("Authorization: Bearer {token}")]
}

/// A ClusterRole `name` with `rules`, bound to `subject`.
async fn grant(bed: &Bed, name: &str, rules: serde_json::Value, subject: serde_json::Value) {
    let roles: Api<ClusterRole> = Api::all(bed.admin.clone());
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "rules": rules})).unwrap(),
        )
        .await
        .unwrap();
    let bindings: Api<ClusterRoleBinding> = Api::all(bed.admin.clone());
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [subject]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
}

/// A ClusterRole `get` on `nodes/proxy` (of `node` only, when given) bound to `subject`.
async fn grant_nodes_proxy(bed: &Bed, name: &str, node: Option<&str>, subject: serde_json::Value) {
    let mut rule = json!({"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]});
    if let Some(n) = node {
        rule["resourceNames"] = json!([n]);
    }
    grant(bed, name, json!([rule]), subject).await;
}

/// The rules of deploy/kustomize/base/clusterrole-metrics-reader.yaml, as shipped.
fn shipped_metrics_reader_rules() -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kustomize/base/clusterrole-metrics-reader.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    let strings = |y: &yaml_rust2::Yaml| -> Vec<String> {
        y.as_vec()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let rules: Vec<serde_json::Value> = doc["rules"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|r| {
            json!({
                "apiGroups": strings(&r["apiGroups"]),
                "resources": strings(&r["resources"]),
                "verbs": strings(&r["verbs"]),
            })
        })
        .collect();
    assert!(!rules.is_empty(), "{}", path.display());
    json!(rules)
}

/// A copy of the shipped metrics-reader ClusterRole named `name`, bound to `subject`.
async fn grant_shipped_metrics_reader(bed: &Bed, name: &str, subject: serde_json::Value) {
    grant(bed, name, shipped_metrics_reader_rules(), subject).await;
}

async fn service_account_token(bed: &Bed, name: &str) -> String {
    let sas: Api<ServiceAccount> = Api::namespaced(bed.admin.clone(), &bed.ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    let req: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let tr = sas
        .create_token_request(name, &PostParams::default(), &req)
        .await
        .unwrap();
    tr.status.unwrap().token.unwrap()
}

async fn kubelet_api_authorizes_every_request(backend: ClusterBackend, suffix: &str) {
    let bed = bed(backend, suffix).await;
    let logs = format!("/containerLogs/{}/secret-talker/app", bed.ns);

    // no credentials: 401
    let (body, code) = call(&bed, &logs, &[]).await;
    assert_eq!(code, 401, "{body}");
    assert!(body.starts_with("Unauthorized"), "{body}");
    let (_, code) = call(&bed, "/healthz", &[]).await;
    assert_eq!(code, 401, "/healthz needs credentials, as on a kubelet");

    // a certificate from the trusted CA, of a user without RBAC: 403, kubelet wording
    let mallory = bed.ca.user(&format!("mallory-{suffix}"), &["dev-team"]);
    let (body, code) = call(&bed, &logs, &cert_args(&mallory)).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body.trim_end(),
        format!(
            "Forbidden (user=mallory-{suffix}, verb=get, resource=nodes, subresource(s)=[proxy])"
        )
    );
    assert!(!body.contains("secret line"));
    let (body, code) = call(&bed, "/pods", &cert_args(&mallory)).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("subresource(s)=[pods proxy]"), "{body}");

    // a user bound to nodes/proxy of this node reads the logs, but not /pods of all nodes
    let alice_name = format!("alice-{suffix}");
    grant_nodes_proxy(
        &bed,
        &format!("authz-alice-{suffix}"),
        Some(&bed.device),
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": alice_name}),
    )
    .await;
    let alice = bed.ca.user(&alice_name, &[]);
    let (body, code) = call(&bed, &logs, &cert_args(&alice)).await;
    assert_eq!((code, body.as_str()), (200, "the secret line\n"));
    let (body, code) = call(&bed, "/pods", &cert_args(&alice)).await;
    assert_eq!(code, 403, "{body}");

    // groups come from the certificate's O: a group bound on every node reads /pods
    let group = format!("log-readers-{suffix}");
    grant_nodes_proxy(
        &bed,
        &format!("authz-group-{suffix}"),
        None,
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}),
    )
    .await;
    let carol = bed.ca.user(&format!("carol-{suffix}"), &[&group]);
    let (body, code) = call(&bed, "/pods", &cert_args(&carol)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("secret-talker"), "{body}");
    let (body, code) = call(&bed, &logs, &cert_args(&carol)).await;
    assert_eq!((code, body.as_str()), (200, "the secret line\n"));

    // bearer tokens of ServiceAccounts: without rights 403, with rights the logs
    let nobody = service_account_token(&bed, "nobody").await;
    let (body, code) = call(&bed, &logs, &bearer(&nobody)).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(&format!("user=system:serviceaccount:{}:nobody", bed.ns)),
        "{body}"
    );
    let reader = service_account_token(&bed, "log-reader").await;
    grant_nodes_proxy(
        &bed,
        &format!("authz-sa-{suffix}"),
        None,
        json!({"kind": "ServiceAccount", "name": "log-reader", "namespace": bed.ns}),
    )
    .await;
    let (body, code) = call(&bed, &logs, &bearer(&reader)).await;
    assert_eq!((code, body.as_str()), (200, "the secret line\n"));
    let (body, code) = call(&bed, &logs, &bearer("not-a-token")).await;
    assert_eq!(code, 401, "{body}");

    // the gateway's /metrics: authorized as nodes/metrics, which the shipped
    // edge-gateway-metrics-reader role grants and nodes/proxy does not
    let (_, code) = call(&bed, "/metrics", &[]).await;
    assert_eq!(code, 401, "/metrics needs credentials");
    let (body, code) = call(&bed, "/metrics", &cert_args(&mallory)).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("subresource(s)=[metrics]"), "{body}");
    let (body, code) = call(&bed, "/metrics", &bearer(&reader)).await;
    assert_eq!(code, 403, "nodes/proxy does not read metrics: {body}");
    let scraper = service_account_token(&bed, "scraper").await;
    grant_shipped_metrics_reader(
        &bed,
        &format!("authz-metrics-{suffix}"),
        json!({"kind": "ServiceAccount", "name": "scraper", "namespace": bed.ns}),
    )
    .await;
    let (body, code) = call(&bed, "/metrics", &bearer(&scraper)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("edge_gateway_devices_online"), "{body}");
    assert!(!body.contains("the secret line"));

    // the API server's own kubelet client (kubectl logs) is allowed by its RBAC binding
    let pods: Api<Pod> = Api::namespaced(bed.admin.clone(), &bed.ns);
    let text = pods
        .logs("secret-talker", &LogParams::default())
        .await
        .unwrap();
    assert_eq!(text, "the secret line\n");
    let _ = &bed.cluster;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_kubelet_api_authorizes_every_request() {
    kubelet_api_authorizes_every_request(ClusterBackend::Emulator, "emu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_kubelet_api_authorizes_every_request() {
    kubelet_api_authorizes_every_request(ClusterBackend::ControlPlane, "cp").await;
}

/// Node-scoped rights, anonymous requests and the decision cache, on the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_scoped_rights_anonymous_requests_and_cached_decisions() {
    let bed = bed_with(ClusterBackend::Emulator, "scope", |c| {
        c.kubelet_authn.anonymous = true;
        c.kubelet_authz.denied_ttl = Duration::from_secs(2);
        c.kubelet_authz.allowed_ttl = Duration::from_secs(2);
    })
    .await;
    // a second device with a pod of its own
    let other = FakeDevice::start(FakeDeviceConfig::new(
        DeviceId::new("authz-other-scope").unwrap(),
        "127.0.0.1",
        bed.gateway.ports.mqtt_port.unwrap(),
    ))
    .await
    .unwrap();
    run_pod(&bed.admin, &bed.ns, "other-talker", "authz-other-scope").await;
    other.set_log("other-talker", "app", "the other line\n");
    let here = format!("/containerLogs/{}/secret-talker/app", bed.ns);
    let there = format!("/containerLogs/{}/other-talker/app", bed.ns);

    // rights on one node: that node's pods only; an unknown pod is 403, not 404
    grant_nodes_proxy(
        &bed,
        "authz-dave-scope",
        Some(&bed.device),
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}),
    )
    .await;
    let dave = bed.ca.user("dave", &[]);
    let (body, code) = call(&bed, &here, &cert_args(&dave)).await;
    assert_eq!((code, body.as_str()), (200, "the secret line\n"));
    let (body, code) = call(&bed, &there, &cert_args(&dave)).await;
    assert_eq!(code, 403, "{body}");
    let (body, code) = call(
        &bed,
        &format!("/containerLogs/{}/nope/app", bed.ns),
        &cert_args(&dave),
    )
    .await;
    assert_eq!(code, 403, "{body}");

    // resource metrics name their node in the path: nodes/metrics on that node only,
    // and nodes/stats (not nodes/metrics) for the Summary API
    grant(
        &bed,
        "authz-frank-scope",
        json!([{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"],
                "resourceNames": [bed.device]}]),
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "frank"}),
    )
    .await;
    let frank = bed.ca.user("frank", &[]);
    let (body, code) = call(
        &bed,
        &format!("/metrics/resource/{}", bed.device),
        &cert_args(&frank),
    )
    .await;
    // the fake device sends no usage samples: no points, scrape_error 1
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\nscrape_error 1\n"), "{body}");
    let (body, code) = call(
        &bed,
        "/metrics/resource/authz-other-scope",
        &cert_args(&frank),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let (body, code) = call(
        &bed,
        &format!("/stats/summary/{}", bed.device),
        &cert_args(&frank),
    )
    .await;
    assert_eq!(code, 403, "{body}");

    // anonymous requests (enabled here) are authorized as system:anonymous: 403, not 401
    let (body, code) = call(&bed, &here, &[]).await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("user=system:anonymous"), "{body}");
    // an invalid token is still 401, as on the kubelet
    let (_, code) = call(&bed, &here, &bearer("not-a-token")).await;
    assert_eq!(code, 401);

    // a denial is reused for the denied TTL: granting does not help until it expires
    let erin = bed.ca.user("erin", &[]);
    assert_eq!(call(&bed, &there, &cert_args(&erin)).await.1, 403);
    grant_nodes_proxy(
        &bed,
        "authz-erin-scope",
        None,
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "erin"}),
    )
    .await;
    assert_eq!(
        call(&bed, &there, &cert_args(&erin)).await.1,
        403,
        "cached denial"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (body, code) = call(&bed, &there, &cert_args(&erin)).await;
    assert_eq!((code, body.as_str()), (200, "the other line\n"));
    // and an allowance for the allowed TTL: revoking takes effect after it
    let bindings: Api<ClusterRoleBinding> = Api::all(bed.admin.clone());
    bindings
        .delete("authz-erin-scope", &Default::default())
        .await
        .unwrap();
    assert_eq!(
        call(&bed, &there, &cert_args(&erin)).await.0,
        "the other line\n"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(call(&bed, &there, &cert_args(&erin)).await.1, 403);
}
