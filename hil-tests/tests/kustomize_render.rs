//! The gateway's kustomize base and overlays render with the real `kubectl kustomize`,
//! hold what a deployment needs, expose no unauthenticated MQTT port (except the lab
//! overlay, which says so), and the ClusterRole and the Role in the gateway's namespace
//! grant exactly the API calls the gateway makes (`edge_gateway::rbac::API_PERMISSIONS`,
//! `OWN_NAMESPACE_PERMISSIONS`), both ways.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use edge_gateway::enrollment::{MosquittoConfig, RevocationList};
use edge_gateway::rbac::{API_PERMISSIONS, ApiPermission, OWN_NAMESPACE_PERMISSIONS};
use yaml_rust2::{Yaml, YamlLoader};

/// Every kustomization users apply.
const BASE: &str = "deploy/kustomize/base";
const EXTERNAL_BROKER: &str = "deploy/kustomize/overlays/external-broker";
const LAB: &str = "deploy/kustomize/overlays/lab-embedded-broker";
const SHARDED: &str = "deploy/kustomize/overlays/sharded";
const ALL: [&str; 4] = [BASE, EXTERNAL_BROKER, LAB, SHARDED];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn render(dir: &str) -> Vec<Yaml> {
    let path = repo().join(dir);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&path)
        .output()
        .expect("kubectl is missing: it must be on PATH (v1.32 on the build image; Debian kubernetes-client as fallback)");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let docs = YamlLoader::load_from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert!(!docs.is_empty(), "{dir} rendered nothing");
    docs
}

fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn strs(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| v.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// (apiGroup, resource, verb, resourceNames) a ClusterRole grants.
fn granted(role: &Yaml) -> BTreeSet<(String, String, String, String)> {
    let mut set = BTreeSet::new();
    for rule in role["rules"].as_vec().unwrap() {
        let names = strs(&rule["resourceNames"]).join(",");
        assert!(
            rule["nonResourceURLs"].is_badvalue(),
            "unexpected nonResourceURLs: {rule:?}"
        );
        for group in strs(&rule["apiGroups"]) {
            for resource in strs(&rule["resources"]) {
                for verb in strs(&rule["verbs"]) {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "wildcard in the ClusterRole: {rule:?}"
                    );
                    set.insert((group.clone(), resource.clone(), verb, names.clone()));
                }
            }
        }
    }
    set
}

fn used(permissions: &[ApiPermission]) -> BTreeSet<(String, String, String, String)> {
    let mut set = BTreeSet::new();
    for p in permissions {
        for verb in p.verbs {
            set.insert((
                p.api_group.to_string(),
                p.resource.to_string(),
                verb.to_string(),
                p.resource_names.join(","),
            ));
        }
    }
    set
}

fn env_names(container: &Yaml) -> Vec<String> {
    container["env"]
        .as_vec()
        .map(|v| {
            v.iter()
                .map(|e| e["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn port_numbers(y: &Yaml, key: &str) -> BTreeSet<i64> {
    y.as_vec()
        .map(|v| v.iter().map(|p| p[key].as_i64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn cluster_role_and_role_grant_exactly_what_the_gateway_calls() {
    for dir in ALL {
        let docs = render(dir);
        for (kind, permissions) in [
            ("ClusterRole", API_PERMISSIONS),
            ("Role", OWN_NAMESPACE_PERMISSIONS),
        ] {
            let roles: Vec<&Yaml> = docs
                .iter()
                .filter(|d| d["kind"].as_str() == Some(kind))
                .filter(|d| d["metadata"]["name"].as_str() != Some(METRICS_READER))
                .collect();
            assert_eq!(roles.len(), 1, "{dir}: expected one {kind} for the gateway");
            let granted = granted(roles[0]);
            let used = used(permissions);
            let extra: Vec<_> = granted.difference(&used).collect();
            let missing: Vec<_> = used.difference(&granted).collect();
            assert!(
                extra.is_empty(),
                "{dir}: the {kind} grants calls the gateway never makes: {extra:?}"
            );
            assert!(
                missing.is_empty(),
                "{dir}: the {kind} lacks calls the gateway makes: {missing:?}"
            );
        }
        // the Role binds the gateway's ServiceAccount in the gateway's namespace
        let binding = find(&docs, "RoleBinding", "edge-gateway");
        assert_eq!(binding["roleRef"]["kind"].as_str(), Some("Role"));
        assert_eq!(
            binding["subjects"][0]["name"].as_str(),
            Some("edge-gateway"),
            "{dir}"
        );
        assert_eq!(
            binding["metadata"]["namespace"].as_str(),
            binding["subjects"][0]["namespace"].as_str(),
            "{dir}: the RoleBinding is not in the gateway's namespace"
        );
    }
}

/// The ClusterRole a scraper is bound to, to read the gateway's `/metrics` on the
/// kubelet API.
const METRICS_READER: &str = "edge-gateway-metrics-reader";

#[test]
fn the_metrics_reader_role_grants_only_reading_metrics() {
    for dir in ALL {
        let docs = render(dir);
        let role = find(&docs, "ClusterRole", METRICS_READER);
        assert_eq!(
            granted(role),
            BTreeSet::from([(
                String::new(),
                "nodes/metrics".to_owned(),
                "get".to_owned(),
                String::new()
            )]),
            "{dir}"
        );
    }
}

#[test]
fn base_renders_a_complete_gateway_deployment() {
    let docs = render("deploy/kustomize/base");
    find(&docs, "Namespace", "edge-system");
    let sa = find(&docs, "ServiceAccount", "edge-gateway");
    assert_eq!(sa["metadata"]["namespace"].as_str(), Some("edge-system"));
    let binding = find(&docs, "ClusterRoleBinding", "edge-gateway");
    assert_eq!(binding["roleRef"]["kind"].as_str(), Some("ClusterRole"));
    assert_eq!(binding["roleRef"]["name"].as_str(), Some("edge-gateway"));
    assert_eq!(
        binding["subjects"][0]["name"].as_str(),
        Some("edge-gateway")
    );
    assert_eq!(
        binding["subjects"][0]["namespace"].as_str(),
        Some("edge-system")
    );

    let sts = find(&docs, "StatefulSet", "edge-gateway");
    assert_eq!(sts["metadata"]["namespace"].as_str(), Some("edge-system"));
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"].as_str(), Some("edge-gateway"));
    let container = &pod["containers"][0];
    assert_eq!(strs(&container["args"]), ["run"]);
    assert!(
        container["image"]
            .as_str()
            .unwrap()
            .contains("edge-gateway")
    );
    // The store is a PersistentVolumeClaim per replica, mounted at the store dir.
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    let claim_name = claim["metadata"]["name"].as_str().unwrap();
    let mount = container["volumeMounts"]
        .as_vec()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == Some(claim_name))
        .expect("the store volume is not mounted");
    let config = find(&docs, "ConfigMap", "edge-gateway");
    assert_eq!(
        mount["mountPath"].as_str(),
        config["data"]["EDGE_GATEWAY_STORE_DIR"].as_str()
    );
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"].as_str(),
        Some("edge-gateway")
    );
    assert!(env_names(container).contains(&"EDGE_GATEWAY_NODE_ADDRESS".to_string()));
    // The embedded broker and the plain metrics/readiness endpoints listen on loopback
    // and no port or Service exposes them: the kubelet API and the autonomy webhook (both
    // HTTPS) are the only ports.
    assert_eq!(
        port_numbers(&container["ports"], "containerPort"),
        BTreeSet::from([9443, 10250])
    );
    let webhook_listen = config["data"]["EDGE_GATEWAY_ADMISSION_WEBHOOK_LISTEN"]
        .as_str()
        .unwrap();
    assert!(webhook_listen.ends_with(":9443"), "{webhook_listen}");
    let metrics = config["data"]["EDGE_GATEWAY_METRICS_LISTEN"]
        .as_str()
        .unwrap();
    assert!(metrics.starts_with("127.0.0.1:"), "{metrics}");
    assert!(config["data"]["EDGE_GATEWAY_METRICS_INSECURE_LISTEN"].is_badvalue());
    // Readiness is asked from inside the container, where loopback reaches /readyz.
    assert_eq!(
        strs(&container["readinessProbe"]["exec"]["command"]),
        ["edge-gateway", "check-ready"]
    );
    let listen = config["data"]["EDGE_GATEWAY_MQTT_LISTEN"].as_str().unwrap();
    assert!(listen.starts_with("127.0.0.1:"), "{listen}");
    assert!(
        config["data"]["EDGE_GATEWAY_EMBEDDED_BROKER_INSECURE_LISTEN"].is_badvalue(),
        "the base must not opt into an exposed embedded broker"
    );

    // One Service: the kubelet API (logs, and /metrics with credentials), in-cluster.
    let services: Vec<&Yaml> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Service"))
        .collect();
    assert_eq!(services.len(), 1, "{services:?}");
    let svc = find(&docs, "Service", "edge-gateway");
    assert_eq!(
        port_numbers(&svc["spec"]["ports"], "port"),
        BTreeSet::from([443, 10250])
    );

    // The webhook: the Service's 443, only pod creations, never blocking (Ignore), never
    // in the system namespaces, and only pods that tolerate the device taint.
    let hooks = find(
        &docs,
        "MutatingWebhookConfiguration",
        "edge-gateway-autonomy",
    );
    let hook = &hooks["webhooks"][0];
    let client = &hook["clientConfig"]["service"];
    assert_eq!(client["name"].as_str(), Some("edge-gateway"));
    assert_eq!(client["namespace"].as_str(), Some("edge-system"));
    assert_eq!(client["port"].as_i64(), Some(443));
    assert_eq!(
        client["path"].as_str(),
        Some(edge_gateway::autonomy::webhook::MUTATE_PODS_PATH)
    );
    assert_eq!(hook["failurePolicy"].as_str(), Some("Ignore"));
    assert_eq!(hook["sideEffects"].as_str(), Some("None"));
    assert_eq!(strs(&hook["rules"][0]["operations"]), ["CREATE"]);
    assert_eq!(strs(&hook["rules"][0]["resources"]), ["pods"]);
    let excluded = strs(&hook["namespaceSelector"]["matchExpressions"][0]["values"]);
    for ns in ["kube-system", "edge-system"] {
        assert!(excluded.contains(&ns.to_owned()), "{excluded:?}");
    }
    let condition = hook["matchConditions"][0]["expression"].as_str().unwrap();
    assert!(condition.contains(edge_gateway::node_object::PROVIDER_TAINT_KEY));
    assert_eq!(
        hooks["metadata"]["name"].as_str(),
        Some(edge_gateway::autonomy::settings::DEFAULT_WEBHOOK_CONFIGURATION)
    );
    assert_eq!(
        svc["spec"]["selector"]["app.kubernetes.io/name"].as_str(),
        sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"].as_str()
    );
}

/// What a rendered Service port leads to, as far as MQTT is concerned.
#[derive(Debug, PartialEq, Eq)]
enum Exposure {
    /// Not an MQTT listener, and not unauthenticated (the kubelet API).
    NotMqtt,
    /// Mosquitto running the generated config: TLS, client certificate required, ACL.
    MqttWithClientCertificates,
    /// The embedded broker, or an MQTT port nobody vouches for.
    UnauthenticatedMqtt(String),
    /// The gateway's plain-HTTP `/metrics` and `/readyz` (`--metrics-listen`).
    UnauthenticatedHttp(String),
}

/// Pod templates (with their workload's name) whose labels the selector matches.
fn selected_pods<'a>(docs: &'a [Yaml], selector: &Yaml) -> Vec<(&'a str, &'a Yaml)> {
    let wanted = selector.as_hash().cloned().unwrap_or_default();
    docs.iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("Deployment" | "StatefulSet" | "DaemonSet" | "Pod")
            )
        })
        .filter_map(|d| {
            let (labels, spec) = if d["kind"].as_str() == Some("Pod") {
                (&d["metadata"]["labels"], &d["spec"])
            } else {
                (
                    &d["spec"]["template"]["metadata"]["labels"],
                    &d["spec"]["template"]["spec"],
                )
            };
            let labels = labels.as_hash()?;
            wanted
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
                .then(|| (d["metadata"]["name"].as_str().unwrap_or("?"), spec))
        })
        .collect()
}

/// The value a gateway container gets for an EDGE_GATEWAY_* setting (env, then the
/// ConfigMap it loads).
fn gateway_setting(docs: &[Yaml], container: &Yaml, name: &str) -> Option<String> {
    if let Some(v) = container["env"].as_vec().and_then(|env| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(name))
            .and_then(|e| e["value"].as_str())
    }) {
        return Some(v.to_owned());
    }
    for from in container["envFrom"].as_vec().into_iter().flatten() {
        if let Some(cm) = from["configMapRef"]["name"].as_str() {
            let config = find(docs, "ConfigMap", cm);
            if let Some(v) = config["data"][name].as_str() {
                return Some(v.to_owned());
            }
        }
    }
    None
}

fn classify(docs: &[Yaml], service: &Yaml, port: &Yaml) -> Exposure {
    let target = &port["targetPort"];
    let service_port = port["port"].as_i64().unwrap();
    let mut found = Vec::new();
    for (workload, pod) in selected_pods(docs, &service["spec"]["selector"]) {
        for container in pod["containers"].as_vec().into_iter().flatten() {
            for cp in container["ports"].as_vec().into_iter().flatten() {
                let matches = match (target.as_str(), target.as_i64()) {
                    (Some(name), _) => cp["name"].as_str() == Some(name),
                    (None, Some(n)) => cp["containerPort"].as_i64() == Some(n),
                    (None, None) => cp["containerPort"].as_i64() == Some(service_port),
                };
                if matches {
                    found.push((workload, container, cp["containerPort"].as_i64().unwrap()));
                }
            }
        }
    }
    assert!(
        !found.is_empty(),
        "Service {} port {service_port} targets no container port",
        service["metadata"]["name"].as_str().unwrap_or("?")
    );
    let mut worst = Exposure::NotMqtt;
    for (workload, container, number) in found {
        let image = container["image"].as_str().unwrap_or_default();
        let what = format!(
            "{workload}/{} port {number}",
            container["name"].as_str().unwrap_or("?")
        );
        let exposure = if image.contains("edge-gateway") {
            let listen = gateway_setting(docs, container, "EDGE_GATEWAY_MQTT_LISTEN")
                .unwrap_or_else(|| "127.0.0.1:1883".to_owned());
            let broker_url = gateway_setting(docs, container, "EDGE_GATEWAY_BROKER_URL");
            let metrics = gateway_setting(docs, container, "EDGE_GATEWAY_METRICS_LISTEN")
                .unwrap_or_else(|| "127.0.0.1:9464".to_owned());
            if broker_url.is_none() && listen.ends_with(&format!(":{number}")) {
                Exposure::UnauthenticatedMqtt(format!("{what}: the embedded broker ({listen})"))
            } else if metrics.ends_with(&format!(":{number}")) {
                Exposure::UnauthenticatedHttp(format!("{what}: plain /metrics ({metrics})"))
            } else {
                Exposure::NotMqtt
            }
        } else if image.contains("mosquitto") {
            // It must run the config `broker-config mosquitto` writes, whose listener on
            // this port requires a client certificate and applies the ACL.
            let command = strs(&container["command"]).join(" ");
            assert!(
                command.contains("/mosquitto/config/mosquitto.conf"),
                "{what}: Mosquitto does not run the generated config: {command}"
            );
            let conf = MosquittoConfig {
                listen_address: "0.0.0.0".to_owned(),
                port: u16::try_from(number).unwrap(),
                files_dir: "/mosquitto/config".into(),
                run_as_user: None,
            }
            .render(&RevocationList::default())
            .conf;
            let listener = conf
                .split("\nlistener ")
                .nth(1)
                .unwrap_or_else(|| panic!("no listener in the generated config:\n{conf}"));
            if listener.starts_with(&format!("{number} "))
                && listener.contains("\nrequire_certificate true\n")
                && listener.contains("\nacl_file ")
                && conf.contains("\nallow_anonymous false\n")
            {
                Exposure::MqttWithClientCertificates
            } else {
                Exposure::UnauthenticatedMqtt(format!(
                    "{what}: Mosquitto without client certificates"
                ))
            }
        } else if number == 1883
            || number == 8883
            || port["name"].as_str().is_some_and(|n| n.starts_with("mqtt"))
        {
            Exposure::UnauthenticatedMqtt(format!(
                "{what}: an MQTT port of an unknown image {image}"
            ))
        } else {
            Exposure::NotMqtt
        };
        let unauthenticated = matches!(
            exposure,
            Exposure::UnauthenticatedMqtt(_) | Exposure::UnauthenticatedHttp(_)
        );
        if unauthenticated || worst == Exposure::NotMqtt {
            worst = exposure;
        }
    }
    worst
}

/// Every (Service, port) that exposes MQTT without authentication.
fn unauthenticated_mqtt(docs: &[Yaml]) -> Vec<String> {
    let mut exposed = Vec::new();
    for service in docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Service"))
    {
        for port in service["spec"]["ports"].as_vec().into_iter().flatten() {
            if let Exposure::UnauthenticatedMqtt(what) = classify(docs, service, port) {
                exposed.push(format!(
                    "Service {} ({}) port {}: {what}",
                    service["metadata"]["name"].as_str().unwrap_or("?"),
                    service["spec"]["type"].as_str().unwrap_or("ClusterIP"),
                    port["port"].as_i64().unwrap_or_default()
                ));
            }
        }
    }
    exposed
}

#[test]
fn no_rendered_service_exposes_an_unauthenticated_mqtt_port() {
    for dir in [BASE, EXTERNAL_BROKER] {
        let docs = render(dir);
        let exposed = unauthenticated_mqtt(&docs);
        assert!(
            exposed.is_empty(),
            "{dir} exposes MQTT without authentication: {exposed:#?}"
        );
    }
    // Mosquitto's port is exposed, authenticated.
    let docs = render(EXTERNAL_BROKER);
    let svc = find(&docs, "Service", "mosquitto");
    assert_eq!(
        classify(&docs, svc, &svc["spec"]["ports"][0]),
        Exposure::MqttWithClientCertificates
    );
}

#[test]
fn no_rendered_service_exposes_the_plain_metrics_endpoint() {
    for dir in ALL {
        let docs = render(dir);
        let mut exposed = Vec::new();
        for service in docs
            .iter()
            .filter(|d| d["kind"].as_str() == Some("Service"))
        {
            for port in service["spec"]["ports"].as_vec().into_iter().flatten() {
                if let Exposure::UnauthenticatedHttp(what) = classify(&docs, service, port) {
                    exposed.push(what);
                }
            }
        }
        assert!(
            exposed.is_empty(),
            "{dir} exposes /metrics without authentication: {exposed:#?}"
        );
    }
}

#[test]
fn lab_overlay_exposes_the_embedded_broker_only_with_the_insecure_opt_in() {
    let docs = render(LAB);
    let exposed = unauthenticated_mqtt(&docs);
    assert_eq!(exposed.len(), 1, "{exposed:#?}");
    assert!(exposed[0].contains("edge-gateway-mqtt"), "{exposed:#?}");
    let config = find(&docs, "ConfigMap", "edge-gateway");
    assert_eq!(
        config["data"]["EDGE_GATEWAY_MQTT_LISTEN"].as_str(),
        Some("0.0.0.0:1883")
    );
    assert_eq!(
        config["data"]["EDGE_GATEWAY_EMBEDDED_BROKER_INSECURE_LISTEN"].as_str(),
        Some("true")
    );
    let sts = find(&docs, "StatefulSet", "edge-gateway");
    assert_eq!(
        port_numbers(
            &sts["spec"]["template"]["spec"]["containers"][0]["ports"],
            "containerPort"
        ),
        BTreeSet::from([1883, 9443, 10250])
    );
}

#[test]
fn external_broker_overlay_points_the_gateway_at_mosquitto() {
    let docs = render("deploy/kustomize/overlays/external-broker");
    let sts = find(&docs, "StatefulSet", "edge-gateway");
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_vec().unwrap();
    let value = |name: &str| {
        env.iter()
            .find(|e| e["name"].as_str() == Some(name))
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("{name} not set"))
            .to_string()
    };
    assert!(value("EDGE_GATEWAY_BROKER_URL").starts_with("mqtts://mosquitto.edge-system.svc:8883"));
    for (var, file) in [
        ("EDGE_GATEWAY_BROKER_CA", "ca.pem"),
        ("EDGE_GATEWAY_BROKER_CERT", "client.pem"),
        ("EDGE_GATEWAY_BROKER_KEY", "client.key"),
    ] {
        assert!(value(var).ends_with(file), "{var}");
    }
    // The embedded broker is not exposed any more.
    assert!(
        !docs
            .iter()
            .any(|d| d["metadata"]["name"].as_str() == Some("edge-gateway-mqtt"))
    );
    assert!(!port_numbers(&container["ports"], "containerPort").contains(&1883));
    // Mosquitto runs from the broker-config Secret and listens on 8883.
    let mosquitto = find(&docs, "Deployment", "mosquitto");
    assert_eq!(
        mosquitto["metadata"]["namespace"].as_str(),
        Some("edge-system")
    );
    let pod = &mosquitto["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"].as_str(),
        Some("edge-mosquitto-config")
    );
    assert!(
        strs(&pod["containers"][0]["command"])
            .contains(&"/mosquitto/config/mosquitto.conf".to_string())
    );
    let svc = find(&docs, "Service", "mosquitto");
    assert_eq!(
        port_numbers(&svc["spec"]["ports"], "port"),
        BTreeSet::from([8883])
    );
}

/// Every EDGE_GATEWAY_* variable the manifests set is a real flag of `edge-gateway run`.
#[test]
fn manifest_settings_are_real_gateway_flags() {
    let bin_dir = std::env::var_os("EDGE_TEST_BIN_DIR")
        .map(PathBuf::from)
        .expect("EDGE_TEST_BIN_DIR is not set: run `cargo build --workspace --bins` and `eval \"$(bash scripts/test-env.sh)\"`");
    let bin = bin_dir.join("edge-gateway");
    let out = Command::new(&bin)
        .args(["run", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    // Help text is wrapped: compare with whitespace collapsed.
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(out.status.success(), "{help}");
    let mut names = BTreeSet::new();
    for dir in ALL {
        let docs = render(dir);
        let config = find(&docs, "ConfigMap", "edge-gateway");
        for (k, _) in config["data"].as_hash().unwrap() {
            names.insert(k.as_str().unwrap().to_string());
        }
        let sts = find(&docs, "StatefulSet", "edge-gateway");
        names.extend(env_names(&sts["spec"]["template"]["spec"]["containers"][0]));
    }
    assert!(names.len() > 5);
    for name in names {
        assert!(
            help.contains(&format!("env: {name}=")),
            "{name} is not a flag of edge-gateway run:\n{help}"
        );
    }
}

fn env_value<'a>(container: &'a Yaml, name: &str) -> &'a Yaml {
    container["env"]
        .as_vec()
        .and_then(|v| v.iter().find(|e| e["name"].as_str() == Some(name)))
        .unwrap_or_else(|| panic!("no env {name}"))
}

#[test]
fn the_sharded_overlay_runs_three_replicas_each_with_its_own_identity() {
    let docs = render(SHARDED);
    let sts = find(&docs, "StatefulSet", "edge-gateway");
    assert_eq!(sts["spec"]["replicas"].as_i64(), Some(3));
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let names = env_names(container);
    let id = "EDGE_GATEWAY_REPLICA_ID";
    assert_eq!(
        env_value(container, id)["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name"),
        "the replica id is the pod name"
    );
    assert_eq!(
        env_value(container, "EDGE_GATEWAY_SHARD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"]
            .as_str(),
        Some("metadata.namespace")
    );
    assert!(
        env_value(container, "EDGE_GATEWAY_BROKER_URL")["value"]
            .as_str()
            .unwrap()
            .starts_with("mqtts://"),
        "sharding needs the external broker"
    );
    // each replica its own client certificate, chosen by the replica id defined before it
    let position = |n: &str| names.iter().position(|x| x == n).unwrap();
    for var in ["EDGE_GATEWAY_BROKER_CERT", "EDGE_GATEWAY_BROKER_KEY"] {
        assert!(
            env_value(container, var)["value"]
                .as_str()
                .unwrap()
                .contains("$(EDGE_GATEWAY_REPLICA_ID)"),
            "{var}"
        );
        assert!(position(id) < position(var), "{id} must come before {var}");
    }
}
