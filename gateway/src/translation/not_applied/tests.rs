use super::*;
use serde_json::json;

fn pod(spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
}

#[test]
fn a_pod_as_the_api_server_defaults_it_sets_nothing_a_device_ignores() {
    // what kube-apiserver fills in on every pod: none of it counts
    let p = pod(json!({
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "enableServiceLinks": true,
        "priority": 0,
        "schedulerName": "default-scheduler",
        "containers": [{
            "name": "app", "image": "busybox",
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "resources": {"limits": {"cpu": "1", "memory": "64Mi"}, "requests": {"ephemeral-storage": "1Gi"}},
            "securityContext": {"privileged": false}
        }]
    }));
    assert_eq!(not_applied(&p), Vec::<String>::new());
}

#[test]
fn hooks_security_context_and_extended_resources_are_named() {
    let p = pod(json!({
        "hostPID": true,
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
        "initContainers": [{"name": "init", "image": "busybox",
            "terminationMessagePolicy": "FallbackToLogsOnError"}],
        "containers": [{
            "name": "app", "image": "busybox",
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}},
            "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true},
            "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}}
        }]
    }));
    assert_eq!(
        not_applied(&p),
        [
            "spec.hostPID",
            "spec.securityContext.runAsUser",
            "spec.securityContext.fsGroup",
            "spec.containers[app].lifecycle.preStop",
            "spec.containers[app].securityContext.runAsNonRoot",
            "spec.containers[app].securityContext.readOnlyRootFilesystem",
            "spec.containers[app].securityContext.capabilities",
            "spec.containers[app].securityContext.allowPrivilegeEscalation",
            "spec.containers[app].resources[nvidia.com/gpu]",
            "spec.initContainers[init].terminationMessagePolicy",
        ]
    );
    let m = message(&not_applied(&p));
    assert!(
        m.contains("spec.hostPID, spec.securityContext.runAsUser") && m.contains("docs/agent.md"),
        "{m}"
    );
}
