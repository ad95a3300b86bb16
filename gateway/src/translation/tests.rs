use super::*;
use edge_protocol::{EnvVar, FileItem, ProbeHandler, PullPolicy};
use serde_json::json;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web", "namespace": "apps", "uid": "uid-1",
            "labels": {"app": "web"}, "annotations": {"note": "hi"}
        },
        "spec": spec
    }))
    .unwrap()
}

fn node() -> NodeContext {
    NodeContext {
        node_name: "pi-01".into(),
        host_ip: Some("192.168.1.20".into()),
        allocatable_cpu_millis: 4000,
        allocatable_memory_bytes: 4 << 30,
        allocatable_storage_bytes: 1 << 34,
        active_deadline: true,
        runs_init_containers: false,
        lifecycle_hooks: false,
        grpc_probes: false,
        assigns_gpus: false,
        agent_version: "edge-agent 0.9.0".into(),
    }
}

fn refs() -> PodReferences {
    let mut r = PodReferences::default();
    r.config_maps.insert(
        "cfg".into(),
        ObjectData {
            entries: BTreeMap::from([
                ("mode".into(), b"fast".to_vec()),
                ("app.conf".into(), b"x=1\n".to_vec()),
                ("bad-key!".into(), b"v".to_vec()),
            ]),
        },
    );
    r.secrets.insert(
        "creds".into(),
        ObjectData {
            entries: BTreeMap::from([("password".into(), b"hunter2".to_vec())]),
        },
    );
    r.tokens.insert(
        TokenSpec {
            audience: String::new(),
            expiration_seconds: 3600,
        },
        ServiceAccountToken("jwt-default".into()),
    );
    r
}

fn env_of(t: &Translation) -> Vec<(String, String)> {
    t.spec.containers[0]
        .env
        .iter()
        .map(|EnvVar { name, value }| (name.clone(), value.clone()))
        .collect()
}

#[test]
fn resolves_every_env_source() {
    let p = pod(json!({
        "nodeName": "pi-01",
        "containers": [{
            "name": "app", "image": "busybox:1.36",
            "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "250m"}},
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            "env": [
                {"name": "PLAIN", "value": "v"},
                {"name": "EXPANDED", "value": "$(PLAIN)-$(CFG_mode)-$$(PLAIN)"},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
                {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}}
            ]
        }]
    }));
    let t = translate_pod(&p, &refs(), &node()).unwrap();
    let env = env_of(&t);
    let get = |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(get("CFG_mode").as_deref(), Some("fast"));
    assert_eq!(get("CFG_app.conf").as_deref(), Some("x=1\n"));
    assert_eq!(
        get("CFG_bad-key!").as_deref(),
        Some("v"),
        "printable names are valid"
    );
    assert_eq!(get("EXPANDED").as_deref(), Some("v-fast-$(PLAIN)"));
    assert_eq!(get("MODE").as_deref(), Some("fast"));
    assert_eq!(get("PASS").as_deref(), Some("hunter2"));
    assert_eq!(get("OPT"), None);
    assert_eq!(get("POD").as_deref(), Some("web"));
    assert_eq!(get("NS").as_deref(), Some("apps"));
    assert_eq!(get("APP").as_deref(), Some("web"));
    assert_eq!(get("NODE").as_deref(), Some("pi-01"));
    assert_eq!(get("HOST_IP").as_deref(), Some("192.168.1.20"));
    assert_eq!(get("MEM_MI").as_deref(), Some("128"));
    assert_eq!(get("CPU_LIMIT").as_deref(), Some("4"), "node allocatable");
    assert_eq!(get("CPU_REQ_M").as_deref(), Some("250"));
    let c = &t.spec.containers[0];
    assert_eq!(c.resources.cpu_request_millis, Some(250));
    assert_eq!(c.resources.memory_limit_bytes, Some(128 << 20));
    assert_eq!(c.image_pull_policy, PullPolicy::IfNotPresent);
}

#[test]
fn env_overrides_env_from_and_order_is_kept() {
    let p = pod(json!({"containers": [{
        "name": "app", "image": "busybox",
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [{"name": "mode", "value": "slow"}]
    }]}));
    let t = translate_pod(&p, &refs(), &node()).unwrap();
    let env = env_of(&t);
    assert_eq!(env.iter().filter(|(k, _)| k == "mode").count(), 1);
    assert!(env.contains(&("mode".into(), "slow".into())));
    assert_eq!(t.spec.containers[0].image_pull_policy, PullPolicy::Always);
}

#[test]
fn missing_references_are_clear_errors() {
    let p = pod(json!({"containers": [{"name": "a", "image": "x",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}]}));
    assert_eq!(
        translate_pod(&p, &refs(), &node()).unwrap_err(),
        TranslationError::ConfigMapNotFound("absent".into())
    );
    let p = pod(json!({"containers": [{"name": "a", "image": "x",
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nokey"}}}]}]}));
    let err = translate_pod(&p, &refs(), &node()).unwrap_err();
    assert_eq!(err.to_string(), "couldn't find key nokey in Secret creds");
    let p = pod(json!({"containers": [{"name": "a", "image": "x"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]}));
    assert!(matches!(
        translate_pod(&p, &refs(), &node()),
        Err(TranslationError::UnsupportedVolume(_))
    ));
}

#[test]
fn volumes_become_files() {
    let p = pod(json!({
        "containers": [{"name": "app", "image": "x", "volumeMounts": [
            {"name": "conf", "mountPath": "/etc/app"},
            {"name": "sec", "mountPath": "/etc/sec", "readOnly": true},
            {"name": "info", "mountPath": "/etc/info"},
            {"name": "proj", "mountPath": "/etc/proj"},
            {"name": "scratch", "mountPath": "/tmp/s"},
            {"name": "gpio", "mountPath": "/dev/gpiomem"}
        ]}],
        "volumes": [
            {"name": "conf", "configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "conf/app.conf", "mode": 256}]}},
            {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 256}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}
            ]}},
            {"name": "proj", "projected": {"sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "mode", "path": "mode"}]}},
                {"secret": {"name": "creds"}},
                {"serviceAccountToken": {"path": "token"}},
                {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
            ]}},
            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {"name": "gpio", "hostPath": {"path": "/dev/gpiomem", "type": "CharDevice"}}
        ]
    }));
    let t = translate_pod(&p, &refs(), &node()).unwrap();
    let files = |name: &str| match &t
        .spec
        .volumes
        .iter()
        .find(|v| v.name == name)
        .unwrap()
        .source
    {
        VolumeSource::Files { files, sensitive } => (files.clone(), *sensitive),
        other => panic!("{other:?}"),
    };
    let (conf, sensitive) = files("conf");
    assert!(!sensitive);
    assert_eq!(
        conf,
        vec![FileItem {
            path: "conf/app.conf".into(),
            content: "x=1\n".into(),
            mode: 0o400
        }]
    );
    let (sec, sensitive) = files("sec");
    assert!(sensitive);
    assert_eq!(sec[0].content.as_slice(), b"hunter2");
    assert_eq!(sec[0].mode, 0o400);
    let (info, _) = files("info");
    assert_eq!(info[0].content.as_slice(), b"web");
    assert_eq!(info[1].content.as_slice(), b"app=\"web\"");
    let (proj, sensitive) = files("proj");
    assert!(sensitive);
    let paths: Vec<_> = proj.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["mode", "password", "token", "ns"]);
    assert_eq!(proj[2].content.as_slice(), b"jwt-default");
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert_eq!(
        t.spec
            .volumes
            .iter()
            .find(|v| v.name == "scratch")
            .unwrap()
            .source,
        VolumeSource::EmptyDir {
            in_memory: true,
            size_limit_bytes: Some(64 << 20)
        }
    );
    let c = &t.spec.containers[0];
    assert_eq!(c.devices.len(), 1);
    assert_eq!(c.devices[0].host_path, "/dev/gpiomem");
    assert!(c.volume_mounts.iter().all(|m| m.name != "gpio"));
    assert!(
        c.volume_mounts
            .iter()
            .any(|m| m.name == "sec" && m.read_only)
    );
}

#[test]
fn unsafe_item_paths_are_refused() {
    let p = pod(json!({"containers": [{"name": "a", "image": "x"}],
        "volumes": [{"name": "c", "configMap": {"name": "cfg", "items": [{"key": "mode", "path": "../escape"}]}}]}));
    assert_eq!(
        translate_pod(&p, &refs(), &node()).unwrap_err(),
        TranslationError::UnsafePath("../escape".into())
    );
}

#[test]
fn named_probe_ports_are_resolved() {
    let p = pod(json!({"containers": [{"name": "web", "image": "x",
        "ports": [{"name": "http", "containerPort": 8080}],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "readinessProbe": {"tcpSocket": {"port": 8080}},
        "startupProbe": {"exec": {"command": ["true"]}}
    }]}));
    let t = translate_pod(&p, &refs(), &node()).unwrap();
    let c = &t.spec.containers[0];
    match &c.liveness_probe.as_ref().unwrap().handler {
        ProbeHandler::HttpGet {
            port, path, scheme, ..
        } => {
            assert_eq!(
                (*port, path.as_str(), scheme.as_str()),
                (8080, "/healthz", "HTTP")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.liveness_probe.as_ref().unwrap().period_seconds, 5);
    assert!(matches!(
        c.readiness_probe.as_ref().unwrap().handler,
        ProbeHandler::TcpSocket { port: 8080, .. }
    ));
    let bad = pod(json!({"containers": [{"name": "web", "image": "x",
        "livenessProbe": {"httpGet": {"port": "metrics"}}}]}));
    assert_eq!(
        translate_pod(&bad, &refs(), &node()).unwrap_err(),
        TranslationError::UnknownProbePort {
            container: "web".into(),
            port: "metrics".into()
        }
    );
}

#[test]
fn pull_secrets_deletion_and_references() {
    let auth = base64::engine::general_purpose::STANDARD.encode("u:p");
    let mut r = refs();
    r.secrets.insert(
        "regcred".into(),
        ObjectData {
            entries: BTreeMap::from([(
                ".dockerconfigjson".into(),
                format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#).into_bytes(),
            )]),
        },
    );
    use base64::Engine as _;
    let mut p = pod(json!({
        "terminationGracePeriodSeconds": 5,
        "restartPolicy": "OnFailure",
        "imagePullSecrets": [{"name": "regcred"}, {"name": "missing"}],
        "containers": [{"name": "a", "image": "127.0.0.1:5000/app:1"}]
    }));
    let names = referenced_objects(&p);
    assert!(names.secrets.contains("regcred") && names.secrets.contains("missing"));
    let t = translate_pod(&p, &r, &node()).unwrap();
    assert_eq!(t.spec.registry_credentials.len(), 1);
    assert_eq!(t.spec.registry_credentials[0].username, "u");
    assert!(t.warnings.iter().any(|w| w.message.contains("missing")));
    assert!(t.warnings.iter().any(|w| w.message.contains("missing")
        && w.reason == crate::kube_writer::EventReason::FailedToRetrieveImagePullSecret));
    assert_eq!(t.spec.restart_policy, RestartPolicy::OnFailure);
    assert_eq!(t.spec.termination_grace_period_seconds, 5);
    assert_eq!(t.spec.deletion_grace_period_seconds, None);
    assert_eq!(t.spec.hostname.as_deref(), Some("web"));
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::from_second(1_700_000_000).unwrap(),
    ));
    p.metadata.deletion_grace_period_seconds = Some(3);
    let t = translate_pod(&p, &r, &node()).unwrap();
    assert_eq!(t.spec.deletion_grace_period_seconds, Some(3));
    assert!(t.spec.is_terminating());
}

#[test]
fn referenced_objects_lists_everything() {
    let p = pod(json!({"containers": [{"name": "a", "image": "x",
    "envFrom": [{"secretRef": {"name": "s1"}}],
    "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c1", "key": "k"}}}]}],
    "volumes": [
        {"name": "v", "configMap": {"name": "c2"}},
        {"name": "p", "projected": {"sources": [{"secret": {"name": "s2"}}]}}
    ]}));
    let names = referenced_objects(&p);
    assert_eq!(
        names.config_maps,
        BTreeSet::from(["c1".to_owned(), "c2".to_owned()])
    );
    assert_eq!(
        names.secrets,
        BTreeSet::from(["s1".to_owned(), "s2".to_owned()])
    );
}

#[test]
fn init_containers_are_refused_clearly() {
    let p = pod(json!({"initContainers": [{"name": "i", "image": "x"}],
        "containers": [{"name": "a", "image": "x"}]}));
    let err = translate_pod(&p, &refs(), &node()).unwrap_err();
    assert!(err.to_string().contains("init containers"), "{err}");
    assert!(err.to_string().contains("edge-agent 0.9.0"), "{err}");
}

#[test]
fn init_containers_and_sidecars_go_to_agents_that_run_them() {
    let p = pod(json!({
        "initContainers": [
            {"name": "side", "image": "busybox:1.36", "restartPolicy": "Always",
             "env": [{"name": "A", "value": "1"}]},
            {"name": "setup", "image": "busybox:1.36", "command": ["sh", "-c", "echo hi"]}
        ],
        "containers": [{"name": "a", "image": "x:1"}]}));
    let capable = NodeContext {
        runs_init_containers: true,
        ..node()
    };
    let t = translate_pod(&p, &refs(), &capable).unwrap();
    let names: Vec<&str> = t
        .spec
        .init_containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["side", "setup"]);
    assert!(t.spec.init_containers[0].is_sidecar());
    assert!(!t.spec.init_containers[1].is_sidecar());
    assert_eq!(t.spec.init_containers[0].env[0].value, "1");
    assert_eq!(
        t.spec.init_containers[1].command,
        vec!["sh", "-c", "echo hi"]
    );
    assert!(t.spec.containers[0].restart_policy.is_none());
}

#[test]
fn the_log_cache_annotation_opts_a_pod_out() {
    let spec = json!({"nodeName": "pi-01", "containers": [{"name": "app", "image": "busybox"}]});
    let t = translate_pod(&pod(spec.clone()), &refs(), &node()).unwrap();
    assert!(!t.spec.log_cache_opt_out, "cached unless the pod opts out");
    let mut p = pod(spec);
    p.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(LOG_CACHE_ANNOTATION.into(), "off".into());
    let t = translate_pod(&p, &refs(), &node()).unwrap();
    assert!(t.spec.log_cache_opt_out);
}

/// The `kube-api-access-*` volume the ServiceAccount admission adds to every pod.
fn api_access_pod(audience: Option<&str>) -> Pod {
    let mut token = serde_json::json!({"expirationSeconds": 3607, "path": "token"});
    if let Some(a) = audience {
        token["audience"] = a.into();
    }
    pod(serde_json::json!({
        "serviceAccountName": "sensor",
        "containers": [{"name": "app", "image": "busybox", "volumeMounts": [
            {"name": "kube-api-access-x1", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
        ]}],
        "volumes": [{"name": "kube-api-access-x1", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": token},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}}]
    }))
}

#[test]
fn the_kube_api_access_volume_carries_token_ca_and_namespace() {
    let p = api_access_pod(Some("vault"));
    let names = referenced_objects(&p);
    let spec = TokenSpec {
        audience: "vault".into(),
        expiration_seconds: 3607,
    };
    assert_eq!(names.tokens, [spec.clone()].into());
    assert!(names.config_maps.contains("kube-root-ca.crt"));
    assert_eq!(service_account_of(&p), "sensor");
    let mut r = PodReferences::default();
    r.config_maps.insert(
        "kube-root-ca.crt".into(),
        ObjectData {
            entries: BTreeMap::from([("ca.crt".into(), b"PEM".to_vec())]),
        },
    );
    // without the token the pod cannot start (the kubelet fails the mount likewise)
    assert_eq!(
        translate_pod(&p, &r, &node()).unwrap_err(),
        TranslationError::TokenMissing("token".into())
    );
    r.tokens
        .insert(spec, ServiceAccountToken("jwt-vault".into()));
    let t = translate_pod(&p, &r, &node()).unwrap();
    let VolumeSource::Files { files, sensitive } = &t.spec.volumes[0].source else {
        panic!("{:?}", t.spec.volumes[0]);
    };
    assert!(sensitive, "a token is Secret-grade data");
    let got: Vec<(&str, &[u8])> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_slice()))
        .collect();
    assert_eq!(
        got,
        [
            ("token", &b"jwt-vault"[..]),
            ("ca.crt", b"PEM"),
            ("namespace", b"apps")
        ]
    );
    // the secret text does not show in the references' debug output
    assert!(!format!("{r:?}").contains("jwt-vault"));
}

#[test]
fn active_deadline_goes_to_agents_that_end_pods_and_is_refused_for_older_ones() {
    let mut p = pod(json!({
        "activeDeadlineSeconds": 30,
        "containers": [{"name": "app", "image": "busybox"}]
    }));
    let t = translate_pod(&p, &refs(), &node()).unwrap();
    assert_eq!(t.spec.active_deadline_seconds, Some(30));
    let old = NodeContext {
        active_deadline: false,
        ..node()
    };
    let e = translate_pod(&p, &refs(), &old).unwrap_err();
    assert!(e.to_string().contains("activeDeadlineSeconds"), "{e}");
    p.spec.as_mut().unwrap().active_deadline_seconds = None;
    assert!(translate_pod(&p, &refs(), &old).is_ok());
}

#[test]
fn hooks_and_termination_messages_are_not_applied_only_on_agents_without_them() {
    let p = pod(json!({"containers": [{
        "name": "a", "image": "x:1",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "lifecycle": {
            "postStart": {"exec": {"command": ["touch", "/tmp/up"]}},
            "preStop": {"tcpSocket": {"port": 80}}
        }
    }]}));
    let not_applied_fields = |t: &Translation| -> Vec<String> {
        t.warnings
            .iter()
            .filter(|w| w.reason == EventReason::FieldsNotApplied)
            .map(|w| w.message.clone())
            .collect()
    };
    let old = translate_pod(&p, &refs(), &node()).unwrap();
    let warned = not_applied_fields(&old).join("");
    assert!(
        warned.contains("spec.containers[a].lifecycle.postStart")
            && warned.contains("spec.containers[a].terminationMessagePolicy"),
        "{warned}"
    );
    let capable = NodeContext {
        lifecycle_hooks: true,
        ..node()
    };
    let new = translate_pod(&p, &refs(), &capable).unwrap();
    // the tcpSocket hook is still not applied (the kubelet runs none)
    let warned = not_applied_fields(&new).join("");
    assert!(
        warned.contains("lifecycle.preStop.tcpSocket")
            && !warned.contains("lifecycle.postStart")
            && !warned.contains("terminationMessagePolicy"),
        "{warned}"
    );
    let c = &new.spec.containers[0];
    assert!(
        c.lifecycle
            .as_ref()
            .is_some_and(|l| l.post_start.is_some() && l.pre_stop.is_none())
    );
    assert_eq!(
        c.termination_message_policy,
        edge_protocol::TerminationMessagePolicy::FallbackToLogsOnError
    );
}

#[test]
fn grpc_probes_go_to_agents_that_run_them_and_are_refused_for_older_ones() {
    let p = pod(json!({"containers": [{"name": "api", "image": "x:1",
        "readinessProbe": {"grpc": {"port": 9090, "service": "ready"}, "timeoutSeconds": 2},
        "livenessProbe": {"grpc": {"port": 9090, "service": ""}}
    }]}));
    let e = translate_pod(&p, &refs(), &node()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "container api: the agent on this device (edge-agent 0.9.0) does not run gRPC probes; upgrade edge-agent to a version that declares them (protocol 1.3)"
    );
    let capable = NodeContext {
        grpc_probes: true,
        ..node()
    };
    let t = translate_pod(&p, &refs(), &capable).unwrap();
    let c = &t.spec.containers[0];
    let readiness = c.readiness_probe.as_ref().unwrap();
    assert_eq!(
        readiness.handler,
        ProbeHandler::Grpc {
            port: 9090,
            service: Some("ready".into())
        }
    );
    assert_eq!(readiness.timeout_seconds, 2);
    assert_eq!(
        c.liveness_probe.as_ref().unwrap().handler,
        ProbeHandler::Grpc {
            port: 9090,
            service: None
        }
    );
    let bad = pod(json!({"containers": [{"name": "api", "image": "x:1",
        "livenessProbe": {"grpc": {"port": 0}}}]}));
    assert_eq!(
        translate_pod(&bad, &refs(), &capable).unwrap_err(),
        TranslationError::BadPort(0)
    );
}

#[test]
fn gpu_limits_are_sent_and_warned_about_only_for_agents_without_gpu_assignment() {
    let p = pod(json!({
        "containers": [{"name": "infer", "image": "x:1",
            "resources": {"limits": {"nvidia.com/gpu": "2", "memory": "1Gi"},
                          "requests": {"nvidia.com/gpu": "2"}}}]
    }));
    let not_applied = |t: &Translation| {
        t.warnings
            .iter()
            .filter(|w| w.reason == EventReason::FieldsNotApplied)
            .map(|w| w.message.clone())
            .collect::<Vec<_>>()
    };
    let old = translate_pod(&p, &refs(), &node()).unwrap();
    let warned = not_applied(&old);
    assert!(
        warned.len() == 1 && warned[0].contains("resources[nvidia.com/gpu]"),
        "{warned:?}"
    );
    let capable = NodeContext {
        assigns_gpus: true,
        ..node()
    };
    let t = translate_pod(&p, &refs(), &capable).unwrap();
    assert!(not_applied(&t).is_empty(), "{:?}", t.warnings);
    let r = &t.spec.containers[0].resources;
    assert_eq!(r.extended.get("nvidia.com/gpu"), Some(&2));
    assert_eq!(r.extended.len(), 1, "cpu/memory are not extended: {r:?}");
    assert_eq!(r.memory_limit_bytes, Some(1 << 30));
}
