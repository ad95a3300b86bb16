//! Server-side printing: `meta.k8s.io/v1` `Table` responses (what `kubectl get` asks for),
//! with the columns kube-apiserver's printers produce for each kind.

use serde_json::{Value, json};

use super::clock;
use super::cluster::meta_str;
use super::resources::ResourceType;

/// What each row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (default).
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// From the query parameter.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// Which Table version an Accept header asks for (`v1`, `v1beta1`), if any.
pub fn wants_table(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=Table") && p.contains("g=meta.k8s.io") {
            return Some(if p.contains("v=v1beta1") {
                "v1beta1"
            } else {
                "v1"
            });
        }
    }
    None
}

fn col(name: &str, ty: &str, format: &str, priority: i32, desc: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
}

fn name_col() -> Value {
    col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    )
}

fn age_col() -> Value {
    col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    )
}

fn age(obj: &Value) -> String {
    clock::age_seconds(meta_str(obj, "creationTimestamp"))
        .map(clock::human_duration)
        .unwrap_or_else(|| "<unknown>".into())
}

fn s<'a>(obj: &'a Value, ptr: &str) -> &'a str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    }
}

fn columns(rt: &ResourceType) -> Vec<Value> {
    match rt.kind {
        "Pod" => vec![
            name_col(),
            col(
                "Ready",
                "string",
                "",
                0,
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "string",
                "",
                0,
                "The aggregate status of the containers in this pod.",
            ),
            col(
                "Restarts",
                "string",
                "",
                0,
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age_col(),
            col("IP", "string", "", 1, "The IP address assigned to the pod"),
            col(
                "Node",
                "string",
                "",
                1,
                "The name of the node where the pod is running",
            ),
            col(
                "Nominated Node",
                "string",
                "",
                1,
                "The name of the node where the pod is nominated to run",
            ),
            col(
                "Readiness Gates",
                "string",
                "",
                1,
                "The readiness gates of the pod",
            ),
        ],
        "Node" => vec![
            name_col(),
            col("Status", "string", "", 0, "The status of the node"),
            col("Roles", "string", "", 0, "The roles of the node"),
            age_col(),
            col(
                "Version",
                "string",
                "",
                0,
                "Kubelet Version reported by the node.",
            ),
            col(
                "Internal-IP",
                "string",
                "",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            col(
                "External-IP",
                "string",
                "",
                1,
                "List of addresses reachable to the node. Queried from cloud provider, if available.",
            ),
            col(
                "OS-Image",
                "string",
                "",
                1,
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            ),
            col(
                "Kernel-Version",
                "string",
                "",
                1,
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            ),
            col(
                "Container-Runtime",
                "string",
                "",
                1,
                "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
            ),
        ],
        "Namespace" => vec![
            name_col(),
            col("Status", "string", "", 0, "The status of the namespace"),
            age_col(),
        ],
        "ConfigMap" => vec![
            name_col(),
            col(
                "Data",
                "string",
                "",
                0,
                "Data contains the configuration data.",
            ),
            age_col(),
        ],
        "Secret" => vec![
            name_col(),
            col("Type", "string", "", 0, "The type of the secret"),
            col("Data", "string", "", 0, "The number of data items"),
            age_col(),
        ],
        // No SECRETS column, as kube-apiserver v1.37 prints it.
        "ServiceAccount" => vec![name_col(), age_col()],
        "Service" => vec![
            name_col(),
            col("Type", "string", "", 0, "The type of service"),
            col("Cluster-IP", "string", "", 0, "The cluster IP"),
            col("External-IP", "string", "", 0, "The external IP"),
            col("Port(s)", "string", "", 0, "The ports"),
            age_col(),
            col("Selector", "string", "", 1, "The selector"),
        ],
        "Lease" => vec![
            name_col(),
            col("Holder", "string", "", 0, "The holder of the lease"),
            age_col(),
        ],
        "Event" => vec![
            col(
                "Last Seen",
                "string",
                "",
                0,
                "Time when this event was last seen",
            ),
            col("Type", "string", "", 0, "Type of this event"),
            col("Reason", "string", "", 0, "Reason of this event"),
            col("Object", "string", "", 0, "The object this event is about"),
            col("Message", "string", "", 0, "Message of this event"),
        ],
        "CertificateSigningRequest" => vec![
            name_col(),
            age_col(),
            col("SignerName", "string", "", 0, "The signer"),
            col("Requestor", "string", "", 0, "The requestor"),
            col(
                "RequestedDuration",
                "string",
                "",
                0,
                "The requested duration",
            ),
            col("Condition", "string", "", 0, "The condition"),
        ],
        "Deployment" => {
            let mut c = vec![
                name_col(),
                col(
                    "Ready",
                    "string",
                    "",
                    0,
                    "Number of the pod with ready state",
                ),
                col(
                    "Up-to-date",
                    "string",
                    "",
                    0,
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                col(
                    "Available",
                    "string",
                    "",
                    0,
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                age_col(),
            ];
            c.extend(workload_wide_cols());
            c
        }
        "ReplicaSet" => {
            let mut c = vec![
                name_col(),
                col(
                    "Desired",
                    "integer",
                    "",
                    0,
                    "Replicas is the number of desired replicas.",
                ),
                col(
                    "Current",
                    "integer",
                    "",
                    0,
                    "Replicas is the most recently observed number of replicas.",
                ),
                col(
                    "Ready",
                    "integer",
                    "",
                    0,
                    "The number of ready replicas for this replica set.",
                ),
                age_col(),
            ];
            c.extend(workload_wide_cols());
            c
        }
        "DaemonSet" => {
            let mut c = vec![
                name_col(),
                col(
                    "Desired",
                    "integer",
                    "",
                    0,
                    "The total number of nodes that should be running the daemon pod.",
                ),
                col(
                    "Current",
                    "integer",
                    "",
                    0,
                    "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
                ),
                col(
                    "Ready",
                    "integer",
                    "",
                    0,
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                ),
                col(
                    "Up-to-date",
                    "integer",
                    "",
                    0,
                    "The total number of nodes that are running updated daemon pod",
                ),
                col(
                    "Available",
                    "integer",
                    "",
                    0,
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
                ),
                col(
                    "Node Selector",
                    "string",
                    "",
                    0,
                    "NodeSelector is a selector which must be true for the pod to fit on a node.",
                ),
                age_col(),
            ];
            c.extend(workload_wide_cols());
            c
        }
        _ => vec![name_col(), col("Created At", "date", "", 0, "Created at")],
    }
}

fn workload_wide_cols() -> Vec<Value> {
    vec![
        col(
            "Containers",
            "string",
            "",
            1,
            "Names of each container in the template.",
        ),
        col(
            "Images",
            "string",
            "",
            1,
            "Images referenced by each container in the template.",
        ),
        col("Selector", "string", "", 1, "Label selector for pods."),
    ]
}

fn workload_wide_cells(o: &Value) -> Vec<Value> {
    let containers: Vec<&Value> = o
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "/image")).collect();
    vec![
        json!(names.join(",")),
        json!(images.join(",")),
        json!(super::label_selector::selector_string(
            o.pointer("/spec/selector").unwrap_or(&Value::Null)
        )),
    ]
}

fn int(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn pod_cells(p: &Value) -> Vec<Value> {
    let containers = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut reason = s(p, "/status/phase").to_string();
    if !s(p, "/status/reason").is_empty() {
        reason = s(p, "/status/reason").to_string();
    }
    let mut restarts = 0i64;
    let mut ready = 0;
    let mut last_restart: Option<String> = None;
    let mut initializing = false;
    let inits = p
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if let Some(ics) = p
        .pointer("/status/initContainerStatuses")
        .and_then(Value::as_array)
    {
        for (i, c) in ics.iter().enumerate() {
            restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
            let term = c.pointer("/state/terminated");
            if term.and_then(|t| t.get("exitCode")).and_then(Value::as_i64) == Some(0) {
                continue;
            }
            initializing = true;
            reason = if let Some(t) = term {
                let r = t.get("reason").and_then(Value::as_str).unwrap_or("");
                if r.is_empty() {
                    format!(
                        "Init:ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    )
                } else {
                    format!("Init:{r}")
                }
            } else {
                let w = s(c, "/state/waiting/reason");
                if !w.is_empty() && w != "PodInitializing" {
                    format!("Init:{w}")
                } else {
                    format!("Init:{i}/{inits}")
                }
            };
            break;
        }
    }
    if !initializing {
        let mut has_running = false;
        if let Some(cs) = p
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
        {
            for c in cs.iter().rev() {
                restarts += c.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
                if let Some(f) = c
                    .pointer("/lastState/terminated/finishedAt")
                    .and_then(Value::as_str)
                    && last_restart.as_deref().is_none_or(|l| f > l)
                {
                    last_restart = Some(f.to_string());
                }
                let w = s(c, "/state/waiting/reason");
                let t = c.pointer("/state/terminated");
                if !w.is_empty() {
                    reason = w.to_string();
                } else if let Some(t) = t {
                    let r = t.get("reason").and_then(Value::as_str).unwrap_or("");
                    reason = if !r.is_empty() {
                        r.to_string()
                    } else if let Some(sig) =
                        t.get("signal").and_then(Value::as_i64).filter(|x| *x != 0)
                    {
                        format!("Signal:{sig}")
                    } else {
                        format!(
                            "ExitCode:{}",
                            t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                        )
                    };
                } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                    && c.pointer("/state/running").is_some()
                {
                    has_running = true;
                    ready += 1;
                }
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = p
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
                });
            reason = if pod_ready {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if !meta_str(p, "deletionTimestamp").is_empty() {
        reason = if s(p, "/status/reason") == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    let restarts_cell = match last_restart.and_then(|l| clock::age_seconds(&l)) {
        Some(a) => json!(format!("{restarts} ({} ago)", clock::human_duration(a))),
        None => json!(restarts),
    };
    let gates = p
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let gates_cell = if gates == 0 {
        "<none>".to_string()
    } else {
        let conds = p
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let true_count = p
            .pointer("/spec/readinessGates")
            .and_then(Value::as_array)
            .map_or(0, |g| {
                g.iter()
                    .filter(|g| {
                        conds.iter().any(|c| {
                            s(c, "/type") == s(g, "/conditionType") && s(c, "/status") == "True"
                        })
                    })
                    .count()
            });
        format!("{true_count}/{gates}")
    };
    vec![
        json!(meta_str(p, "name")),
        json!(format!("{ready}/{containers}")),
        json!(reason),
        restarts_cell,
        json!(age(p)),
        json!(or_none(s(p, "/status/podIP"))),
        json!(or_none(s(p, "/spec/nodeName"))),
        json!(or_none(s(p, "/status/nominatedNodeName"))),
        json!(gates_cell),
    ]
}

fn node_cells(n: &Value) -> Vec<Value> {
    let conds = n
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status = match conds
        .iter()
        .find(|c| s(c, "/type") == "Ready")
        .map(|c| s(c, "/status"))
    {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if n.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = n
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| {
                    if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                        (!r.is_empty()).then(|| r.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().map(str::to_string)
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    let addr = |t: &str| {
        n.pointer("/status/addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|x| s(x, "/type") == t))
            .map(|x| s(x, "/address").to_string())
            .unwrap_or_default()
    };
    let unknown = |v: &str| {
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    vec![
        json!(meta_str(n, "name")),
        json!(status),
        json!(if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        }),
        json!(age(n)),
        json!(s(n, "/status/nodeInfo/kubeletVersion")),
        json!(or_none(&addr("InternalIP"))),
        json!(or_none(&addr("ExternalIP"))),
        json!(unknown(s(n, "/status/nodeInfo/osImage"))),
        // The architecture appended, as kube-apiserver v1.37 prints it.
        json!(match s(n, "/status/nodeInfo/architecture") {
            "" => unknown(s(n, "/status/nodeInfo/kernelVersion")),
            arch => format!(
                "{} ({arch})",
                unknown(s(n, "/status/nodeInfo/kernelVersion"))
            ),
        }),
        json!(unknown(s(n, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

fn count(v: Option<&Value>) -> usize {
    v.and_then(Value::as_object).map_or(0, |m| m.len())
}

fn cells(rt: &ResourceType, o: &Value) -> Vec<Value> {
    let name = json!(meta_str(o, "name"));
    match rt.kind {
        "Pod" => pod_cells(o),
        "Node" => node_cells(o),
        "Namespace" => vec![name, json!(s(o, "/status/phase")), json!(age(o))],
        "ConfigMap" => vec![
            name,
            json!(count(o.get("data")) + count(o.get("binaryData"))),
            json!(age(o)),
        ],
        "Secret" => vec![
            name,
            json!(s(o, "/type")),
            json!(count(o.get("data"))),
            json!(age(o)),
        ],
        "ServiceAccount" => vec![name, json!(age(o))],
        "Service" => {
            let ports: Vec<String> = o
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) => format!("{port}:{np}/{proto}"),
                                None => format!("{port}/{proto}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let selector = o
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    let mut v: Vec<String> = m
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect();
                    v.sort();
                    v.join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                json!(s(o, "/spec/type")),
                json!(or_none(s(o, "/spec/clusterIP"))),
                json!("<none>"),
                json!(if ports.is_empty() {
                    "<none>".into()
                } else {
                    ports.join(",")
                }),
                json!(age(o)),
                json!(or_none(&selector)),
            ]
        }
        "Lease" => vec![name, json!(s(o, "/spec/holderIdentity")), json!(age(o))],
        "Event" => {
            let last = [
                s(o, "/lastTimestamp"),
                s(o, "/eventTime"),
                s(o, "/deprecatedLastTimestamp"),
                meta_str(o, "creationTimestamp"),
            ]
            .into_iter()
            .find(|x| !x.is_empty())
            .and_then(clock::age_seconds)
            .map(clock::human_duration)
            .unwrap_or_else(|| "<unknown>".into());
            let io = o
                .get("involvedObject")
                .or_else(|| o.get("regarding"))
                .cloned()
                .unwrap_or_default();
            let kind = s(&io, "/kind").to_lowercase();
            let msg = o
                .get("message")
                .or_else(|| o.get("note"))
                .and_then(Value::as_str)
                .unwrap_or("");
            vec![
                json!(last),
                json!(s(o, "/type")),
                json!(s(o, "/reason")),
                json!(format!("{kind}/{}", s(&io, "/name"))),
                json!(msg.trim()),
            ]
        }
        "CertificateSigningRequest" => {
            let conds: Vec<String> = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().map(|c| s(c, "/type").to_string()).collect())
                .unwrap_or_default();
            let mut cond = if conds.is_empty() {
                "Pending".to_string()
            } else {
                conds.join(",")
            };
            if o.pointer("/status/certificate").is_some() {
                cond.push_str(",Issued");
            }
            let dur = o
                .pointer("/spec/expirationSeconds")
                .and_then(Value::as_i64)
                .map(clock::human_duration)
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(age(o)),
                json!(s(o, "/spec/signerName")),
                json!(s(o, "/spec/username")),
                json!(dur),
                json!(cond),
            ]
        }
        "Deployment" => {
            let mut c = vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
                json!(int(o, "/status/updatedReplicas")),
                json!(int(o, "/status/availableReplicas")),
                json!(age(o)),
            ];
            c.extend(workload_wide_cells(o));
            c
        }
        "ReplicaSet" => {
            let mut c = vec![
                name,
                json!(
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ),
                json!(int(o, "/status/replicas")),
                json!(int(o, "/status/readyReplicas")),
                json!(age(o)),
            ];
            c.extend(workload_wide_cells(o));
            c
        }
        "DaemonSet" => {
            let selector: Vec<String> = o
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            let mut c = vec![
                name,
                json!(int(o, "/status/desiredNumberScheduled")),
                json!(int(o, "/status/currentNumberScheduled")),
                json!(int(o, "/status/numberReady")),
                json!(int(o, "/status/updatedNumberScheduled")),
                json!(int(o, "/status/numberAvailable")),
                json!(or_none(&selector.join(","))),
                json!(age(o)),
            ];
            c.extend(workload_wide_cells(o));
            c
        }
        _ => vec![name, json!(meta_str(o, "creationTimestamp"))],
    }
}

fn row(rt: &ResourceType, o: &Value, include: IncludeObject) -> Value {
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or_default(),
        }),
        IncludeObject::Object => {
            let mut full = o.clone();
            full["apiVersion"] = json!(rt.api_version());
            full["kind"] = json!(rt.kind);
            full
        }
    };
    json!({"cells": cells(rt, o), "object": object})
}

/// A Table of objects (served form), with `list_meta` as its metadata.
pub fn table(
    rt: &ResourceType,
    objs: &[Value],
    list_meta: Value,
    include: IncludeObject,
    version: &str,
    with_columns: bool,
) -> Value {
    let mut t = json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": list_meta,
        "rows": objs.iter().map(|o| row(rt, o, include)).collect::<Vec<_>>(),
    });
    if with_columns {
        t["columnDefinitions"] = json!(columns(rt));
    }
    t
}
