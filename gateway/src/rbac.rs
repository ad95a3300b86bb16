//! Every Kubernetes API call the gateway makes, as RBAC rules. The ClusterRole in
//! `deploy/` must grant exactly these (a test there compares them).

/// One RBAC permission: API group (`""` = core), resource (with subresource, e.g.
/// `pods/status`) and the verbs used on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiPermission {
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
}

/// The gateway's API calls.
pub const API_PERMISSIONS: &[ApiPermission] = &[
    // Node per device: read on hello (only Nodes the gateway created are touched), created
    // when absent, labels patched; status patched.
    ApiPermission {
        api_group: "",
        resource: "nodes",
        verbs: &["get", "create", "patch"],
    },
    ApiPermission {
        api_group: "",
        resource: "nodes/status",
        verbs: &["patch"],
    },
    // One watch over pods; deletion with grace 0 + UID precondition once the device confirms.
    ApiPermission {
        api_group: "",
        resource: "pods",
        verbs: &["list", "watch", "delete"],
    },
    ApiPermission {
        api_group: "",
        resource: "pods/status",
        verbs: &["patch"],
    },
    // Resolving env and volumes.
    ApiPermission {
        api_group: "",
        resource: "configmaps",
        verbs: &["get"],
    },
    ApiPermission {
        api_group: "",
        resource: "secrets",
        verbs: &["get"],
    },
    // Events as the kubelet records them (repeats update count and lastTimestamp).
    ApiPermission {
        api_group: "",
        resource: "events",
        verbs: &["create", "patch"],
    },
    // Node heartbeats in kube-node-lease: patched (created when absent).
    ApiPermission {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["create", "patch"],
    },
    // Kubelet API in webhook mode: TokenReview for bearer tokens, SubjectAccessReview
    // for every request.
    ApiPermission {
        api_group: "authentication.k8s.io",
        resource: "tokenreviews",
        verbs: &["create"],
    },
    ApiPermission {
        api_group: "authorization.k8s.io",
        resource: "subjectaccessreviews",
        verbs: &["create"],
    },
];
