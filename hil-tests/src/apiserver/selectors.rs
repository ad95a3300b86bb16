//! Label and field selectors, parsed and matched as kube-apiserver does.

use serde_json::Value;

use super::errors::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (`a=b,c!=d,e in (f,g),!h`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn valid_label_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

/// The values of `in`/`notin`, `(a, b)`, with the errors of apimachinery's label parser
/// (`parseValues`/`parseIdentifiersList`) for malformed sets.
fn parse_set(s: &str) -> Result<Vec<String>, String> {
    // Tokens as the label lexer sees them in a value list.
    let mut tokens: Vec<String> = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if c.is_whitespace() || "(),".contains(c) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut it = tokens.into_iter().peekable();
    match it.next() {
        Some(t) if t == "(" => {}
        other => {
            return Err(format!(
                "found '{}' expected: '('",
                other.unwrap_or_default()
            ));
        }
    }
    let is_ident = |t: &str| !"(),".contains(t);
    let mut out: Vec<String> = Vec::new();
    if it.peek().map(String::as_str) == Some(")") {
        it.next();
    } else {
        loop {
            match it.next() {
                Some(t) if is_ident(&t) => {
                    out.push(t);
                    match it.peek().map(String::as_str) {
                        Some(",") => {
                            it.next();
                        }
                        Some(")") => {
                            it.next();
                            break;
                        }
                        other => {
                            return Err(format!(
                                "found '{}', expected: ',' or ')'",
                                other.unwrap_or_default()
                            ));
                        }
                    }
                }
                Some(t) if t == "," => {}
                Some(t) if t == ")" => break,
                other => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        other.unwrap_or_default()
                    ));
                }
            }
        }
    }
    if let Some(t) = it.next() {
        return Err(format!("found '{t}', expected: ',' or 'end of string'"));
    }
    Ok(out)
}

impl LabelSelector {
    /// Parses a selector string; an empty string selects everything.
    pub fn parse(s: &str) -> ApiResult<Self> {
        let bad = |why: &str| ApiError::bad_request(format!("unable to parse requirement: {why}"));
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some(k) = part.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                LabelReq::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                LabelReq::Eq(k.trim().into(), v.trim().into())
            } else if let Some(idx) = part.find(" notin ") {
                let set = parse_set(&part[idx + 7..]).map_err(|e| bad(&e))?;
                LabelReq::NotIn(part[..idx].trim().into(), set)
            } else if let Some(idx) = part.find(" in ") {
                let set = parse_set(&part[idx + 4..]).map_err(|e| bad(&e))?;
                LabelReq::In(part[..idx].trim().into(), set)
            } else {
                LabelReq::Exists(part.trim().to_string())
            };
            let key = match &req {
                LabelReq::Eq(k, _)
                | LabelReq::NotEq(k, _)
                | LabelReq::In(k, _)
                | LabelReq::NotIn(k, _)
                | LabelReq::Exists(k)
                | LabelReq::NotExists(k) => k,
            };
            if !valid_label_key(key) {
                return Err(bad(&format!("invalid label key {key:?}")));
            }
            reqs.push(req);
        }
        Ok(Self(reqs))
    }

    /// Whether the selector is empty (matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector (`spec.nodeName=n1,status.phase!=Failed`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// The field labels kube-apiserver supports for a storage, besides metadata.name/namespace.
fn supported_fields(storage: &str) -> &'static [&'static str] {
    match storage {
        "pods" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "nodes" => &["spec.unschedulable"],
        "namespaces" => &["status.phase"],
        "secrets" => &["type"],
        "certificatesigningrequests" => &["spec.signerName"],
        _ => &[],
    }
}

fn field_value(storage: &str, obj: &Value, field: &str) -> String {
    let path = match (storage, field) {
        ("events", "source") => "/source/component".to_string(),
        _ => format!("/{}", field.replace('.', "/")),
    };
    match obj.pointer(&path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => match field {
            "spec.unschedulable" | "spec.hostNetwork" => "false".into(),
            _ => String::new(),
        },
    }
}

impl FieldSelector {
    /// Parses a field selector for a storage; unsupported fields are a 400 like kube-apiserver's.
    pub fn parse(storage: &str, s: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            if k != "metadata.name"
                && k != "metadata.namespace"
                && !supported_fields(storage).contains(&k)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            reqs.push((
                k.to_string(),
                eq,
                v.trim().replace("\\,", ",").replace("\\=", "="),
            ));
        }
        Ok(Self(reqs))
    }

    /// Whether the selector is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object matches.
    pub fn matches(&self, storage: &str, obj: &Value) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let actual = field_value(storage, obj, k);
            (actual == *v) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata":{"labels":{"app":"a","tier":"web"}}});
        for (sel, want) in [
            ("app=a", true),
            ("app==a,tier=web", true),
            ("app!=a", false),
            ("app in (a,b)", true),
            ("app notin (a)", false),
            ("tier", true),
            ("!tier", false),
            ("missing notin (x)", true),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
        assert!(LabelSelector::parse("a in b").is_err());
    }

    #[test]
    fn field_selectors() {
        let p = json!({"metadata":{"name":"p","namespace":"d"},"spec":{"nodeName":"n1"},"status":{"phase":"Running"}});
        let s = FieldSelector::parse("pods", "spec.nodeName=n1,status.phase!=Failed").unwrap();
        assert!(s.matches("pods", &p));
        let s = FieldSelector::parse("pods", "spec.nodeName=").unwrap();
        assert!(!s.matches("pods", &p));
        assert!(FieldSelector::parse("configmaps", "spec.nodeName=x").is_err());
    }
}
