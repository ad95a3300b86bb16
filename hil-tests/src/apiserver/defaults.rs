//! Defaulting and admission on create, per kind, as kube-apiserver's defaulters, registry
//! strategies and default admission plugins (NamespaceLifecycle, ServiceAccount,
//! DefaultTolerationSeconds) do it.

use serde_json::{Value, json};

use super::clock;

fn set_default(obj: &mut Value, key: &str, v: Value) {
    if let Some(m) = obj.as_object_mut()
        && m.get(key).is_none_or(Value::is_null)
    {
        m.insert(key.to_string(), v);
    }
}

fn image_pull_policy(image: &str) -> &'static str {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match last.split_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    if let Some(img) = c.get("image").and_then(Value::as_str).map(str::to_string) {
        set_default(c, "imagePullPolicy", json!(image_pull_policy(&img)));
    }
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    // Requests default to limits when only limits are given.
    if let Some(limits) = c.pointer("/resources/limits").cloned()
        && let Some(res) = c.get_mut("resources")
    {
        let req = res
            .as_object_mut()
            .map(|r| r.entry("requests").or_insert_with(|| json!({})).clone());
        if let (Some(Value::Object(mut req)), Value::Object(lim)) = (req, limits) {
            for (k, v) in lim {
                req.entry(k).or_insert(v);
            }
            res["requests"] = Value::Object(req);
        }
    }
}

/// QoS class of a pod spec (Guaranteed, Burstable, BestEffort).
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(res));
            let r = req.and_then(|r| r.get(res));
            if l.is_none() || r != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Defaults kube-apiserver applies on every write of a pod (decoding defaults).
pub fn pod_on_write(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec") else {
        return;
    };
    for k in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(k).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "enableServiceLinks", json!(true));
}

/// Defaults of a pod template's spec (SetDefaults_PodSpec and the container defaulters; no
/// admission, which only runs on pods).
fn pod_template(template: Option<&mut Value>) {
    let Some(spec) = template.and_then(|t| t.get_mut("spec")) else {
        return;
    };
    for k in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(k).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
}

/// apps/v1 defaulters (SetDefaults_Deployment, _ReplicaSet, _DaemonSet), applied on every
/// write like decoding defaults.
pub fn workload_on_write(storage: &str, obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    match storage {
        "deployments" => {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "strategy", json!({}));
            if let Some(strategy) = spec.get_mut("strategy") {
                set_default(strategy, "type", json!("RollingUpdate"));
                if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    set_default(strategy, "rollingUpdate", json!({}));
                    if let Some(ru) = strategy.get_mut("rollingUpdate") {
                        set_default(ru, "maxUnavailable", json!("25%"));
                        set_default(ru, "maxSurge", json!("25%"));
                    }
                }
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
        }
        "replicasets" => set_default(spec, "replicas", json!(1)),
        "daemonsets" => {
            set_default(spec, "updateStrategy", json!({}));
            if let Some(strategy) = spec.get_mut("updateStrategy") {
                set_default(strategy, "type", json!("RollingUpdate"));
                if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    set_default(strategy, "rollingUpdate", json!({}));
                    if let Some(ru) = strategy.get_mut("rollingUpdate") {
                        set_default(ru, "maxUnavailable", json!(1));
                        set_default(ru, "maxSurge", json!(0));
                    }
                }
            }
            set_default(spec, "revisionHistoryLimit", json!(10));
        }
        _ => return,
    }
    pod_template(spec.get_mut("template"));
}

/// Pod defaults and create-time status (PodStrategy.PrepareForCreate).
pub fn pod_on_create(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec") else {
        return;
    };
    for k in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(k).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "priority", json!(0));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    // ServiceAccount admission.
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .or_else(|| spec.get("serviceAccount").and_then(Value::as_str))
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(sa);
    spec["serviceAccount"] = json!(sa);
    // DefaultTolerationSeconds admission.
    let tolerations = spec
        .as_object_mut()
        .map(|s| s.entry("tolerations").or_insert_with(|| json!([])));
    if let Some(Value::Array(tols)) = tolerations {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let has = tols.iter().any(|t| {
                let k = t.get("key").and_then(Value::as_str);
                let e = t.get("effect").and_then(Value::as_str);
                (k == Some(key) || k.is_none_or(str::is_empty))
                    && (e == Some("NoExecute") || e.is_none_or(str::is_empty))
            });
            if !has {
                tols.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    let qos = qos_class(spec);
    pod["status"] = json!({ "phase": "Pending", "qosClass": qos });
}

/// The ServiceAccount admission plugin's token volume: a `kube-api-access-xxxxx` projected
/// volume (token, `kube-root-ca.crt`, namespace) mounted read-only at
/// `/var/run/secrets/kubernetes.io/serviceaccount` in every container, unless the pod or the
/// ServiceAccount sets `automountServiceAccountToken: false`.
pub fn inject_service_account_token(pod: &mut Value, sa: &Value) {
    let pod_opt = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool);
    let sa_opt = sa
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool);
    if pod_opt == Some(false) || (pod_opt.is_none() && sa_opt == Some(false)) {
        return;
    }
    const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let suffix: String = uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| b"bcdfghjklmnpqrstvwxz2456789"[(*b as usize) % 27] as char)
        .collect();
    let name = format!("kube-api-access-{suffix}");
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(v) = volumes.as_array_mut() {
        v.push(json!({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}}));
    }
    for k in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(k).and_then(Value::as_array_mut) {
            for c in cs {
                let Some(c) = c.as_object_mut() else { continue };
                let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                if let Some(m) = mounts.as_array_mut()
                    && !m
                        .iter()
                        .any(|x| x.get("mountPath").and_then(Value::as_str) == Some(MOUNT))
                {
                    m.push(json!({"name": name, "readOnly": true, "mountPath": MOUNT}));
                }
            }
        }
    }
}

/// Namespace defaults (finalizer `kubernetes`, phase Active, metadata.name label).
pub fn namespace_on_create(ns: &mut Value, name: &str) {
    ns["spec"] = json!({ "finalizers": ["kubernetes"] });
    ns["status"] = json!({ "phase": "Active" });
    if let Some(meta) = ns.get_mut("metadata").and_then(Value::as_object_mut) {
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        labels["kubernetes.io/metadata.name"] = json!(name);
    }
}

/// Service defaults (type, sessionAffinity, ports, cluster IP from `next_ip`).
pub fn service_on_create(svc: &mut Value, cluster_ip: String) {
    if let Some(spec) = svc.get_mut("spec") {
        set_default(spec, "type", json!("ClusterIP"));
        set_default(spec, "sessionAffinity", json!("None"));
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        if !headless {
            spec["clusterIP"] = json!(cluster_ip);
            spec["clusterIPs"] = json!([cluster_ip]);
        } else {
            spec["clusterIPs"] = json!(["None"]);
        }
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports {
                set_default(p, "protocol", json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    set_default(p, "targetPort", port);
                }
            }
        }
    }
    svc["status"] = json!({ "loadBalancer": {} });
}

/// Secret defaults.
pub fn secret_on_create(s: &mut Value) {
    set_default(s, "type", json!("Opaque"));
}

/// CSR create: the requesting user goes into the spec, status starts empty.
pub fn csr_on_create(csr: &mut Value, user: &str, groups: &[&str]) {
    if let Some(spec) = csr.get_mut("spec") {
        spec["username"] = json!(user);
        spec["groups"] = json!(groups);
    }
    csr["status"] = json!({});
}

/// Fills lastUpdateTime/lastTransitionTime of CSR conditions that lack them.
pub fn stamp_conditions(conditions: &mut Value) {
    if let Some(cs) = conditions.as_array_mut() {
        for c in cs {
            let now = clock::now();
            set_default(c, "lastUpdateTime", json!(now.clone()));
            set_default(c, "lastTransitionTime", json!(now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_defaults_like_kube_apiserver() {
        let mut p = json!({"spec":{"containers":[{"name":"c","image":"busybox"}]}});
        pod_on_create(&mut p);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
        assert_eq!(p["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
    }
}
