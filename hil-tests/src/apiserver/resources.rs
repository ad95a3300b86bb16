//! The resource types the emulator serves: names, kinds, scope, verbs and subresources,
//! as kube-apiserver's discovery documents describe them.

/// Verbs of a normal read-write resource.
pub const RW_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const CREATE_ONLY: &[&str] = &["create"];
const STATUS_VERBS: &[&str] = &["get", "patch", "update"];

/// A subresource of a resource (`pods/status`).
#[derive(Debug, Clone, Copy)]
pub struct Subresource {
    /// `status`, `binding`, `log`, `approval`.
    pub name: &'static str,
    /// Kind of the subresource's body (`Pod`, `Binding`).
    pub kind: &'static str,
    /// Group of the kind ("" for core).
    pub kind_group: &'static str,
    /// Verbs.
    pub verbs: &'static [&'static str],
}

/// One resource type.
#[derive(Debug, Clone, Copy)]
pub struct ResourceType {
    /// API group ("" for core).
    pub group: &'static str,
    /// Version (`v1`).
    pub version: &'static str,
    /// Kind (`Pod`).
    pub kind: &'static str,
    /// Plural resource name (`pods`).
    pub plural: &'static str,
    /// Singular name (`pod`).
    pub singular: &'static str,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names (`po`).
    pub short_names: &'static [&'static str],
    /// Categories (`all`).
    pub categories: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Subresources.
    pub subresources: &'static [Subresource],
    /// Whether the main resource ignores status changes (has a status subresource).
    pub has_status: bool,
    /// Whether `metadata.generation` is maintained (bumped on spec changes).
    pub tracks_generation: bool,
    /// Whether create/get stores nothing (tokenreviews, subjectaccessreviews).
    pub virtual_only: bool,
    /// Storage key: resources sharing storage (core and events.k8s.io events) share it.
    pub storage: &'static str,
}

impl ResourceType {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `PodList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// Looks a subresource up.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

const fn status_sub(kind: &'static str, group: &'static str) -> Subresource {
    Subresource {
        name: "status",
        kind,
        kind_group: group,
        verbs: STATUS_VERBS,
    }
}

/// The `scale` subresource of deployments and replicasets (`autoscaling/v1` `Scale`).
const SCALE_SUB: Subresource = Subresource {
    name: "scale",
    kind: "Scale",
    kind_group: "autoscaling",
    verbs: STATUS_VERBS,
};

/// Every resource served, in discovery order.
pub static RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "configmaps",
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "events",
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &[status_sub("Namespace", "")],
        has_status: true,
        tracks_generation: false,
        virtual_only: false,
        storage: "namespaces",
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Node",
        plural: "nodes",
        singular: "node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[status_sub("Node", "")],
        has_status: true,
        tracks_generation: false,
        virtual_only: false,
        storage: "nodes",
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: RW_VERBS,
        subresources: &[
            Subresource {
                name: "binding",
                kind: "Binding",
                kind_group: "",
                verbs: CREATE_ONLY,
            },
            Subresource {
                name: "eviction",
                kind: "Eviction",
                kind_group: "policy",
                verbs: CREATE_ONLY,
            },
            Subresource {
                name: "log",
                kind: "Pod",
                kind_group: "",
                verbs: &["get"],
            },
            // upgrades proxied to the kubelet (`stream_proxy.rs`)
            Subresource {
                name: "exec",
                kind: "PodExecOptions",
                kind_group: "",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "attach",
                kind: "PodAttachOptions",
                kind_group: "",
                verbs: &["create", "get"],
            },
            Subresource {
                name: "portforward",
                kind: "PodPortForwardOptions",
                kind_group: "",
                verbs: &["create", "get"],
            },
            status_sub("Pod", ""),
        ],
        has_status: true,
        tracks_generation: true,
        virtual_only: false,
        storage: "pods",
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "secrets",
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[Subresource {
            name: "token",
            kind: "TokenRequest",
            kind_group: "authentication.k8s.io",
            verbs: CREATE_ONLY,
        }],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "serviceaccounts",
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        verbs: &[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ],
        subresources: &[status_sub("Service", "")],
        has_status: true,
        tracks_generation: false,
        virtual_only: false,
        storage: "services",
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        plural: "daemonsets",
        singular: "daemonset",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        verbs: RW_VERBS,
        subresources: &[status_sub("DaemonSet", "apps")],
        has_status: true,
        tracks_generation: true,
        virtual_only: false,
        storage: "daemonsets",
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        verbs: RW_VERBS,
        subresources: &[SCALE_SUB, status_sub("Deployment", "apps")],
        has_status: true,
        tracks_generation: true,
        virtual_only: false,
        storage: "deployments",
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        verbs: RW_VERBS,
        subresources: &[SCALE_SUB, status_sub("ReplicaSet", "apps")],
        has_status: true,
        tracks_generation: true,
        virtual_only: false,
        storage: "replicasets",
    },
    ResourceType {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenReview",
        plural: "tokenreviews",
        singular: "tokenreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: CREATE_ONLY,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: true,
        storage: "tokenreviews",
    },
    ResourceType {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: CREATE_ONLY,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: true,
        storage: "selfsubjectreviews",
    },
    ResourceType {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SubjectAccessReview",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: CREATE_ONLY,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: true,
        storage: "subjectaccessreviews",
    },
    ResourceType {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: CREATE_ONLY,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: true,
        storage: "selfsubjectaccessreviews",
    },
    ResourceType {
        group: "certificates.k8s.io",
        version: "v1",
        kind: "CertificateSigningRequest",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        namespaced: false,
        short_names: &["csr"],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[
            Subresource {
                name: "approval",
                kind: "CertificateSigningRequest",
                kind_group: "certificates.k8s.io",
                verbs: STATUS_VERBS,
            },
            status_sub("CertificateSigningRequest", "certificates.k8s.io"),
        ],
        has_status: true,
        tracks_generation: false,
        virtual_only: false,
        storage: "certificatesigningrequests",
    },
    ResourceType {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "leases",
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRoleBinding",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "clusterrolebindings",
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "ClusterRole",
        plural: "clusterroles",
        singular: "clusterrole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "clusterroles",
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "RoleBinding",
        plural: "rolebindings",
        singular: "rolebinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "rolebindings",
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        kind: "Role",
        plural: "roles",
        singular: "role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "roles",
    },
    ResourceType {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: RW_VERBS,
        subresources: &[],
        has_status: false,
        tracks_generation: false,
        virtual_only: false,
        storage: "events",
    },
];

/// Looks up a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The API groups served (excluding core), in discovery order.
pub fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// The core/v1 resource type of a storage key (used for canonical storage).
pub fn by_storage(storage: &str) -> Option<&'static ResourceType> {
    RESOURCES.iter().find(|r| r.storage == storage)
}
