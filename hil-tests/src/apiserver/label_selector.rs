//! `metav1.LabelSelector` objects (`matchLabels` + `matchExpressions`) as the workload
//! controllers use them: matching a label map, and the string form (`a=b,c in (d)`).

use serde_json::Value;

fn label<'a>(labels: &'a Value, key: &str) -> Option<&'a str> {
    labels.get(key).and_then(Value::as_str)
}

/// Whether `labels` (a JSON object, or null) match `selector`. As in
/// `metav1.LabelSelectorAsSelector`, an empty selector matches everything and a null
/// selector nothing.
pub fn matches(selector: &Value, labels: &Value) -> bool {
    if selector.is_null() {
        return false;
    }
    let ml_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|ml| ml.iter().all(|(k, v)| label(labels, k) == v.as_str()));
    let exprs = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    ml_ok
        && exprs.iter().all(|e| {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let v = label(labels, key);
            match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => v.is_some_and(|v| values.contains(&v)),
                "NotIn" => v.is_none_or(|v| !values.contains(&v)),
                "Exists" => v.is_some(),
                "DoesNotExist" => v.is_none(),
                _ => false,
            }
        })
}

/// The selector in label-selector string syntax (what `Scale.status.selector` carries).
pub fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(ml) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            parts.push(format!("{k}={}", v.as_str().unwrap_or("")));
        }
    }
    if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut values = values;
            values.sort_unstable();
            let vs = values.join(",");
            parts.push(
                match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                    "In" => format!("{key} in ({vs})"),
                    "NotIn" => format!("{key} notin ({vs})"),
                    "Exists" => key.to_string(),
                    _ => format!("!{key}"),
                },
            );
        }
    }
    parts.sort();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn match_labels_and_expressions() {
        let sel = json!({"matchLabels":{"app":"a"},"matchExpressions":[{"key":"tier","operator":"In","values":["x","y"]}]});
        assert!(matches(&sel, &json!({"app":"a","tier":"y"})));
        assert!(!matches(&sel, &json!({"app":"a"})));
        assert!(matches(&json!({}), &json!({"x":"1"})));
        assert!(!matches(&Value::Null, &json!({"x":"1"})));
        assert_eq!(selector_string(&sel), "app=a,tier in (x,y)");
    }
}
