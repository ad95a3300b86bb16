//! Discovery documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}[/{version}]`,
//! and aggregated discovery (`apidiscovery.k8s.io/v2` and `v2beta1`) when the client asks;
//! the metrics API ([`metrics_api`]) is listed as metrics-server's APIService would be.

use serde_json::{Value, json};

use super::metrics_api;
use super::resources::{self, RESOURCES, ResourceType};

/// The Kubernetes version reported.
pub const GIT_VERSION: &str = "v1.32.0";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T17:59:15Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(group: &str) -> Value {
    let gv = format!("{group}/v1");
    json!({
        "name": group,
        "versions": [{"groupVersion": gv, "version": "v1"}],
        "preferredVersion": {"groupVersion": gv, "version": "v1"}
    })
}

/// `/apis`.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": resources::groups()
            .iter()
            .map(|g| group_entry(g))
            .chain([metrics_api::group_entry()])
            .collect::<Vec<_>>()
    })
}

/// `/apis/{group}`.
pub fn group(group: &str) -> Option<Value> {
    if group == metrics_api::GROUP {
        let mut g = metrics_api::group_entry();
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        return Some(g);
    }
    if !resources::groups().contains(&group) {
        return None;
    }
    let mut g = group_entry(group);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn in_gv(group: &str, version: &str) -> impl Iterator<Item = &'static ResourceType> {
    let g = group.to_string();
    let v = version.to_string();
    RESOURCES
        .iter()
        .filter(move |r| r.group == g && r.version == v)
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == (metrics_api::GROUP, metrics_api::VERSION) {
        return Some(metrics_api::resource_list());
    }
    let mut out = Vec::new();
    for r in in_gv(group, version) {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        out.push(e);
        for s in r.subresources {
            let mut e = json!({
                "name": format!("{}/{}", r.plural, s.name),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.kind_group != r.group {
                e["group"] = json!(s.kind_group);
                e["version"] = json!("v1");
            }
            out.push(e);
        }
    }
    if out.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

fn aggregated_version(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = in_gv(group, version)
        .map(|r| {
            let mut e = json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": r.verbs,
            });
            if !r.short_names.is_empty() {
                e["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                e["categories"] = json!(r.categories);
            }
            if !r.subresources.is_empty() {
                e["subresources"] = json!(r
                    .subresources
                    .iter()
                    .map(|s| json!({
                        "subresource": s.name,
                        "responseKind": {"group": s.kind_group, "version": "v1", "kind": s.kind},
                        "verbs": s.verbs,
                    }))
                    .collect::<Vec<_>>());
            }
            e
        })
        .collect();
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

/// Aggregated discovery for `/api` (core) or `/apis` (groups), in `api_version`
/// (`apidiscovery.k8s.io/v2` or `v2beta1`).
pub fn aggregated(core: bool, api_version: &str) -> Value {
    let items: Vec<Value> = if core {
        vec![
            json!({"metadata": {"creationTimestamp": null}, "versions": [aggregated_version("", "v1")]}),
        ]
    } else {
        resources::groups()
            .iter()
            .map(|g| json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": [aggregated_version(g, "v1")]}))
            .chain([metrics_api::aggregated_item()])
            .collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items})
}

/// Which aggregated discovery version an Accept header asks for, if any.
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("g=apidiscovery.k8s.io") && p.contains("as=APIGroupDiscoveryList") {
            if p.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if p.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}
