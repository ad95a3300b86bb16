//! The gateway's kustomize base and the external-broker overlay render with the real
//! `kubectl kustomize`, hold what a deployment needs, and the ClusterRole grants exactly
//! the API calls the gateway makes (`edge_gateway::rbac::API_PERMISSIONS`), both ways.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use edge_gateway::rbac::API_PERMISSIONS;
use yaml_rust2::{Yaml, YamlLoader};

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

/// (apiGroup, resource, verb) triples a ClusterRole grants.
fn granted(role: &Yaml) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for rule in role["rules"].as_vec().unwrap() {
        assert!(
            rule["resourceNames"].is_badvalue(),
            "unexpected resourceNames: {rule:?}"
        );
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
                    set.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    set
}

fn used() -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    for p in API_PERMISSIONS {
        for verb in p.verbs {
            set.insert((
                p.api_group.to_string(),
                p.resource.to_string(),
                verb.to_string(),
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
fn cluster_role_grants_exactly_what_the_gateway_calls() {
    for dir in [
        "deploy/kustomize/base",
        "deploy/kustomize/overlays/external-broker",
    ] {
        let docs = render(dir);
        let roles: Vec<&Yaml> = docs
            .iter()
            .filter(|d| matches!(d["kind"].as_str(), Some("ClusterRole" | "Role")))
            .collect();
        assert_eq!(roles.len(), 1, "{dir}: expected one (Cluster)Role");
        let granted = granted(roles[0]);
        let used = used();
        let extra: Vec<_> = granted.difference(&used).collect();
        let missing: Vec<_> = used.difference(&granted).collect();
        assert!(
            extra.is_empty(),
            "{dir}: the ClusterRole grants calls the gateway never makes: {extra:?}"
        );
        assert!(
            missing.is_empty(),
            "{dir}: the ClusterRole lacks calls the gateway makes: {missing:?}"
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
    assert_eq!(
        port_numbers(&container["ports"], "containerPort"),
        BTreeSet::from([1883, 9464, 10250])
    );

    // Services: kubelet API and MQTT.
    let svc = find(&docs, "Service", "edge-gateway");
    assert!(port_numbers(&svc["spec"]["ports"], "port").contains(&10250));
    let mqtt = find(&docs, "Service", "edge-gateway-mqtt");
    assert_eq!(
        port_numbers(&mqtt["spec"]["ports"], "port"),
        BTreeSet::from([1883])
    );
    for s in [svc, mqtt] {
        assert_eq!(
            s["spec"]["selector"]["app.kubernetes.io/name"].as_str(),
            sts["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"].as_str()
        );
    }
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
    for dir in [
        "deploy/kustomize/base",
        "deploy/kustomize/overlays/external-broker",
    ] {
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
