//! Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`)
//! for the kinds kubectl's typed clients write: ConfigMap, Secret, Namespace,
//! ServiceAccount, CertificateSigningRequest (create, and `kubectl certificate approve`),
//! TokenRequest (`kubectl create token`), SelfSubjectAccessReview (`kubectl auth can-i`).
//! The envelope is the `k8s\0` magic and a `runtime.Unknown`; the object is decoded with
//! the field numbers of `k8s.io/api`'s `generated.proto`, into the JSON form the rest of
//! the emulator works on. Empty values are dropped, as JSON's `omitempty` would.

use base64::Engine;
use serde_json::{Map, Value};

use super::clock;
use super::errors::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static [Field]),
    MapStrStr,
    MapStrBytes,
    MapStrList,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
    }
}

const fn r(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: true,
    }
}

const OWNER_REF: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(9, "deletionTimestamp", Ty::Time),
    f(10, "deletionGracePeriodSeconds", Ty::Int),
    f(11, "labels", Ty::MapStrStr),
    f(12, "annotations", Ty::MapStrStr),
    r(13, "ownerReferences", Ty::Msg(OWNER_REF)),
    r(14, "finalizers", Ty::Str),
];

const OBJECT_REFERENCE: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(2, "namespace", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "fieldPath", Ty::Str),
];

const LOCAL_REF: &[Field] = &[f(1, "name", Ty::Str)];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStrStr),
    f(3, "binaryData", Ty::MapStrBytes),
    f(4, "immutable", Ty::Bool),
];

const SECRET: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStrBytes),
    f(3, "type", Ty::Str),
    f(4, "stringData", Ty::MapStrStr),
    f(5, "immutable", Ty::Bool),
];

const NAMESPACE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(&[r(1, "finalizers", Ty::Str)])),
    f(3, "status", Ty::Msg(&[f(1, "phase", Ty::Str)])),
];

const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    r(2, "secrets", Ty::Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Ty::Msg(LOCAL_REF)),
    f(4, "automountServiceAccountToken", Ty::Bool),
];

const CSR_CONDITION: &[Field] = &[
    f(1, "type", Ty::Str),
    f(6, "status", Ty::Str),
    f(2, "reason", Ty::Str),
    f(3, "message", Ty::Str),
    f(4, "lastUpdateTime", Ty::Time),
    f(5, "lastTransitionTime", Ty::Time),
];

const CSR: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Ty::Msg(&[
            f(1, "request", Ty::Bytes),
            f(2, "username", Ty::Str),
            f(3, "uid", Ty::Str),
            r(4, "groups", Ty::Str),
            r(5, "usages", Ty::Str),
            f(6, "extra", Ty::MapStrList),
            f(7, "signerName", Ty::Str),
            f(8, "expirationSeconds", Ty::Int),
        ]),
    ),
    f(
        3,
        "status",
        Ty::Msg(&[
            r(1, "conditions", Ty::Msg(CSR_CONDITION)),
            f(2, "certificate", Ty::Bytes),
        ]),
    ),
];

const TOKEN_REQUEST: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Ty::Msg(&[
            r(1, "audiences", Ty::Str),
            f(
                3,
                "boundObjectRef",
                Ty::Msg(&[
                    f(1, "kind", Ty::Str),
                    f(2, "apiVersion", Ty::Str),
                    f(3, "name", Ty::Str),
                    f(4, "uid", Ty::Str),
                ]),
            ),
            f(4, "expirationSeconds", Ty::Int),
        ]),
    ),
];

const RESOURCE_ATTRIBUTES: &[Field] = &[
    f(1, "namespace", Ty::Str),
    f(2, "verb", Ty::Str),
    f(3, "group", Ty::Str),
    f(4, "version", Ty::Str),
    f(5, "resource", Ty::Str),
    f(6, "subresource", Ty::Str),
    f(7, "name", Ty::Str),
];

const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(
        2,
        "spec",
        Ty::Msg(&[
            f(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
            f(
                2,
                "nonResourceAttributes",
                Ty::Msg(&[f(1, "path", Ty::Str), f(2, "verb", Ty::Str)]),
            ),
        ]),
    ),
];

const UNKNOWN: &[Field] = &[
    f(
        1,
        "typeMeta",
        Ty::Msg(&[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)]),
    ),
    f(2, "raw", Ty::Bytes),
    f(3, "contentEncoding", Ty::Str),
    f(4, "contentType", Ty::Str),
];

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!("error decoding protobuf request body: {what}"))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> ApiResult<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }

    fn bytes(&mut self) -> ApiResult<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("truncated field"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u64) -> ApiResult<()> {
        match wire {
            0 => {
                self.varint()?;
            }
            1 => self.pos += 8,
            2 => {
                self.bytes()?;
            }
            5 => self.pos += 4,
            _ => return Err(bad("unsupported wire type")),
        }
        if self.pos > self.buf.len() {
            return Err(bad("truncated field"));
        }
        Ok(())
    }
}

fn utf8(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| bad("string is not UTF-8"))
}

fn map_entry(b: &[u8]) -> ApiResult<(String, Vec<u8>)> {
    let mut rd = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (String::new(), Vec::new());
    while rd.pos < rd.buf.len() {
        let tag = rd.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 2) => k = utf8(rd.bytes()?)?,
            (2, 2) => v = rd.bytes()?.to_vec(),
            (_, w) => rd.skip(w)?,
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> ApiResult<Option<String>> {
    let m = message(b, &[f(1, "seconds", Ty::Int), f(2, "nanos", Ty::Int)])?;
    let secs = m.get("seconds").and_then(Value::as_i64).unwrap_or(0);
    if secs == 0 {
        return Ok(None);
    }
    let ts = jiff::Timestamp::from_second(secs).map_err(|e| bad(&e.to_string()))?;
    Ok(Some(clock::format_time(ts)))
}

fn message(b: &[u8], fields: &[Field]) -> ApiResult<Map<String, Value>> {
    let mut out = Map::new();
    let mut rd = Reader { buf: b, pos: 0 };
    while rd.pos < rd.buf.len() {
        let tag = rd.varint()?;
        let (num, wire) = (tag >> 3, tag & 7);
        let Some(field) = fields.iter().find(|x| x.num == num) else {
            rd.skip(wire)?;
            continue;
        };
        let value: Option<Value> = match (field.ty, wire) {
            (Ty::Int, 0) => {
                Some(Value::from(rd.varint()? as i64)).filter(|v| v.as_i64() != Some(0))
            }
            (Ty::Bool, 0) => {
                Some(Value::Bool(rd.varint()? != 0)).filter(|v| v.as_bool() == Some(true))
            }
            (Ty::Str, 2) => {
                Some(Value::String(utf8(rd.bytes()?)?)).filter(|v| v.as_str() != Some(""))
            }
            (Ty::Bytes, 2) => {
                let raw = rd.bytes()?;
                (!raw.is_empty())
                    .then(|| Value::String(base64::engine::general_purpose::STANDARD.encode(raw)))
            }
            (Ty::Time, 2) => time(rd.bytes()?)?.map(Value::String),
            (Ty::Msg(sub), 2) => Some(Value::Object(message(rd.bytes()?, sub)?)),
            (Ty::MapStrStr | Ty::MapStrBytes | Ty::MapStrList, 2) => {
                let (k, v) = map_entry(rd.bytes()?)?;
                let v = match field.ty {
                    Ty::MapStrStr => Value::String(utf8(&v)?),
                    Ty::MapStrBytes => {
                        Value::String(base64::engine::general_purpose::STANDARD.encode(&v))
                    }
                    _ => Value::Array(
                        message(&v, &[r(1, "items", Ty::Str)])?
                            .remove("items")
                            .and_then(|x| x.as_array().cloned())
                            .unwrap_or_default(),
                    ),
                };
                let entry = out
                    .entry(field.name.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(m) = entry.as_object_mut() {
                    m.insert(k, v);
                }
                continue;
            }
            (_, w) => {
                rd.skip(w)?;
                continue;
            }
        };
        if field.repeated {
            let entry = out
                .entry(field.name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let (Some(a), Some(v)) = (
                entry.as_array_mut(),
                value.or(Some(Value::String(String::new()))),
            ) {
                a.push(v);
            }
        } else if let Some(v) = value {
            out.insert(field.name.to_string(), v);
        }
    }
    Ok(out)
}

/// Whether a body is a Kubernetes protobuf envelope.
pub fn is_protobuf(content_type: &str, body: &[u8]) -> bool {
    content_type.starts_with("application/vnd.kubernetes.protobuf") || body.starts_with(b"k8s\0")
}

/// Decodes a protobuf request body into the object's JSON form.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let inner = body
        .strip_prefix(b"k8s\0")
        .ok_or_else(|| bad("missing k8s magic"))?;
    let unknown = message(inner, UNKNOWN)?;
    let api_version = unknown.pointer_str("/typeMeta/apiVersion");
    let kind = unknown.pointer_str("/typeMeta/kind");
    let raw_b64 = unknown.get("raw").and_then(Value::as_str).unwrap_or("");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(raw_b64)
        .map_err(|_| bad("raw"))?;
    let schema = match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => CSR,
        ("authentication.k8s.io/v1", "TokenRequest") => TOKEN_REQUEST,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => SELF_SUBJECT_ACCESS_REVIEW,
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            &[f(1, "metadata", Ty::Msg(OBJECT_META))]
        }
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the emulator decodes protobuf only for ConfigMap, Secret, Namespace, ServiceAccount, CertificateSigningRequest, TokenRequest, SelfSubjectAccessReview and SelfSubjectReview (got {api_version} {kind}); send JSON"
                ),
            ));
        }
    };
    let mut obj = message(&raw, schema)?;
    obj.insert("apiVersion".into(), Value::String(api_version));
    obj.insert("kind".into(), Value::String(kind));
    Ok(Value::Object(obj))
}

trait PointerStr {
    fn pointer_str(&self, p: &str) -> String;
}

impl PointerStr for Map<String, Value> {
    fn pointer_str(&self, p: &str) -> String {
        Value::Object(self.clone())
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tag(num: u64, wire: u64) -> u8 {
        ((num << 3) | wire) as u8
    }

    fn ld(num: u64, b: &[u8]) -> Vec<u8> {
        let mut v = vec![tag(num, 2), b.len() as u8];
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [
            ld(1, b"cm"),
            ld(3, b"default"),
            ld(11, &[ld(1, b"app"), ld(2, b"x")].concat()),
        ]
        .concat();
        let cm = [ld(1, &meta), ld(2, &[ld(1, b"k"), ld(2, b"v")].concat())].concat();
        let unknown = [
            ld(1, &[ld(1, b"v1"), ld(2, b"ConfigMap")].concat()),
            ld(2, &cm),
        ]
        .concat();
        let body = [b"k8s\0".to_vec(), unknown].concat();
        let v = decode(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "default", "labels": {"app": "x"}}, "data": {"k": "v"}})
        );
    }
}
