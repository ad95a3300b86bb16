//! The garbage collector (kube-controller-manager's `garbagecollector`), for the owner
//! kinds the emulator serves: dependents whose owners are all gone are deleted
//! (background propagation); an owner deleted with `propagationPolicy=Foreground`
//! (finalizer `foregroundDeletion`) goes once its dependents are gone; one deleted with
//! `Orphan` (finalizer `orphan`) has its dependents' ownerReferences to it removed first.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::cluster::{Cluster, meta_str};
use super::controller_ref;

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

/// One pass over every object with ownerReferences.
pub fn run_once(cluster: &Cluster) {
    // Snapshot: uid → (storage, ns, name, object) for all candidate objects.
    let mut all: Vec<(&'static str, std::sync::Arc<Value>)> = Vec::new();
    {
        let store = cluster.lock();
        for storage in STORAGES {
            for o in store.list(storage, None) {
                all.push((storage, o));
            }
        }
    }
    let by_uid: HashMap<&str, (&'static str, &Value)> = all
        .iter()
        .map(|(s, o)| (meta_str(o, "uid"), (*s, o.as_ref())))
        .collect();
    let mut has_dependents: HashSet<String> = HashSet::new();
    for (storage, obj) in &all {
        let owners = owner_uids(obj);
        if owners.is_empty() {
            continue;
        }
        let ns = meta_str(obj, "namespace");
        let name = meta_str(obj, "name");
        // Owners must live in the same namespace (or be cluster-scoped).
        let live: Vec<&Value> = owners
            .iter()
            .filter_map(|u| by_uid.get(u.as_str()))
            .filter(|(_, o)| {
                let ons = meta_str(o, "namespace");
                ons.is_empty() || ons == ns
            })
            .map(|(_, o)| *o)
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
        let gone = live.is_empty();
        let foreground_owner = live
            .iter()
            .any(|o| controller_ref::deleting(o) && has_finalizer(o, "foregroundDeletion"));
        if (gone || foreground_owner) && !controller_ref::deleting(obj) {
            tracing::debug!(storage, ns, name, "garbage collecting dependent");
            controller_ref::delete(cluster, storage, ns, name);
        }
    }
    // Owners waiting for their dependents (foreground) or for orphaning to finish.
    for (storage, obj) in &all {
        if !controller_ref::deleting(obj) {
            continue;
        }
        let uid = meta_str(obj, "uid");
        let fg = has_finalizer(obj, "foregroundDeletion") && !has_dependents.contains(uid);
        let orphan = has_finalizer(obj, "orphan")
            && !all
                .iter()
                .any(|(_, d)| owner_uids(d).iter().any(|u| u == uid));
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
