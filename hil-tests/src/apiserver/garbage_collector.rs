//! The garbage collector (kube-controller-manager's `garbagecollector`), for the owner
//! kinds the emulator serves: dependents whose owners are all gone are deleted
//! (background propagation); an owner deleted with `propagationPolicy=Foreground`
//! (finalizer `foregroundDeletion`) goes once its dependents are gone; one deleted with
//! `Orphan` (finalizer `orphan`) has its dependents' ownerReferences to it removed first.
//! Node Leases owned by their Node go with it, as in a real cluster.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use super::cluster::{Cluster, meta_str};
use super::controller_ref;
use super::resources::RESOURCES;
use super::store::Store;

/// Storages whose objects may own or be owned.
const STORAGES: &[&str] = &[
    "deployments",
    "replicasets",
    "daemonsets",
    "pods",
    "configmaps",
    "secrets",
    "services",
    "serviceaccounts",
    "leases",
];

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(f)))
}

/// The state of one ownerReference's owner.
enum Owner {
    /// Exists with the referenced uid.
    Live(Arc<Value>),
    /// Gone (or replaced by an object with another uid).
    Gone,
    /// A kind the emulator does not serve: never treated as gone, as the real collector
    /// cannot resolve it either.
    Unknown,
}

fn resolve(store: &Store, ns: &str, r: &Value) -> Owner {
    let api_version = r.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let Some(rt) = RESOURCES.iter().find(|rt| {
        rt.group == group && rt.version == version && rt.kind == kind && !rt.virtual_only
    }) else {
        return Owner::Unknown;
    };
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    match store.get(rt.storage, if rt.namespaced { ns } else { "" }, name) {
        Some(o) if meta_str(&o, "uid") == uid => Owner::Live(o),
        _ => Owner::Gone,
    }
}

/// One pass over every object with ownerReferences.
pub fn run_once(cluster: &Cluster) {
    // Dependents and the state of their owners, read under one lock.
    let mut dependents: Vec<(&'static str, Arc<Value>, Vec<Owner>)> = Vec::new();
    let mut deleting_owners: Vec<(&'static str, Arc<Value>)> = Vec::new();
    {
        let store = cluster.lock();
        for storage in STORAGES {
            for o in store.list(storage, None) {
                if controller_ref::deleting(&o)
                    && (has_finalizer(&o, "orphan") || has_finalizer(&o, "foregroundDeletion"))
                {
                    deleting_owners.push((storage, o.clone()));
                }
                let Some(refs) = o
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .filter(|r| !r.is_empty())
                else {
                    continue;
                };
                let ns = meta_str(&o, "namespace");
                let owners = refs.iter().map(|r| resolve(&store, ns, r)).collect();
                dependents.push((storage, o.clone(), owners));
            }
        }
    }
    let mut has_dependents: HashSet<String> = HashSet::new();
    for (storage, obj, owners) in &dependents {
        let ns = meta_str(obj, "namespace");
        let name = meta_str(obj, "name");
        let live: Vec<&Arc<Value>> = owners
            .iter()
            .filter_map(|o| match o {
                Owner::Live(v) => Some(v),
                _ => None,
            })
            .collect();
        let orphaning: Vec<&str> = live
            .iter()
            .filter(|o| controller_ref::deleting(o) && has_finalizer(o, "orphan"))
            .map(|o| meta_str(o, "uid"))
            .collect();
        if !orphaning.is_empty() {
            cluster.write_status(storage, ns, name, |d| {
                if let Some(refs) = d
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|r| {
                        !orphaning.contains(&r.get("uid").and_then(Value::as_str).unwrap_or(""))
                    });
                }
            });
            continue;
        }
        for o in &live {
            has_dependents.insert(meta_str(o, "uid").to_string());
        }
        let all_gone = owners.iter().all(|o| matches!(o, Owner::Gone));
        let foreground_owner = live
            .iter()
            .any(|o| controller_ref::deleting(o) && has_finalizer(o, "foregroundDeletion"));
        if (all_gone || foreground_owner) && !controller_ref::deleting(obj) {
            tracing::debug!(storage, ns, name, "garbage collecting dependent");
            controller_ref::delete(cluster, storage, ns, name);
        }
    }
    // Owners waiting for their dependents (foreground) or for orphaning to finish.
    for (storage, obj) in &deleting_owners {
        let uid = meta_str(obj, "uid");
        let fg = has_finalizer(obj, "foregroundDeletion") && !has_dependents.contains(uid);
        let orphan = has_finalizer(obj, "orphan")
            && !dependents
                .iter()
                .any(|(_, d, _)| owner_uids(d).iter().any(|u| u == uid));
        if !(fg || orphan) {
            continue;
        }
        let Some(rt) = super::resources::by_storage(storage) else {
            continue;
        };
        let ns = meta_str(obj, "namespace");
        let name = meta_str(obj, "name");
        let mut new = (**obj).clone();
        if let Some(f) = new
            .pointer_mut("/metadata/finalizers")
            .and_then(Value::as_array_mut)
        {
            f.retain(|x| {
                let x = x.as_str().unwrap_or("");
                !((fg && x == "foregroundDeletion") || (orphan && x == "orphan"))
            });
        }
        if let Err(e) = cluster.update(rt, Some(ns), name, new, None) {
            tracing::debug!(storage, ns, name, error = %e.message, "removing GC finalizer failed");
        }
    }
}
