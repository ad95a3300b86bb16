use edge_protocol::{EnvVar, PullPolicy, VolumeMount};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::translation::{
    NodeContext, ObjectData, PodReferences, referenced_objects, translate_pod,
};

/// A running pod after `kubectl debug web --image=busybox --target=main -it -c debugger`.
fn debugged_pod() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "apps", "uid": "uid-1"},
        "spec": {
            "containers": [{
                "name": "main", "image": "nginx:1.25",
                "ports": [{"containerPort": 80}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "ephemeralContainers": [{
                "name": "debugger",
                "image": "busybox:1.36",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo $(GREETING)"],
                "env": [
                    {"name": "GREETING", "value": "hi"},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}}
                ],
                "volumeMounts": [{"name": "data", "mountPath": "/debug-data", "readOnly": true}],
                "stdin": true, "stdinOnce": true, "tty": true,
                "targetContainerName": "main",
                "terminationMessagePolicy": "File"
            }, {
                "name": "latest",
                "image": "busybox"
            }]
        }
    }))
    .unwrap()
}

fn refs() -> PodReferences {
    let mut r = PodReferences::default();
    r.config_maps.insert(
        "cfg".into(),
        ObjectData {
            entries: [("mode".to_owned(), b"fast".to_vec())].into(),
        },
    );
    r
}

#[test]
fn ephemeral_containers_reach_the_device_with_what_debug_asked() {
    let t = translate_pod(&debugged_pod(), &refs(), &NodeContext::default()).unwrap();
    assert_eq!(t.spec.containers.len(), 1, "not mixed into the containers");
    let e = &t.spec.ephemeral_containers;
    assert_eq!(e.len(), 2);
    let d = &e[0];
    assert_eq!(d.name, "debugger");
    assert_eq!(d.image, "busybox:1.36");
    assert_eq!(d.image_pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(d.command, vec!["sh", "-c", "echo hi"]);
    let env: Vec<(&str, &str)> = d
        .env
        .iter()
        .map(|EnvVar { name, value }| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(env, vec![("GREETING", "hi"), ("MODE", "fast")]);
    assert_eq!(
        d.volume_mounts,
        vec![VolumeMount {
            name: "data".into(),
            mount_path: "/debug-data".into(),
            read_only: true,
            sub_path: None,
        }]
    );
    assert!(d.stdin && d.stdin_once && d.tty);
    assert_eq!(d.target_container_name.as_deref(), Some("main"));
    // Defaults as for containers: no tag pulls Always; no target, no stdin.
    let l = &e[1];
    assert_eq!(l.image_pull_policy, PullPolicy::Always);
    assert_eq!(l.target_container_name, None);
    assert!(!l.stdin && !l.tty);
}

#[test]
fn their_config_maps_are_fetched_and_a_missing_one_leaves_only_that_container_out() {
    let pod = debugged_pod();
    assert!(referenced_objects(&pod).config_maps.contains("cfg"));
    let t = translate_pod(&pod, &PodReferences::default(), &NodeContext::default()).unwrap();
    assert_eq!(t.spec.containers.len(), 1, "the pod keeps running");
    let names: Vec<&str> = t
        .spec
        .ephemeral_containers
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(names, vec!["latest"]);
    assert_eq!(t.warnings.len(), 1, "{:?}", t.warnings);
    assert_eq!(
        t.warnings[0].message,
        "ephemeral container debugger: configmap \"cfg\" not found"
    );
}

#[test]
fn a_pod_without_ephemeral_containers_sends_none() {
    let mut pod = debugged_pod();
    if let Some(spec) = pod.spec.as_mut() {
        spec.ephemeral_containers = None;
    }
    let t = translate_pod(&pod, &refs(), &NodeContext::default()).unwrap();
    assert!(t.spec.ephemeral_containers.is_empty());
}
