//! Deletion as kube-apiserver does it: preconditions, graceful pod deletion
//! (deletionTimestamp + deletionGracePeriodSeconds, gone on a grace-0 delete), finalizers,
//! and namespace termination (the namespace controller's part included).

use std::sync::Arc;

use serde_json::{Value, json};

use super::clock;
use super::cluster::{Cluster, ListOptions, SYSTEM_NAMESPACES, meta_str};
use super::conversion::from_storage;
use super::errors::{ApiError, ApiResult};
use super::resources::{self, ResourceType};
use super::store::Store;

/// DeleteOptions (body and query parameters).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// gracePeriodSeconds.
    pub grace_period_seconds: Option<i64>,
    /// preconditions.uid.
    pub uid: Option<String>,
    /// preconditions.resourceVersion.
    pub resource_version: Option<String>,
    /// propagationPolicy (Foreground adds the foregroundDeletion finalizer).
    pub propagation_policy: Option<String>,
}

impl DeleteOptions {
    /// Reads a DeleteOptions body (may be empty) and merges query parameters.
    pub fn parse(body: &[u8], grace_q: Option<i64>, prop_q: Option<String>) -> ApiResult<Self> {
        let mut o = Self::default();
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
            o.grace_period_seconds = v.get("gracePeriodSeconds").and_then(Value::as_i64);
            o.uid = v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.resource_version = v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
            o.propagation_policy = v
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        if grace_q.is_some() {
            o.grace_period_seconds = grace_q;
        }
        if prop_q.is_some() {
            o.propagation_policy = prop_q;
        }
        Ok(o)
    }
}

/// What a delete did.
#[derive(Debug)]
pub enum DeleteOutcome {
    /// Removed from storage (the last state).
    Deleted(Arc<Value>),
    /// Still there: graceful deletion or finalizers pending (the current state).
    Pending(Arc<Value>),
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The delete semantics with the store locked.
pub(crate) fn delete_locked(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<DeleteOutcome> {
    let obj = store
        .get(rt.storage, ns, name)
        .ok_or_else(|| ApiError::not_found(rt.group, rt.plural, name))?;
    if let Some(uid) = &opts.uid
        && uid != meta_str(&obj, "uid")
    {
        return Err(ApiError::conflict_msg(
            rt.group,
            rt.plural,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&obj, "uid")
            ),
        ));
    }
    if let Some(rv) = &opts.resource_version
        && rv != meta_str(&obj, "resourceVersion")
    {
        return Err(ApiError::conflict_msg(
            rt.group,
            rt.plural,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(&obj, "resourceVersion")
            ),
        ));
    }
    let mut fins = finalizers(&obj);
    if opts.propagation_policy.as_deref() == Some("Foreground")
        && !fins.iter().any(|f| f == "foregroundDeletion")
        && meta_str(&obj, "deletionTimestamp").is_empty()
    {
        fins.push("foregroundDeletion".into());
    }
    if opts.propagation_policy.as_deref() == Some("Orphan")
        && !fins.iter().any(|f| f == "orphan")
        && meta_str(&obj, "deletionTimestamp").is_empty()
        && rt.storage != "namespaces"
    {
        fins.push("orphan".into());
    }

    // Namespaces: Terminating, content removed by the namespace controller.
    if rt.storage == "namespaces" {
        if SYSTEM_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            )));
        }
        if !meta_str(&obj, "deletionTimestamp").is_empty() {
            return Ok(DeleteOutcome::Pending(obj));
        }
        let mut new = (*obj).clone();
        new["metadata"]["deletionTimestamp"] = json!(clock::now());
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        new["status"]["phase"] = json!("Terminating");
        return Ok(DeleteOutcome::Pending(
            store.insert(rt.storage, ns, name, new),
        ));
    }

    // Graceful deletion (pods).
    if rt.storage == "pods" {
        let mut grace = opts.grace_period_seconds.unwrap_or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(30)
        });
        if grace < 0 {
            grace = 1;
        }
        let node = obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let phase = obj
            .pointer("/status/phase")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() || phase == "Succeeded" || phase == "Failed" {
            grace = 0;
        }
        if grace > 0 {
            let current = obj
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if !meta_str(&obj, "deletionTimestamp").is_empty() {
                // Already terminating: a delete may only shorten the grace period.
                let remaining = obj
                    .pointer("/metadata/deletionTimestamp")
                    .and_then(Value::as_str)
                    .and_then(clock::age_seconds)
                    .map(|age| -age)
                    .unwrap_or(0);
                if current.is_some_and(|c| c == 0) || grace >= remaining.max(0) {
                    return Ok(DeleteOutcome::Pending(obj));
                }
            }
            let mut new = (*obj).clone();
            if meta_str(&obj, "deletionTimestamp").is_empty() {
                bump_generation(&mut new);
            }
            new["metadata"]["deletionTimestamp"] =
                json!(clock::after(std::time::Duration::from_secs(grace as u64)));
            new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            if !fins.is_empty() {
                new["metadata"]["finalizers"] = json!(fins);
            }
            return Ok(DeleteOutcome::Pending(
                store.insert(rt.storage, ns, name, new),
            ));
        }
    }

    if !fins.is_empty() {
        let mut new = (*obj).clone();
        if meta_str(&obj, "deletionTimestamp").is_empty() {
            bump_generation(&mut new);
            new["metadata"]["deletionTimestamp"] = json!(clock::now());
        }
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        new["metadata"]["finalizers"] = json!(fins);
        if new == *obj {
            return Ok(DeleteOutcome::Pending(obj));
        }
        return Ok(DeleteOutcome::Pending(
            store.insert(rt.storage, ns, name, new),
        ));
    }
    let gone = store
        .remove(rt.storage, ns, name)
        .ok_or_else(|| ApiError::not_found(rt.group, rt.plural, name))?;
    Ok(DeleteOutcome::Deleted(gone))
}

/// Setting `deletionTimestamp` changes how controllers treat an object, so kube-apiserver
/// bumps a tracked `metadata.generation` with it (`rest.BeforeDelete`, and the registry
/// store for objects held by finalizers).
fn bump_generation(obj: &mut Value) {
    if let Some(g) = obj.pointer("/metadata/generation").and_then(Value::as_i64)
        && g > 0
    {
        obj["metadata"]["generation"] = json!(g + 1);
    }
}

/// The response body kube-apiserver sends for a delete.
pub fn delete_response(rt: &ResourceType, outcome: &DeleteOutcome) -> Value {
    match outcome {
        DeleteOutcome::Pending(o) => from_storage(rt, o),
        DeleteOutcome::Deleted(o) => {
            if matches!(rt.storage, "pods" | "services") {
                from_storage(rt, o)
            } else {
                let mut details = json!({"name": meta_str(o, "name"), "kind": rt.plural, "uid": meta_str(o, "uid")});
                if !rt.group.is_empty() {
                    details["group"] = json!(rt.group);
                }
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":details})
            }
        }
    }
}

impl Cluster {
    /// DELETE of one object.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<DeleteOutcome> {
        let ns = if rt.namespaced { ns.unwrap_or("") } else { "" };
        let out = delete_locked(&mut self.lock(), rt, ns, name, opts)?;
        if rt.storage == "namespaces" {
            self.finalize_namespaces();
        }
        Ok(out)
    }

    /// DELETE of a collection (deletecollection): each match is deleted like a single DELETE.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let listed = self.list(rt, ns, list)?;
        let mut items = Vec::new();
        for item in listed
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            let ins = meta_str(&item, "namespace").to_string();
            let name = meta_str(&item, "name").to_string();
            match self.delete(rt, Some(&ins), &name, opts) {
                Ok(DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o)) => {
                    let mut v = from_storage(rt, &o);
                    if let Some(m) = v.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    items.push(v)
                }
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(
            json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(),
            "metadata": {"resourceVersion": self.lock().current_rv().to_string()}, "items": items}),
        )
    }

    /// The namespace controller: empties terminating namespaces and removes them when empty.
    pub fn finalize_namespaces(&self) {
        let terminating: Vec<String> = self
            .lock()
            .list("namespaces", None)
            .iter()
            .filter(|n| !meta_str(n, "deletionTimestamp").is_empty())
            .map(|n| meta_str(n, "name").to_string())
            .collect();
        for ns in terminating {
            let mut store = self.lock();
            let mut remaining = 0usize;
            for rt in resources::RESOURCES
                .iter()
                .filter(|r| r.namespaced && !r.virtual_only && r.group != "events.k8s.io")
            {
                for obj in store.list(rt.storage, Some(&ns)) {
                    remaining += 1;
                    if meta_str(&obj, "deletionTimestamp").is_empty() {
                        let name = meta_str(&obj, "name").to_string();
                        let _ =
                            delete_locked(&mut store, rt, &ns, &name, &DeleteOptions::default());
                    }
                }
            }
            if remaining == 0 {
                store.remove("namespaces", "", &ns);
            }
        }
    }
}
