//! Every Kubernetes API call the gateway makes, as RBAC rules. The ClusterRole in
//! `deploy/` must grant exactly [`API_PERMISSIONS`], and the Role in the gateway's own
//! namespace exactly [`OWN_NAMESPACE_PERMISSIONS`] (a test there compares them).

/// One RBAC permission: API group (`""` = core), resource (with subresource, e.g.
/// `pods/status`) and the verbs used on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiPermission {
    pub api_group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    /// Only these objects (empty = any).
    pub resource_names: &'static [&'static str],
}

/// The gateway's API calls in its own namespace only (a Role there, not the
/// ClusterRole): the status annotations of its agent rollout and image pre-pull
/// ConfigMaps (`--agent-rollout-namespace` and `--image-prepull-namespace` name it; the
/// ConfigMaps are watched with the cluster-wide list/watch). Pre-pulls have names the
/// operator chooses, so the patch cannot name them.
pub const OWN_NAMESPACE_PERMISSIONS: &[ApiPermission] = &[ApiPermission {
    api_group: "",
    resource: "configmaps",
    verbs: &["patch"],
    resource_names: &[],
}];

/// The gateway's API calls.
pub const API_PERMISSIONS: &[ApiPermission] = &[
    // Node per device: read on hello (and watched, for the autonomy budgets in their
    // annotations and for deletions with the retire label) (only Nodes the gateway
    // created are touched), created when absent, labels patched; status patched;
    // deleted when its device is retired.
    ApiPermission {
        api_group: "",
        resource: "nodes",
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        resource_names: &[],
    },
    ApiPermission {
        api_group: "",
        resource: "nodes/status",
        verbs: &["patch"],
        resource_names: &[],
    },
    // One watch over pods; deletion with grace 0 + UID precondition once the device confirms.
    ApiPermission {
        api_group: "",
        resource: "pods",
        verbs: &["list", "watch", "delete"],
        resource_names: &[],
    },
    ApiPermission {
        api_group: "",
        resource: "pods/status",
        verbs: &["patch"],
        resource_names: &[],
    },
    // Resolving env and volumes; one watch per referenced object (a `metadata.name`
    // field selector in its namespace, as the kubelet does) to deliver changes. RBAC
    // cannot name objects not known in advance, so list/watch are granted on the kind;
    // the gateway only ever lists and watches single referenced objects.
    ApiPermission {
        api_group: "",
        resource: "configmaps",
        verbs: &["get", "list", "watch"],
        resource_names: &[],
    },
    ApiPermission {
        api_group: "",
        resource: "secrets",
        verbs: &["get", "list", "watch"],
        resource_names: &[],
    },
    // Projected service account tokens, requested bound to the device pod (TokenRequest).
    ApiPermission {
        api_group: "",
        resource: "serviceaccounts/token",
        verbs: &["create"],
        resource_names: &[],
    },
    // Events as the kubelet records them (repeats update count and lastTimestamp).
    ApiPermission {
        api_group: "",
        resource: "events",
        verbs: &["create", "patch"],
        resource_names: &[],
    },
    // Node heartbeats in kube-node-lease: patched (created when absent); deleted when
    // the device is retired. Sharded gateways: each replica's own Lease read, created and
    // replaced on its resourceVersion, the replicas' Leases listed, an expired one's
    // holder emptied (replaced on the resourceVersion seen).
    ApiPermission {
        api_group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "list", "create", "update", "patch", "delete"],
        resource_names: &[],
    },
    // Kubelet API in webhook mode: TokenReview for bearer tokens, SubjectAccessReview
    // for every request.
    ApiPermission {
        api_group: "authentication.k8s.io",
        resource: "tokenreviews",
        verbs: &["create"],
        resource_names: &[],
    },
    ApiPermission {
        api_group: "authorization.k8s.io",
        resource: "subjectaccessreviews",
        verbs: &["create"],
        resource_names: &[],
    },
    // Zero-touch enrollment (`--enrollment`): each device's CSR becomes a
    // CertificateSigningRequest with the gateway's own signer; approved by rule (the
    // approval subresource plus `approve` on the signer, as kube-controller-manager's
    // csrapproving), signed (`status.certificate` plus `sign` on the signer). Bootstrap
    // tokens are Secrets read with the `get` above.
    ApiPermission {
        api_group: "certificates.k8s.io",
        resource: "certificatesigningrequests",
        verbs: &["get", "create"],
        resource_names: &[],
    },
    ApiPermission {
        api_group: "certificates.k8s.io",
        resource: "certificatesigningrequests/approval",
        verbs: &["update"],
        resource_names: &[],
    },
    ApiPermission {
        api_group: "certificates.k8s.io",
        resource: "certificatesigningrequests/status",
        verbs: &["patch"],
        resource_names: &[],
    },
    ApiPermission {
        api_group: "certificates.k8s.io",
        resource: "signers",
        verbs: &["approve", "sign"],
        resource_names: &[crate::device_enrollment::csr_object::SIGNER_NAME],
    },
    // The autonomy webhook fills in its own CA (only in its own configuration).
    ApiPermission {
        api_group: "admissionregistration.k8s.io",
        resource: "mutatingwebhookconfigurations",
        verbs: &["get", "patch"],
        resource_names: &[crate::autonomy::settings::DEFAULT_WEBHOOK_CONFIGURATION],
    },
];
