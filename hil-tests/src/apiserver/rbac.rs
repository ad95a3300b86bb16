//! RBAC as kube-apiserver evaluates it for SubjectAccessReviews: the emulator stores
//! ClusterRoles, ClusterRoleBindings, Roles and RoleBindings, and answers a review by
//! finding a binding of the subject (user, group, or ServiceAccount user) whose role has
//! a rule covering the request. `system:masters` is allowed everything, as kube-apiserver's
//! privileged-group authorizer allows it.
//!
//! The emulator does not enforce RBAC on its own API requests (its clients are the test
//! bed's admin and ServiceAccount tokens); the answers only matter to callers that ask,
//! such as the gateway's kubelet API. Aggregated ClusterRoles (`aggregationRule`) are not
//! evaluated.
//!
//! Seeded at start, as kube-apiserver's bootstrap policy and kubeadm (v1.37) create them:
//! `cluster-admin` (bound to `system:masters`), `system:kubelet-api-admin`, and the binding
//! `kubeadm:apiserver-kubelet-client` of that role to the user of the client certificate
//! the API server presents to kubelets.

use serde_json::{Value, json};

use super::cluster::Cluster;
use super::resources;

/// The user of the client certificate kube-apiserver presents to kubelets (kubeadm's
/// `apiserver-kubelet-client`).
pub const KUBELET_API_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// The bootstrap ClusterRole for full access to the kubelet API.
pub const KUBELET_API_ADMIN_ROLE: &str = "system:kubelet-api-admin";
/// kubeadm's ClusterRoleBinding of [`KUBELET_API_ADMIN_ROLE`] to [`KUBELET_API_CLIENT_USER`].
pub const KUBELET_API_CLIENT_BINDING: &str = "kubeadm:apiserver-kubelet-client";
/// The group allowed everything without RBAC.
pub const MASTERS_GROUP: &str = "system:masters";

/// The bootstrap ClusterRoles and ClusterRoleBindings the emulator starts with, as
/// kube-apiserver v1.37.2 and kubeadm create them (checked against the real ones).
pub fn bootstrap_objects() -> Vec<(&'static str, Value)> {
    let bootstrap = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let autoupdate = json!({"rbac.authorization.kubernetes.io/autoupdate": "true"});
    vec![
        (
            "clusterroles",
            json!({
                "metadata": {"name": "cluster-admin", "labels": bootstrap, "annotations": autoupdate},
                "rules": [
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]}
                ]
            }),
        ),
        (
            "clusterrolebindings",
            json!({
                "metadata": {"name": "cluster-admin", "labels": bootstrap, "annotations": autoupdate},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": MASTERS_GROUP}]
            }),
        ),
        (
            "clusterroles",
            json!({
                "metadata": {"name": KUBELET_API_ADMIN_ROLE, "labels": bootstrap, "annotations": autoupdate},
                "rules": [
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["proxy"]},
                    {"apiGroups": [""], "resources": ["nodes/log", "nodes/metrics", "nodes/proxy", "nodes/stats"], "verbs": ["*"]},
                    {"apiGroups": [""], "resources": ["nodes/configz", "nodes/healthz", "nodes/pods"], "verbs": ["*"]}
                ]
            }),
        ),
        (
            "clusterrolebindings",
            json!({
                "metadata": {"name": KUBELET_API_CLIENT_BINDING},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": KUBELET_API_ADMIN_ROLE},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": KUBELET_API_CLIENT_USER}]
            }),
        ),
    ]
}

/// Creates the bootstrap objects in `cluster`.
pub fn seed(cluster: &Cluster) {
    for (plural, obj) in bootstrap_objects() {
        if let Some(rt) = resources::find("rbac.authorization.k8s.io", "v1", plural) {
            let _ = cluster.create(rt, None, obj);
        }
    }
}

/// Why `name` is not a valid RBAC object name (kube-apiserver's path segment rule).
pub fn invalid_path_segment(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("name or generateName is required".to_owned());
    }
    if name == "." || name == ".." {
        return Some(format!("may not be '{name}'"));
    }
    ["/", "%"]
        .iter()
        .find(|bad| name.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
}

/// What a SubjectAccessReview asks about a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// Who a SubjectAccessReview asks about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub user: String,
    pub groups: Vec<String>,
}

fn strs(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

/// Whether a policy rule covers the request (kube-apiserver's `RuleAllows`).
pub fn rule_allows(rule: &Value, req: &ResourceRequest) -> bool {
    let verbs = strs(rule, "verbs");
    let groups = strs(rule, "apiGroups");
    let rule_resources = strs(rule, "resources");
    let names = strs(rule, "resourceNames");
    if !has(&verbs, &req.verb) || !has(&groups, &req.group) {
        return false;
    }
    let combined = if req.subresource.is_empty() {
        req.resource.clone()
    } else {
        format!("{}/{}", req.resource, req.subresource)
    };
    let resource_ok = rule_resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!req.subresource.is_empty() && *r == format!("*/{}", req.subresource))
    });
    resource_ok && (names.is_empty() || names.contains(&req.name))
}

fn subject_matches(subject: &Value, who: &Subject, binding_namespace: &str) -> bool {
    let name = str_of(subject, "name");
    match str_of(subject, "kind") {
        "User" => name == who.user,
        "Group" => who.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = match str_of(subject, "namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            who.user == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn role_rules(cluster: &Cluster, role_ref: &Value, binding_namespace: &str) -> Vec<Value> {
    let name = str_of(role_ref, "name");
    let role = match str_of(role_ref, "kind") {
        "ClusterRole" => cluster.get_stored("clusterroles", "", name),
        "Role" if !binding_namespace.is_empty() => {
            cluster.get_stored("roles", binding_namespace, name)
        }
        _ => None,
    };
    role.and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

/// The decision on `req` for `who`: allowed with kube-apiserver's reason text, or denied.
pub fn authorize(cluster: &Cluster, who: &Subject, req: &ResourceRequest) -> Option<String> {
    if who.groups.iter().any(|g| g == MASTERS_GROUP) {
        return Some(String::new());
    }
    let mut bindings: Vec<(&str, std::sync::Arc<Value>)> = cluster
        .lock()
        .list("clusterrolebindings", None)
        .into_iter()
        .map(|b| ("ClusterRoleBinding", b))
        .collect();
    if !req.namespace.is_empty() {
        bindings.extend(
            cluster
                .lock()
                .list("rolebindings", Some(&req.namespace))
                .into_iter()
                .map(|b| ("RoleBinding", b)),
        );
    }
    for (kind, binding) in bindings {
        let ns = binding
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(subject) = binding
            .get("subjects")
            .and_then(Value::as_array)
            .and_then(|s| s.iter().find(|s| subject_matches(s, who, ns)))
        else {
            continue;
        };
        let role_ref = binding.get("roleRef").cloned().unwrap_or_default();
        if role_rules(cluster, &role_ref, ns)
            .iter()
            .any(|r| rule_allows(r, req))
        {
            let binding_name = binding
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let subject_text = match str_of(subject, "kind") {
                "ServiceAccount" => format!(
                    "ServiceAccount \"{}/{}\"",
                    match str_of(subject, "namespace") {
                        "" => ns,
                        n => n,
                    },
                    str_of(subject, "name")
                ),
                k => format!("{k} \"{}\"", str_of(subject, "name")),
            };
            let binding_text = if kind == "RoleBinding" {
                format!("RoleBinding \"{binding_name}/{ns}\"")
            } else {
                format!("ClusterRoleBinding \"{binding_name}\"")
            };
            return Some(format!(
                "RBAC: allowed by {binding_text} of {} \"{}\" to {subject_text}",
                str_of(&role_ref, "kind"),
                str_of(&role_ref, "name"),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nodes(verb: &str, sub: &str, name: &str) -> ResourceRequest {
        ResourceRequest {
            verb: verb.into(),
            resource: "nodes".into(),
            subresource: sub.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn rules_match_verbs_groups_resources_subresources_and_names() {
        let r = json!({"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]});
        assert!(rule_allows(&r, &nodes("get", "proxy", "n1")));
        assert!(!rule_allows(&r, &nodes("create", "proxy", "n1")));
        assert!(!rule_allows(&r, &nodes("get", "log", "n1")));
        assert!(!rule_allows(&r, &nodes("get", "", "n1")));
        let named = json!({"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["*"], "resourceNames": ["n1"]});
        assert!(rule_allows(&named, &nodes("get", "proxy", "n1")));
        assert!(!rule_allows(&named, &nodes("get", "proxy", "n2")));
        // a request about every node is not covered by a rule for some nodes
        assert!(!rule_allows(&named, &nodes("get", "proxy", "")));
        let star = json!({"apiGroups": ["*"], "resources": ["*/proxy"], "verbs": ["get"]});
        assert!(rule_allows(&star, &nodes("get", "proxy", "")));
        let other_group = json!({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]});
        assert!(!rule_allows(&other_group, &nodes("get", "proxy", "")));
    }

    #[test]
    fn bootstrap_binding_allows_the_kubelet_client_and_nobody_else() {
        let c = Cluster::new(100);
        seed(&c);
        let client = Subject {
            user: KUBELET_API_CLIENT_USER.into(),
            groups: vec!["system:authenticated".into()],
        };
        let reason = authorize(&c, &client, &nodes("get", "proxy", "pi-01")).unwrap();
        assert_eq!(
            reason,
            "RBAC: allowed by ClusterRoleBinding \"kubeadm:apiserver-kubelet-client\" of ClusterRole \"system:kubelet-api-admin\" to User \"kube-apiserver-kubelet-client\""
        );
        assert!(authorize(&c, &client, &nodes("get", "pods", "pi-01")).is_some());
        assert!(authorize(&c, &client, &nodes("get", "spec", "pi-01")).is_none());
        assert!(authorize(&c, &client, &nodes("delete", "", "pi-01")).is_none());
        let stranger = Subject {
            user: "mallory".into(),
            groups: vec!["system:authenticated".into()],
        };
        assert!(authorize(&c, &stranger, &nodes("get", "proxy", "pi-01")).is_none());
        let admin = Subject {
            user: "x".into(),
            groups: vec![MASTERS_GROUP.into()],
        };
        assert!(authorize(&c, &admin, &nodes("get", "proxy", "")).is_some());
    }
}
