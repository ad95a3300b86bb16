//! Label selectors in the string form `kubectl -l` takes (pure): `k=v`, `k==v`, `k!=v`,
//! `k in (a,b)`, `k notin (a,b)`, `k` and `!k`, joined by commas; empty selects all.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{selector:?} is not a label selector ({why}); write e.g. `ring=canary,arch!=arm`")]
pub struct SelectorError {
    selector: String,
    why: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    text: String,
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 316
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
}

fn is_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Splits at commas outside parentheses.
fn terms(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let err = |why| SelectorError {
            selector: s.to_owned(),
            why,
        };
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self::default());
        }
        for term in terms(s) {
            let term = term.trim();
            let requirement = if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, rest)) = term.split_once(" notin ") {
                Requirement::NotIn(k.trim().to_owned(), set(rest).ok_or(err("bad set"))?)
            } else if let Some((k, rest)) = term.split_once(" in ") {
                Requirement::In(k.trim().to_owned(), set(rest).ok_or(err("bad set"))?)
            } else if let Some(k) = term.strip_prefix('!') {
                Requirement::NotExists(k.trim().to_owned())
            } else {
                Requirement::Exists(term.to_owned())
            };
            let ok = match &requirement {
                Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => {
                    is_key(k) && is_value(v)
                }
                Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
                    is_key(k) && vs.iter().all(|v| is_value(v))
                }
                Requirement::Exists(k) | Requirement::NotExists(k) => is_key(k),
            };
            if !ok {
                return Err(err("a key or value has characters labels cannot have"));
            }
            requirements.push(requirement);
        }
        Ok(Self {
            requirements,
            text: s.trim().to_owned(),
        })
    }

    /// Whether Node labels `labels` match.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => !labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }

    /// The selector as written (empty: everything).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn set(rest: &str) -> Option<Vec<String>> {
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    (!values.iter().any(String::is_empty)).then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_form_kubectl_takes_selects_as_kubernetes_does() {
        let node = labels(&[("ring", "canary"), ("kubernetes.io/arch", "arm64")]);
        for (selector, expected) in [
            ("", true),
            ("ring=canary", true),
            ("ring==canary", true),
            ("ring!=canary", false),
            ("ring=stable", false),
            ("ring in (canary, beta)", true),
            ("ring notin (canary)", false),
            ("ring notin (stable)", true),
            ("ring", true),
            ("!ring", false),
            ("!site", true),
            ("ring=canary,kubernetes.io/arch=arm64", true),
            ("ring=canary,kubernetes.io/arch=amd64", false),
            ("site!=x", true),
        ] {
            let s = LabelSelector::parse(selector).unwrap();
            assert_eq!(s.matches(&node), expected, "{selector}");
        }
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in ["ring in canary", "ring=(x)", "a b", "ring in ()", "k=v v"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }
}
