//! OpenAPI documents as kube-apiserver publishes them: the `/openapi/v3` index, one
//! OpenAPI 3.0 document per group-version, and `/openapi/v2` (JSON only).
//!
//! The documents carry the paths, operations, parameters (including `fieldValidation`,
//! which tells kubectl that the server validates fields, so it sends
//! `fieldValidation=Strict` instead of validating client-side) and the
//! `x-kubernetes-group-version-kind` / `x-kubernetes-action` extensions. Component schemas
//! are skeletons (type, GVK, description): enough for discovery-driven clients, not for
//! `kubectl explain`. PATCH operations do not advertise strategic merge patch, so
//! `kubectl apply` computes strategic patches from its compiled-in types, as it does for
//! servers without OpenAPI patch metadata.

use serde_json::{Map, Value, json};

use super::discovery::GIT_VERSION;
use super::errors::{ApiError, ApiResult};
use super::resources::{self, RESOURCES, ResourceType};
use super::router::{Body, json_response};

const HASH: &str = "EDGEHIL0000000000000000000000000000000000000000000000000000000001";

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`.
pub fn index() -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(&str, &str)> = vec![("", "v1")];
    for g in resources::groups() {
        gvs.push((g, "v1"));
    }
    for (g, v) in gvs {
        let key = gv_key(g, v);
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={HASH}")}),
        );
    }
    json!({ "paths": paths })
}

fn schema_name(rt: &ResourceType) -> String {
    let pkg = match rt.group {
        "" => "core".to_string(),
        g => g.trim_end_matches(".k8s.io").replace('.', "_"),
    };
    format!("io.k8s.api.{pkg}.{}.{}", rt.version, rt.kind)
}

fn gvk(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "version": rt.version, "kind": rt.kind})
}

fn op_id(verb: &str, rt: &ResourceType, namespaced_path: bool, suffix: &str) -> String {
    let group: String = if rt.group.is_empty() {
        "Core".into()
    } else {
        rt.group
            .trim_end_matches(".k8s.io")
            .split('.')
            .map(|p| {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect()
    };
    let scope = if namespaced_path { "Namespaced" } else { "" };
    format!("{verb}{group}V1{scope}{}{suffix}", rt.kind)
}

fn qp(name: &str, ty: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "description": desc, "schema": {"type": ty, "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        qp(
            "dryRun",
            "string",
            "When present, indicates that modifications should not be persisted.",
        ),
        qp(
            "fieldManager",
            "string",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        qp(
            "fieldValidation",
            "string",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict.",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    vec![
        qp(
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
        ),
        qp(
            "continue",
            "string",
            "The continue option should be set when retrieving more results from the server.",
        ),
        qp(
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their fields.",
        ),
        qp(
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their labels.",
        ),
        qp(
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        qp(
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        qp(
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        qp(
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with `watch=true`.",
        ),
        qp(
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call.",
        ),
        qp(
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
        ),
    ]
}

fn content(schema_ref: &str, types: &[&str]) -> Value {
    let mut m = Map::new();
    for t in types {
        m.insert(
            t.to_string(),
            json!({"schema": {"$ref": format!("#/components/schemas/{schema_ref}")}}),
        );
    }
    Value::Object(m)
}

fn op(
    verb_action: &str,
    id: String,
    rt: &ResourceType,
    params: Vec<Value>,
    body: Option<Value>,
    resp_ref: &str,
) -> Value {
    let mut o = json!({
        "tags": [if rt.group.is_empty() { "core_v1".to_string() } else { format!("{}_v1", rt.group.trim_end_matches(".k8s.io").replace('.', "_")) }],
        "description": format!("{verb_action} {}", rt.kind),
        "operationId": id,
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": content(resp_ref, &["application/json", "application/yaml"])},
                      "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": verb_action,
        "x-kubernetes-group-version-kind": gvk(rt),
    });
    if let Some(b) = body {
        o["requestBody"] = b;
    }
    o
}

fn name_param(what: &str) -> Value {
    json!({"name": "name", "in": "path", "description": format!("name of the {what}"), "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn ns_param() -> Value {
    json!({"name": "namespace", "in": "path", "description": "object name and auth scope, such as for teams and projects", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn paths_for(rt: &ResourceType, paths: &mut Map<String, Value>) {
    let base = format!("/{}", gv_key(rt.group, rt.version));
    let (coll, namespaced) = if rt.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", rt.plural),
            true,
        )
    } else {
        (format!("{base}/{}", rt.plural), false)
    };
    let sref = schema_name(rt);
    let list_ref = format!("{sref}List");
    let body = json!({"content": content(&sref, &["*/*"]), "required": true});
    let patch_body = json!({"content": {
        "application/apply-patch+yaml": {"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}},
        "application/json-patch+json": {"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}},
        "application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}
    }, "required": true});
    let mut collection = Map::new();
    if rt.verbs.contains(&"list") {
        collection.insert(
            "get".into(),
            op(
                "list",
                op_id("list", rt, namespaced, ""),
                rt,
                list_params(),
                None,
                &list_ref,
            ),
        );
    }
    if rt.verbs.contains(&"create") {
        collection.insert(
            "post".into(),
            op(
                "post",
                op_id("create", rt, namespaced, ""),
                rt,
                write_params(),
                Some(body.clone()),
                &sref,
            ),
        );
    }
    if rt.verbs.contains(&"deletecollection") {
        collection.insert(
            "delete".into(),
            op(
                "deletecollection",
                op_id("deleteCollection", rt, namespaced, ""),
                rt,
                list_params(),
                None,
                "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
            ),
        );
    }
    let mut path_params = vec![];
    if namespaced {
        path_params.push(ns_param());
    }
    collection.insert("parameters".into(), json!(path_params.clone()));
    paths.insert(coll.clone(), Value::Object(collection));
    if rt.virtual_only {
        return;
    }
    let mut item = Map::new();
    item.insert(
        "get".into(),
        op(
            "get",
            op_id("read", rt, namespaced, ""),
            rt,
            vec![],
            None,
            &sref,
        ),
    );
    item.insert(
        "put".into(),
        op(
            "put",
            op_id("replace", rt, namespaced, ""),
            rt,
            write_params(),
            Some(body.clone()),
            &sref,
        ),
    );
    let mut pp = write_params();
    pp.push(qp(
        "force",
        "boolean",
        "Force is going to \"force\" Apply requests.",
    ));
    item.insert(
        "patch".into(),
        op(
            "patch",
            op_id("patch", rt, namespaced, ""),
            rt,
            pp,
            Some(patch_body.clone()),
            &sref,
        ),
    );
    item.insert(
        "delete".into(),
        op(
            "delete",
            op_id("delete", rt, namespaced, ""),
            rt,
            vec![
                qp(
                    "gracePeriodSeconds",
                    "integer",
                    "The duration in seconds before the object should be deleted.",
                ),
                qp(
                    "propagationPolicy",
                    "string",
                    "Whether and how garbage collection will be performed.",
                ),
            ],
            None,
            &sref,
        ),
    );
    let mut item_params = vec![name_param(rt.kind)];
    item_params.extend(path_params.iter().cloned());
    item.insert("parameters".into(), json!(item_params.clone()));
    paths.insert(format!("{coll}/{{name}}"), Value::Object(item));
    for sub in rt.subresources {
        let mut m = Map::new();
        let suffix = match sub.name {
            "status" => "Status",
            "approval" => "Approval",
            "binding" => "Binding",
            "eviction" => "Eviction",
            "log" => "Log",
            _ => "",
        };
        match sub.name {
            "status" | "approval" => {
                m.insert(
                    "get".into(),
                    op(
                        "get",
                        op_id("read", rt, namespaced, suffix),
                        rt,
                        vec![],
                        None,
                        &sref,
                    ),
                );
                m.insert(
                    "put".into(),
                    op(
                        "put",
                        op_id("replace", rt, namespaced, suffix),
                        rt,
                        write_params(),
                        Some(body.clone()),
                        &sref,
                    ),
                );
                // Subresource PATCH operations carry the parent GVK like kube-apiserver's.
                let mut p = op(
                    "patch",
                    op_id("patch", rt, namespaced, suffix),
                    rt,
                    write_params(),
                    Some(patch_body.clone()),
                    &sref,
                );
                p["x-kubernetes-group-version-kind"] = gvk(rt);
                m.insert("patch".into(), p);
            }
            "binding" => {
                let mut o = op(
                    "post",
                    op_id("create", rt, namespaced, suffix),
                    rt,
                    write_params(),
                    Some(
                        json!({"content": content("io.k8s.api.core.v1.Binding", &["*/*"]), "required": true}),
                    ),
                    "io.k8s.api.core.v1.Binding",
                );
                o["x-kubernetes-group-version-kind"] =
                    json!({"group": "", "version": "v1", "kind": "Binding"});
                m.insert("post".into(), o);
            }
            "eviction" => {
                let mut o = op(
                    "post",
                    op_id("create", rt, namespaced, suffix),
                    rt,
                    write_params(),
                    Some(
                        json!({"content": content("io.k8s.api.policy.v1.Eviction", &["*/*"]), "required": true}),
                    ),
                    "io.k8s.api.policy.v1.Eviction",
                );
                o["x-kubernetes-group-version-kind"] =
                    json!({"group": "policy", "version": "v1", "kind": "Eviction"});
                m.insert("post".into(), o);
            }
            "log" => {
                let mut params = vec![];
                for p in [
                    "container",
                    "follow",
                    "insecureSkipTLSVerifyBackend",
                    "limitBytes",
                    "previous",
                    "sinceSeconds",
                    "sinceTime",
                    "tailLines",
                    "timestamps",
                ] {
                    params.push(qp(p, "string", p));
                }
                let mut o = op(
                    "get",
                    op_id("read", rt, namespaced, suffix),
                    rt,
                    params,
                    None,
                    &sref,
                );
                o["responses"]["200"]["content"] =
                    json!({"text/plain": {"schema": {"type": "string"}}});
                m.insert("get".into(), o);
            }
            _ => {}
        }
        m.insert("parameters".into(), json!(item_params.clone()));
        paths.insert(format!("{coll}/{{name}}/{}", sub.name), Value::Object(m));
    }
    if namespaced {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            op(
                "list",
                op_id("list", rt, false, "ForAllNamespaces"),
                rt,
                list_params(),
                None,
                &list_ref,
            ),
        );
        paths.insert(format!("{base}/{}", rt.plural), Value::Object(all));
    }
}

fn schemas_for(group: &str, version: &str) -> Map<String, Value> {
    let mut s = Map::new();
    for rt in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        let name = schema_name(rt);
        s.insert(name.clone(), json!({
            "description": format!("{} ({}).", rt.kind, rt.api_version()),
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
            },
            "x-kubernetes-group-version-kind": [gvk(rt)]
        }));
        s.insert(format!("{name}List"), json!({
            "type": "object",
            "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}},
                "metadata": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}},
            "x-kubernetes-group-version-kind": [{"group": rt.group, "version": rt.version, "kind": rt.list_kind()}]
        }));
    }
    if group.is_empty() {
        s.insert("io.k8s.api.core.v1.Binding".into(), json!({"type": "object",
            "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Binding"}]}));
    }
    s.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        json!({"type": "object"}),
    );
    s.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta".into(),
        json!({"type": "object"}),
    );
    s.insert("io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(), json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}));
    s.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
        json!({"type": "object",
        "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Status"}]}),
    );
    s
}

/// The OpenAPI 3.0 document of one group-version.
pub fn group_version(group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let mut any = false;
    for rt in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        any = true;
        paths_for(rt, &mut paths);
    }
    if !any {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas_for(group, version),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}}},
        "security": [{"BearerToken": []}]
    }))
}

/// The Swagger 2.0 document (JSON) of all group-versions.
pub fn v2() -> Value {
    let mut paths = Map::new();
    let mut defs = Map::new();
    let mut gvs: Vec<&str> = vec![""];
    gvs.extend(resources::groups());
    for g in gvs {
        if let Some(doc) = group_version(g, "v1") {
            if let Some(p) = doc.get("paths").and_then(Value::as_object) {
                for (k, v) in p {
                    // Swagger 2 operations: drop OpenAPI 3 request bodies and schemas in params.
                    let mut v = v.clone();
                    if let Some(ops) = v.as_object_mut() {
                        for (_, o) in ops.iter_mut() {
                            if let Some(o) = o.as_object_mut() {
                                o.remove("requestBody");
                                o.insert("responses".into(), json!({"200": {"description": "OK"}}));
                            }
                        }
                    }
                    paths.insert(k.clone(), v);
                }
            }
            if let Some(s) = doc
                .pointer("/components/schemas")
                .and_then(Value::as_object)
            {
                for (k, v) in s {
                    let v = serde_json::from_str::<Value>(
                        &v.to_string()
                            .replace("#/components/schemas/", "#/definitions/"),
                    )
                    .unwrap_or_else(|_| v.clone());
                    defs.insert(k.clone(), v);
                }
            }
        }
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": GIT_VERSION}, "paths": paths, "definitions": defs})
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// Serves `/openapi/...` (segments after `openapi`).
pub fn serve(rest: &[&str], accept: &str) -> ApiResult<hyper::Response<Body>> {
    match rest {
        ["v3"] => Ok(json_response(200, &index())),
        ["v3", "api", v] => group_version("", v)
            .map(|d| json_response(200, &d))
            .ok_or_else(not_found),
        ["v3", "apis", g, v] => group_version(g, v)
            .map(|d| json_response(200, &d))
            .ok_or_else(not_found),
        ["v2"] => {
            let json_ok = accept.is_empty()
                || accept.split(',').any(|a| {
                    let a = a.trim();
                    a.starts_with("application/json") || a.starts_with("*/*")
                });
            if !json_ok {
                return Err(ApiError::new(
                    406,
                    "NotAcceptable",
                    "only application/json is served for /openapi/v2 by this emulator",
                ));
            }
            Ok(json_response(200, &v2()))
        }
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_patch_operations_advertise_field_validation() {
        let doc = group_version("", "v1").unwrap_or_default();
        let p = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            p["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|x| x["name"] == "fieldValidation"))
        );
        assert!(index()["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"].is_string());
    }
}
