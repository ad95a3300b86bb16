//! The cluster state and the API semantics on it: create, get, list, update, patch,
//! status subresources, bindings, with resourceVersion, uid, generation and preconditions.
//! Deletion lives in [`super::deletion`].

use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde_json::{Value, json};

use super::apply;
use super::clock;
use super::conversion::{from_storage, to_storage};
use super::defaults;
use super::errors::{ApiError, ApiResult};
use super::object_validation;
use super::patch::{self, PatchType};
use super::resources::{self, ResourceType};
use super::selectors::{FieldSelector, LabelSelector};
use super::store::Store;
use super::validation;

/// The user every valid bearer token authenticates as.
pub const ADMIN_USER: &str = "edge-hil-admin";
/// Groups of [`ADMIN_USER`].
pub const ADMIN_GROUPS: &[&str] = &["system:masters", "system:authenticated"];

/// Namespaces kube-apiserver creates at start and refuses to delete (besides kube-node-lease).
pub const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// List options (query parameters of a list or watch).
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// labelSelector.
    pub label: LabelSelector,
    /// fieldSelector.
    pub field: FieldSelector,
    /// limit (0 = none).
    pub limit: usize,
    /// continue token.
    pub continue_token: Option<String>,
}

/// The emulated cluster: storage plus the API semantics.
#[derive(Debug)]
pub struct Cluster {
    store: Mutex<Store>,
    next_service_ip: Mutex<u32>,
    /// Snapshots that paginated lists continue from (storage, namespace, resourceVersion),
    /// newest last, so every page comes from the state of the first one.
    list_snapshots: Mutex<Vec<ListSnapshot>>,
    /// Cluster CA PEM, published as the `kube-root-ca.crt` ConfigMap in every namespace.
    root_ca: Option<String>,
    /// Whether the ServiceAccount admission plugin runs fully (SA must exist, token volume).
    service_account_token_volumes: bool,
}

type ListSnapshot = ((&'static str, Option<String>, u64), Arc<Vec<Arc<Value>>>);

const LIST_SNAPSHOTS: usize = 32;

fn meta(obj: &Value) -> &Value {
    obj.get("metadata").unwrap_or(&Value::Null)
}

/// `metadata.<field>` as a string ("" if absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    meta(obj).get(field).and_then(Value::as_str).unwrap_or("")
}

fn meta_mut(obj: &mut Value) -> ApiResult<&mut serde_json::Map<String, Value>> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if obj.get("metadata").is_none_or(|m| !m.is_object()) {
        obj["metadata"] = json!({});
    }
    obj.get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(n)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// Validates a DNS-1123 subdomain (or label when `label`).
pub fn valid_name(name: &str, label: bool) -> Option<String> {
    let max = if label { 63 } else { 253 };
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.'));
    let ends_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > max || !ok_chars || !ends_ok {
        Some(if label {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()
        })
    } else {
        None
    }
}

/// Removes fields that only the server sets from a comparison copy.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
            for e in entries {
                if let Some(e) = e.as_object_mut() {
                    e.remove("time");
                }
            }
        }
    }
    o
}

impl Cluster {
    /// A cluster with the system namespaces, keeping `history` watch events.
    pub fn new(history: usize) -> Self {
        Self::with_options(history, None, false)
    }

    /// A cluster publishing `root_ca` as `kube-root-ca.crt` in every namespace and, with
    /// `service_account_token_volumes`, running the full ServiceAccount admission plugin.
    pub fn with_options(
        history: usize,
        root_ca: Option<String>,
        service_account_token_volumes: bool,
    ) -> Self {
        let c = Self {
            store: Mutex::new(Store::new(history)),
            next_service_ip: Mutex::new(1),
            list_snapshots: Mutex::new(Vec::new()),
            root_ca,
            service_account_token_volumes,
        };
        if let Some(rt) = resources::find("", "v1", "namespaces") {
            for ns in SYSTEM_NAMESPACES.iter().chain(["kube-node-lease"].iter()) {
                let _ = c.create(rt, None, json!({"metadata": {"name": ns}}));
            }
        }
        super::rbac::seed(&c);
        // The `kubernetes` service in default.
        if let Some(rt) = resources::find("", "v1", "services") {
            let _ = c.create(
                rt,
                Some("default"),
                json!({"metadata":{"name":"kubernetes","labels":{"component":"apiserver","provider":"kubernetes"}},
                    "spec":{"ports":[{"name":"https","port":443,"targetPort":6443}]}}),
            );
        }
        c
    }

    /// A throw-away copy of the cluster: requests with `dryRun=All` run against it, so they
    /// are validated, defaulted and conflict-checked exactly like real ones but persist nothing.
    pub fn dry_run_copy(&self) -> Cluster {
        let ip = *self
            .next_service_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Cluster {
            store: Mutex::new(self.lock().dry_run_copy()),
            next_service_ip: Mutex::new(ip),
            list_snapshots: Mutex::new(Vec::new()),
            root_ca: self.root_ca.clone(),
            service_account_token_volumes: self.service_account_token_volumes,
        }
    }

    /// Imitates etcd compaction: older resourceVersions get 410 Gone from watches and
    /// continue tokens.
    pub fn compact(&self) {
        self.lock().compact();
        self.list_snapshots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Locks the store (a poisoned lock is recovered: the store stays consistent per call).
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ns_key<'a>(rt: &ResourceType, ns: Option<&'a str>) -> &'a str {
        if rt.namespaced { ns.unwrap_or("") } else { "" }
    }

    /// NamespaceLifecycle admission: the namespace must exist and not be terminating.
    fn admit_namespace(store: &Store, rt: &ResourceType, ns: &str) -> ApiResult<()> {
        if !rt.namespaced {
            return Ok(());
        }
        match store.get("namespaces", "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if !meta_str(&n, "deletionTimestamp").is_empty() => {
                let mut e = ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.plural, ns
                ));
                e.details = Some(json!({"name": ns, "kind": rt.plural,
                    "causes":[{"reason":"NamespaceTerminating","message":format!("namespace {ns} is being terminated"),"field":"metadata.namespace"}]}));
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates an object (POST). Returns the stored object in served form.
    pub fn create(&self, rt: &ResourceType, ns: Option<&str>, body: Value) -> ApiResult<Value> {
        self.create_as(rt, ns, body, None)
    }

    /// POST recording field ownership for `manager` (unless the body brings managedFields).
    pub fn create_as(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut body: Value,
        manager: Option<&str>,
    ) -> ApiResult<Value> {
        let ns = Self::ns_key(rt, ns).to_string();
        check_kind(rt, &body)?;
        let m = meta_mut(&mut body)?;
        let mut name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            let gen_name = m.get("generateName").and_then(Value::as_str).unwrap_or("");
            if gen_name.is_empty() {
                return Err(ApiError::invalid(
                    rt.kind,
                    rt.group,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
            name = format!("{gen_name}{}", random_suffix(5));
        }
        if rt.namespaced {
            let body_ns = m.get("namespace").and_then(Value::as_str).unwrap_or("");
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            m.insert("namespace".into(), json!(ns));
        } else {
            m.remove("namespace");
        }
        let why = if rt.group == "rbac.authorization.k8s.io" {
            // RBAC objects only need to be path segments (`system:kubelet-api-admin`)
            super::rbac::invalid_path_segment(&name)
        } else {
            valid_name(&name, rt.plural == "namespaces")
        };
        if let Some(why) = why {
            return Err(ApiError::invalid(
                rt.kind,
                rt.group,
                &name,
                "metadata.name",
                &format!("Invalid value: \"{name}\": {why}"),
            ));
        }
        m.insert("name".into(), json!(name));
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(clock::now()));
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "generation",
        ] {
            m.remove(k);
        }
        if rt.tracks_generation {
            m.insert("generation".into(), json!(1));
        }
        let mut obj = to_storage(rt, body);
        match rt.storage {
            "pods" => defaults::pod_on_create(&mut obj),
            "namespaces" => defaults::namespace_on_create(&mut obj, &name),
            "services" => {
                let ip = {
                    let mut n = self
                        .next_service_ip
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    let ip = format!("10.96.{}.{}", *n / 256, *n % 256);
                    *n += 1;
                    ip
                };
                defaults::service_on_create(&mut obj, ip)
            }
            "deployments" | "replicasets" | "daemonsets" => {
                defaults::workload_on_write(rt.storage, &mut obj);
                obj["status"] = json!({});
            }
            "secrets" => defaults::secret_on_create(&mut obj),
            "certificatesigningrequests" => {
                defaults::csr_on_create(&mut obj, ADMIN_USER, ADMIN_GROUPS)
            }
            _ => {}
        }
        object_validation::validate(rt, &obj)?;
        if let Some(m) = manager
            && obj.pointer("/metadata/managedFields").is_none()
        {
            apply::record_update(rt.kind, &rt.api_version(), None, &mut obj, m, None);
        }
        let mut store = self.lock();
        Self::admit_namespace(&store, rt, &ns)?;
        if rt.storage == "pods" && self.service_account_token_volumes {
            let sa_name = obj
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            let Some(sa) = store.get("serviceaccounts", &ns, &sa_name) else {
                return Err(ApiError::forbidden(format!(
                    "pods \"{name}\" is forbidden: error looking up service account {ns}/{sa_name}: serviceaccount \"{sa_name}\" not found"
                )));
            };
            defaults::inject_service_account_token(&mut obj, &sa);
        }
        if store.get(rt.storage, &ns, &name).is_some() {
            return Err(ApiError::already_exists(rt.group, rt.plural, &name));
        }
        let stored = store.insert(rt.storage, &ns, &name, obj);
        // The service account controller gives every new namespace a `default` account.
        if rt.storage == "namespaces" && store.get("serviceaccounts", &name, "default").is_none() {
            let sa = json!({"apiVersion":"v1","kind":"ServiceAccount","metadata":{
                "name":"default","namespace":name,"uid":uuid::Uuid::new_v4().to_string(),
                "creationTimestamp":clock::now()}});
            store.insert("serviceaccounts", &name, "default", sa);
        }
        // The root CA publisher gives every namespace the cluster CA.
        if rt.storage == "namespaces"
            && let Some(ca) = &self.root_ca
            && store.get("configmaps", &name, "kube-root-ca.crt").is_none()
        {
            let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{
                "name":"kube-root-ca.crt","namespace":name,"uid":uuid::Uuid::new_v4().to_string(),
                "creationTimestamp":clock::now(),
                "annotations":{"kubernetes.io/description":"Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                "data":{"ca.crt": ca}});
            store.insert("configmaps", &name, "kube-root-ca.crt", cm);
        }
        Ok(from_storage(rt, &stored))
    }

    /// Gets an object in served form.
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let ns = Self::ns_key(rt, ns);
        self.lock()
            .get(rt.storage, ns, name)
            .map(|o| from_storage(rt, &o))
            .ok_or_else(|| ApiError::not_found(rt.group, rt.plural, name))
    }

    /// Gets an object in storage form (for controllers).
    pub fn get_stored(&self, storage: &'static str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock().get(storage, ns, name)
    }

    /// Lists objects (ns None = all namespaces), as a `<Kind>List` in served form.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<Value> {
        let store = self.lock();
        let ns = if rt.namespaced { ns } else { None };
        let mut rv = store.current_rv();
        let mut start_after: Option<(String, String)> = None;
        let snapshot_key = |rv: u64| (rt.storage, ns.map(str::to_string), rv);
        let all: Arc<Vec<Arc<Value>>> = if let Some(tok) = &opts.continue_token {
            let (trv, key) = decode_continue(tok)?;
            rv = trv;
            start_after = Some(key);
            let snap = self
                .list_snapshots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .find(|(k, _)| *k == snapshot_key(trv))
                .map(|(_, v)| v.clone());
            match snap {
                Some(v) => v,
                None if trv < store.oldest_rv(rt.storage) || trv > store.current_rv() => {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ));
                }
                // The snapshot was evicted but the version is recent: continue on the
                // current state (documented approximation).
                None => Arc::new(store.list(rt.storage, ns)),
            }
        } else {
            Arc::new(store.list(rt.storage, ns))
        };
        drop(store);
        if opts.continue_token.is_none() && opts.limit > 0 && all.len() > opts.limit {
            let mut snaps = self
                .list_snapshots
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            snaps.retain(|(k, _)| *k != snapshot_key(rv));
            snaps.push((snapshot_key(rv), all.clone()));
            if snaps.len() > LIST_SNAPSHOTS {
                snaps.remove(0);
            }
        }
        let mut matched: Vec<Value> = all
            .iter()
            .filter(|o| {
                start_after.as_ref().is_none_or(|(sn, sname)| {
                    (meta_str(o, "namespace"), meta_str(o, "name")) > (sn.as_str(), sname.as_str())
                })
            })
            .filter(|o| opts.label.matches(o) && opts.field.matches(rt.storage, o))
            .map(|o| {
                let mut v = from_storage(rt, o);
                if let Some(m) = v.as_object_mut() {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
                v
            })
            .collect();
        let mut list_meta = json!({ "resourceVersion": rv.to_string() });
        if opts.limit > 0 && matched.len() > opts.limit {
            let remaining = matched.len() - opts.limit;
            matched.truncate(opts.limit);
            if let Some(last) = matched.last() {
                list_meta["continue"] = json!(encode_continue(
                    rv,
                    meta_str(last, "namespace"),
                    meta_str(last, "name")
                ));
                if opts.label.is_empty() && opts.field.is_empty() {
                    list_meta["remainingItemCount"] = json!(remaining);
                }
            }
        }
        Ok(json!({
            "kind": rt.list_kind(),
            "apiVersion": rt.api_version(),
            "metadata": list_meta,
            "items": matched,
        }))
    }

    /// Replaces an object (PUT) or its `status`/`approval` subresource.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<&str>,
    ) -> ApiResult<Value> {
        self.update_as(rt, ns, name, body, sub, None)
    }

    /// PUT recording field ownership for `manager`.
    pub fn update_as(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<&str>,
        manager: Option<&str>,
    ) -> ApiResult<Value> {
        check_kind(rt, &body)?;
        let ns = Self::ns_key(rt, ns).to_string();
        let body_name = meta_str(&body, "name");
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_ns = meta_str(&body, "namespace");
        if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let new = to_storage(rt, body);
        let mut store = self.lock();
        let old = store
            .get(rt.storage, &ns, name)
            .ok_or_else(|| ApiError::not_found(rt.group, rt.plural, name))?;
        let out = Self::update_locked(&mut store, rt, &ns, name, &old, new, sub, manager)?;
        Ok(from_storage(rt, &out))
    }

    /// The update semantics, with the store locked.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update_locked(
        store: &mut Store,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        old: &Value,
        mut new: Value,
        sub: Option<&str>,
        manager: Option<&str>,
    ) -> ApiResult<Arc<Value>> {
        // A write without managedFields keeps the stored ones.
        if new.pointer("/metadata/managedFields").is_none()
            && let Some(mf) = old.pointer("/metadata/managedFields")
            && let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.insert("managedFields".into(), mf.clone());
        }
        let new_rv = meta_str(&new, "resourceVersion");
        if !new_rv.is_empty() && new_rv != meta_str(old, "resourceVersion") {
            return Err(ApiError::conflict(rt.group, rt.plural, name));
        }
        let new_uid = meta_str(&new, "uid");
        if !new_uid.is_empty() && new_uid != meta_str(old, "uid") {
            return Err(ApiError::conflict_msg(
                rt.group,
                rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {new_uid}, UID in object meta: {}",
                    meta_str(old, "uid")
                ),
            ));
        }
        match sub {
            Some("status") => {
                // Only status changes (and field ownership); metadata and spec stay as stored.
                let status = new.get("status").cloned().unwrap_or_else(|| json!({}));
                let managed = new.pointer("/metadata/managedFields").cloned();
                new = old.clone();
                new["status"] = status;
                if let Some(mf) = managed {
                    new["metadata"]["managedFields"] = mf;
                }
            }
            Some("approval") => {
                let mut conds = new
                    .pointer("/status/conditions")
                    .cloned()
                    .unwrap_or_else(|| json!([]));
                defaults::stamp_conditions(&mut conds);
                new = old.clone();
                if new.get("status").is_none_or(|s| !s.is_object()) {
                    new["status"] = json!({});
                }
                new["status"]["conditions"] = conds;
            }
            Some(other) => {
                return Err(ApiError::not_found(
                    rt.group,
                    &format!("{}/{other}", rt.plural),
                    name,
                ));
            }
            None => {
                if rt.has_status {
                    match old.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                defaults::workload_on_write(rt.storage, &mut new);
                if matches!(rt.storage, "deployments" | "replicasets" | "daemonsets")
                    && old.pointer("/spec/selector") != new.pointer("/spec/selector")
                {
                    let sel = new.pointer("/spec/selector").cloned().unwrap_or_default();
                    return Err(ApiError::invalid(
                        rt.kind,
                        rt.group,
                        name,
                        "spec.selector",
                        &format!("Invalid value: {sel}: field is immutable"),
                    ));
                }
                if rt.storage == "pods" {
                    defaults::pod_on_write(&mut new);
                    validate_pod_update(old, &new)?;
                }
                if rt.storage == "namespaces" {
                    new["spec"] = old.get("spec").cloned().unwrap_or_else(|| json!({}));
                }
                let m = meta_mut(&mut new)?;
                for k in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    match meta(old).get(k) {
                        Some(v) => m.insert(k.into(), v.clone()),
                        None => m.remove(k),
                    };
                }
                m.insert("name".into(), json!(name));
                if rt.namespaced {
                    m.insert("namespace".into(), json!(ns));
                }
                if !meta_str(old, "deletionTimestamp").is_empty() {
                    let old_f: Vec<&Value> = meta(old)
                        .get("finalizers")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().collect())
                        .unwrap_or_default();
                    let added = m
                        .get("finalizers")
                        .and_then(Value::as_array)
                        .is_some_and(|a| a.iter().any(|f| !old_f.contains(&f)));
                    if added {
                        return Err(ApiError::invalid(
                            rt.kind,
                            rt.group,
                            name,
                            "metadata.finalizers",
                            "Forbidden: no new finalizers can be added if the object is being deleted",
                        ));
                    }
                }
                // Deployments also count annotation changes (they are copied to the
                // ReplicaSets), as kube-apiserver's deployment strategy does.
                let annotations_changed = rt.storage == "deployments"
                    && old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations");
                if rt.tracks_generation
                    && (old.get("spec") != new.get("spec") || annotations_changed)
                {
                    let g = meta(old)
                        .get("generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    new["metadata"]["generation"] = json!(g + 1);
                }
            }
        }
        new["metadata"]["resourceVersion"] = json!(meta_str(old, "resourceVersion"));
        if sub.is_none() {
            object_validation::validate(rt, &new)?;
        }
        if comparable(&new) == comparable(old) {
            // No-op updates write nothing and emit no event.
            return Ok(Arc::new(old.clone()));
        }
        if let Some(m) = manager {
            apply::record_update(rt.kind, &rt.api_version(), Some(old), &mut new, m, sub);
        }
        // Finalizers all gone on an object whose deletion is due: it goes away now.
        let finalizers_empty = meta(&new)
            .get("finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let grace_zero = meta(old)
            .get("deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(0);
        if !meta_str(old, "deletionTimestamp").is_empty() && finalizers_empty && grace_zero {
            store.insert(rt.storage, ns, name, new);
            return store
                .remove(rt.storage, ns, name)
                .ok_or_else(|| ApiError::internal("object vanished during update"));
        }
        Ok(store.insert(rt.storage, ns, name, new))
    }

    /// Applies a PATCH; server-side apply creates a missing object. Returns (object, created).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        pt: PatchType,
        patch_body: &Value,
        sub: Option<&str>,
        field_manager: Option<&str>,
        field_validation: Option<&str>,
        force: bool,
    ) -> ApiResult<(Value, bool)> {
        if pt == PatchType::Apply && field_manager.is_none_or(str::is_empty) {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                "fieldManager",
                "Required value: is required for apply patch",
            ));
        }
        let nsk = Self::ns_key(rt, ns).to_string();
        loop {
            let current = self.lock().get(rt.storage, &nsk, name);
            let Some(old) = current else {
                if pt == PatchType::Apply && sub.is_none() {
                    let mut body = patch_body.clone();
                    if meta_str(&body, "name").is_empty() {
                        meta_mut(&mut body)?.insert("name".into(), json!(name));
                    }
                    if meta_str(&body, "name") != name {
                        return Err(ApiError::bad_request(format!(
                            "the name of the object ({}) does not match the name on the URL ({name})",
                            meta_str(&body, "name")
                        )));
                    }
                    validation::check(rt, &body, field_validation)?;
                    let body = apply::apply(
                        rt.kind,
                        &rt.api_version(),
                        &json!({"metadata": {}}),
                        &body,
                        field_manager.unwrap_or(""),
                        force,
                        None,
                    )
                    .map(|mut created| {
                        // The created object is the applied configuration plus ownership.
                        let managed = created.pointer("/metadata/managedFields").cloned();
                        created = body.clone();
                        if let (Some(m), Some(mf)) = (
                            created.get_mut("metadata").and_then(Value::as_object_mut),
                            managed,
                        ) {
                            m.insert("managedFields".into(), mf);
                        }
                        created
                    })?;
                    return match self.create(rt, ns, body) {
                        Err(e) if e.reason == "AlreadyExists" => continue,
                        other => other.map(|o| (o, true)),
                    };
                }
                return Err(ApiError::not_found(rt.group, rt.plural, name));
            };
            let served = from_storage(rt, &old);
            let patched = if pt == PatchType::Apply {
                apply::apply(
                    rt.kind,
                    &rt.api_version(),
                    &served,
                    patch_body,
                    field_manager.unwrap_or(""),
                    force,
                    sub,
                )?
            } else {
                patch::apply_patch(pt, rt.kind, &served, patch_body)?
            };
            validation::check(rt, &patched, field_validation)?;
            let old_rv = meta_str(&old, "resourceVersion").to_string();
            let patch_rv = meta_str(&patched, "resourceVersion").to_string();
            let new = to_storage(rt, patched);
            let mut store = self.lock();
            let Some(latest) = store.get(rt.storage, &nsk, name) else {
                continue;
            };
            if meta_str(&latest, "resourceVersion") != old_rv {
                if patch_rv.is_empty() || patch_rv == old_rv {
                    // Raced with another writer; a patch without an RV precondition retries.
                    if patch_body.pointer("/metadata/resourceVersion").is_none() {
                        continue;
                    }
                }
                return Err(ApiError::conflict(rt.group, rt.plural, name));
            }
            let manager = if pt == PatchType::Apply {
                None
            } else {
                field_manager
            };
            let out = Self::update_locked(&mut store, rt, &nsk, name, &latest, new, sub, manager)?;
            return Ok((from_storage(rt, &out), false));
        }
    }

    /// pods/binding: assigns a pod to a node, like kube-apiserver's BindingREST.
    pub fn bind(&self, ns: &str, pod_name: &str, binding: &Value) -> ApiResult<Value> {
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid(
                "Binding",
                "",
                pod_name,
                "target.name",
                "Required value",
            ));
        }
        let rt = resources::find("", "v1", "pods")
            .ok_or_else(|| ApiError::internal("pods resource missing"))?;
        let mut store = self.lock();
        let pod = store
            .get("pods", ns, pod_name)
            .ok_or_else(|| ApiError::not_found("", "pods", pod_name))?;
        let uid = binding.pointer("/metadata/uid").and_then(Value::as_str);
        if let Some(uid) = uid
            && !uid.is_empty()
            && uid != meta_str(&pod, "uid")
        {
            return Err(ApiError::conflict_msg(
                "",
                "pods",
                pod_name,
                "Precondition failed: UID mismatch",
            ));
        }
        if !meta_str(&pod, "deletionTimestamp").is_empty() {
            return Err(ApiError::conflict_msg(
                "",
                "pods",
                pod_name,
                &format!("pod {pod_name} is being deleted, cannot be assigned to a host"),
            ));
        }
        let current = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !current.is_empty() {
            return Err(ApiError::conflict_msg(
                "",
                "pods",
                pod_name,
                &format!("pod {pod_name} is already assigned to node \"{current}\""),
            ));
        }
        let mut new = (*pod).clone();
        new["spec"]["nodeName"] = json!(node);
        set_condition(&mut new, "PodScheduled", "True", None, None);
        // Binding writes spec and status together (not through update semantics).
        new["metadata"]["resourceVersion"] = json!(meta_str(&pod, "resourceVersion"));
        let _ = rt;
        store.insert("pods", ns, pod_name, new);
        Ok(json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}))
    }

    /// Writes a new status for a stored object (controllers), unless unchanged.
    pub fn write_status(
        &self,
        storage: &'static str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Arc<Value>> {
        let mut store = self.lock();
        let old = store.get(storage, ns, name)?;
        let mut new = (*old).clone();
        f(&mut new);
        if comparable(&new) == comparable(&old) {
            return Some(old);
        }
        Some(store.insert(storage, ns, name, new))
    }
}

/// Sets (or updates) a condition in `status.conditions`, keeping lastTransitionTime
/// unless the status flips.
pub fn set_condition(
    obj: &mut Value,
    ctype: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) {
    if obj.get("status").is_none_or(|s| !s.is_object()) {
        obj["status"] = json!({});
    }
    let now = clock::now();
    let conds = obj["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conds)) = conds else {
        return;
    };
    let mut c =
        json!({"type": ctype, "status": status, "lastProbeTime": null, "lastTransitionTime": now});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    match conds
        .iter_mut()
        .find(|x| x.get("type").and_then(Value::as_str) == Some(ctype))
    {
        Some(existing) => {
            if existing.get("status").and_then(Value::as_str) == Some(status) {
                c["lastTransitionTime"] = existing
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(json!(now));
            }
            *existing = c;
        }
        None => conds.push(c),
    }
}

fn check_kind(rt: &ResourceType, body: &Value) -> ApiResult<()> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (!kind.is_empty() && kind != rt.kind) || (!av.is_empty() && av != rt.api_version()) {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            rt.api_version()
        ))
        .with_kind_message(kind, rt));
    }
    Ok(())
}

impl ApiError {
    fn with_kind_message(mut self, kind: &str, rt: &ResourceType) -> Self {
        if !kind.is_empty() && kind != rt.kind {
            self.message = format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                rt.kind
            );
        }
        self
    }
}

fn mask_mutable_pod_fields(spec: &Value) -> Value {
    let mut s = spec.clone();
    for k in ["containers", "initContainers"] {
        if let Some(cs) = s.get_mut(k).and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(m) = c.as_object_mut() {
                    m.remove("image");
                }
            }
        }
    }
    if let Some(m) = s.as_object_mut() {
        m.remove("activeDeadlineSeconds");
        m.remove("tolerations");
        m.remove("schedulingGates");
        m.remove("ephemeralContainers");
    }
    s
}

fn validate_pod_update(old: &Value, new: &Value) -> ApiResult<()> {
    let os = old.get("spec").cloned().unwrap_or(Value::Null);
    let ns = new.get("spec").cloned().unwrap_or(Value::Null);
    // Tolerations may only be added (an existing one may change only tolerationSeconds).
    let strip_secs = |t: &Value| {
        let mut t = t.clone();
        if let Some(m) = t.as_object_mut() {
            m.remove("tolerationSeconds");
        }
        t
    };
    let new_tols: Vec<Value> = ns
        .get("tolerations")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(strip_secs).collect())
        .unwrap_or_default();
    let removed = os
        .get("tolerations")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|t| !new_tols.contains(&strip_secs(t))));
    if removed {
        return Err(ApiError::invalid(
            "Pod",
            "",
            meta_str(old, "name"),
            "spec.tolerations",
            "Forbidden: existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    if mask_mutable_pod_fields(&os) != mask_mutable_pod_fields(&ns) {
        return Err(ApiError::invalid(
            "Pod",
            "",
            meta_str(old, "name"),
            "spec",
            "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        ));
    }
    Ok(())
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let start = if ns.is_empty() {
        format!("{name}\u{0}")
    } else {
        format!("{ns}/{name}\u{0}")
    };
    let tok = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tok.to_string())
}

fn decode_continue(tok: &str) -> ApiResult<(u64, (String, String))> {
    let bad = || ApiError::bad_request("continue key is not valid: invalid continue token");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let start = start.trim_end_matches('\u{0}');
    let key = match start.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => (String::new(), start.to_string()),
    };
    Ok((rv, key))
}
