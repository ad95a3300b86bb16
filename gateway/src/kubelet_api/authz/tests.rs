use super::*;
use axum::http::Method;

#[test]
fn methods_map_to_verbs_as_the_kubelet_maps_them() {
    assert_eq!(verb_of(&Method::GET), "get");
    assert_eq!(verb_of(&Method::POST), "create");
    assert_eq!(verb_of(&Method::PUT), "update");
    assert_eq!(verb_of(&Method::PATCH), "patch");
    assert_eq!(verb_of(&Method::DELETE), "delete");
    assert_eq!(verb_of(&Method::HEAD), "");
    assert_eq!(verb_of(&Method::OPTIONS), "");
}

#[test]
fn paths_map_to_subresources_as_the_kubelet_maps_them() {
    let cases: &[(&str, &[&str])] = &[
        ("/containerLogs/ns/pod/c", &["proxy"]),
        ("/exec/ns/pod/c", &["proxy"]),
        ("/attach/ns/pod/c", &["proxy"]),
        ("/portForward/ns/pod", &["proxy"]),
        ("/run/ns/pod/c", &["proxy"]),
        ("/pods", &["pods", "proxy"]),
        ("/pods/", &["pods", "proxy"]),
        ("/runningpods/", &["pods", "proxy"]),
        ("/healthz", &["healthz", "proxy"]),
        ("/healthz/ping", &["healthz", "proxy"]),
        ("/configz", &["configz", "proxy"]),
        ("/statusz", &["statusz", "proxy"]),
        ("/stats/summary", &["stats"]),
        ("/stats", &["stats"]),
        ("/metrics", &["metrics"]),
        ("/metrics/cadvisor", &["metrics"]),
        ("/metrics/resource", &["metrics"]),
        ("/logs/", &["log"]),
        ("/logs/syslog", &["log"]),
        ("/checkpoint/ns/pod/c", &["checkpoint"]),
        // prefixes count only at a path boundary
        ("/podsx", &["proxy"]),
        ("/metricsfoo", &["proxy"]),
        ("/healthzz", &["proxy"]),
        ("/", &["proxy"]),
        ("/spec/", &["proxy"]),
    ];
    for (path, want) in cases {
        assert_eq!(subresources_of(path), *want, "{path}");
    }
}

#[test]
fn pod_paths_name_their_pod() {
    assert_eq!(pod_of_path("/containerLogs/ns/pod/c"), Some(("ns", "pod")));
    assert_eq!(pod_of_path("/portForward/ns/pod"), Some(("ns", "pod")));
    assert_eq!(pod_of_path("/exec/ns/pod/c"), Some(("ns", "pod")));
    assert_eq!(pod_of_path("/containerLogs/ns"), None);
    assert_eq!(pod_of_path("/containerLogs//p/c"), None);
    assert_eq!(pod_of_path("/pods"), None);
    assert_eq!(pod_of_path("/healthz"), None);
}

#[test]
fn reviews_ask_about_nodes_in_core_v1() {
    let user = UserInfo {
        username: "alice".into(),
        groups: vec!["dev".into(), "system:authenticated".into()],
        ..Default::default()
    };
    let spec = review_spec(&user, "get", "proxy", Some("pi-01"));
    let ra = spec.resource_attributes.unwrap_or_default();
    assert_eq!(ra.resource.as_deref(), Some("nodes"));
    assert_eq!(ra.subresource.as_deref(), Some("proxy"));
    assert_eq!(ra.name.as_deref(), Some("pi-01"));
    assert_eq!(ra.version.as_deref(), Some("v1"));
    assert_eq!(ra.namespace, None);
    assert_eq!(spec.user.as_deref(), Some("alice"));
    assert_eq!(
        spec.groups.unwrap_or_default(),
        vec!["dev", "system:authenticated"]
    );
}

#[test]
fn forbidden_reads_like_the_kubelet() {
    let e = AuthzError::Forbidden {
        user: "alice".into(),
        verb: "get".into(),
        subresources: vec!["pods".into(), "proxy".into()],
    };
    assert_eq!(
        e.to_string(),
        "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])"
    );
}
