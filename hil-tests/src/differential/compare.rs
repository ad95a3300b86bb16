//! Field-by-field comparison of normalized JSON trees and line-by-line comparison of
//! normalized text.

use serde_json::Value;

/// Longest rendering of a value in a difference.
const MAX_VALUE_LEN: usize = 160;

/// A value as a difference shows it: compact JSON, shortened, or `<absent>`.
pub fn render(v: Option<&Value>) -> String {
    match v {
        None => "<absent>".to_owned(),
        Some(v) => shorten(&v.to_string()),
    }
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_LEN {
        return s.to_owned();
    }
    let cut: String = s.chars().take(MAX_VALUE_LEN).collect();
    format!("{cut}...")
}

/// A path segment for an object key: `.key`, or `["key"]` when the key has characters
/// that would make the path ambiguous.
fn key_segment(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        format!(".{k}")
    } else {
        format!("[{k:?}]")
    }
}

/// One field that differs: its path, and each side's value rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDifference {
    pub path: String,
    pub emulator: String,
    pub real: String,
}

/// Every leaf where `emulator` and `real` differ (objects key by key, arrays index by
/// index; a whole subtree present on one side only is one difference).
pub fn diff_json(emulator: &Value, real: &Value) -> Vec<FieldDifference> {
    let mut out = Vec::new();
    walk(String::new(), Some(emulator), Some(real), &mut out);
    out
}

fn walk(path: String, e: Option<&Value>, r: Option<&Value>, out: &mut Vec<FieldDifference>) {
    match (e, r) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                walk(format!("{path}{}", key_segment(k)), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldDifference {
            path: if path.is_empty() { ".".into() } else { path },
            emulator: render(a),
            real: render(b),
        }),
    }
}

/// Lines that differ, from a longest-common-subsequence alignment: a run of removed and
/// added lines pairs up as changed lines; the rest are missing on one side. Paths are
/// `line N` with N counted in the real output (1-based; for a line only the emulator
/// has, the real line it would precede).
pub fn diff_lines(emulator: &[String], real: &[String]) -> Vec<FieldDifference> {
    let (n, m) = (emulator.len(), real.len());
    // lcs[i][j]: length of the LCS of emulator[i..] and real[j..].
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if emulator[i] == real[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    let mut removed: Vec<&String> = Vec::new();
    let mut added: Vec<(usize, &String)> = Vec::new();
    let flush = |removed: &mut Vec<&String>,
                 added: &mut Vec<(usize, &String)>,
                 at: usize,
                 out: &mut Vec<FieldDifference>| {
        for k in 0..removed.len().max(added.len()) {
            let line = added.get(k).map_or(at + 1, |(l, _)| *l + 1);
            out.push(FieldDifference {
                path: format!("line {line}"),
                emulator: removed
                    .get(k)
                    .map_or("<absent>".into(), |s| shorten(&format!("{s:?}"))),
                real: added
                    .get(k)
                    .map_or("<absent>".into(), |(_, s)| shorten(&format!("{s:?}"))),
            });
        }
        removed.clear();
        added.clear();
    };
    while i < n || j < m {
        if i < n && j < m && emulator[i] == real[j] {
            flush(&mut removed, &mut added, j, &mut out);
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            added.push((j, &real[j]));
            j += 1;
        } else {
            removed.push(&emulator[i]);
            i += 1;
        }
    }
    flush(&mut removed, &mut added, j, &mut out);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn json_differences_name_the_field() {
        let e = json!({"metadata": {"labels": {"a": "1"}}, "spec": {"x": [1, 2]}});
        let r = json!({"metadata": {"labels": {"a": "1", "beta.kubernetes.io/os": "linux"}}, "spec": {"x": [1, 3, 4]}});
        let d = diff_json(&e, &r);
        let shown: Vec<String> = d
            .iter()
            .map(|d| format!("{}: {} {}", d.path, d.emulator, d.real))
            .collect();
        assert_eq!(
            shown,
            [
                ".metadata.labels[\"beta.kubernetes.io/os\"]: <absent> \"linux\"",
                ".spec.x[1]: 2 3",
                ".spec.x[2]: <absent> 4"
            ]
        );
    }

    #[test]
    fn line_differences_pair_changes_and_keep_common_lines() {
        let l = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let d = diff_lines(&l(&["a", "b", "c", "e"]), &l(&["a", "B", "c", "d", "e"]));
        let shown: Vec<String> = d
            .iter()
            .map(|d| format!("{}: {} {}", d.path, d.emulator, d.real))
            .collect();
        assert_eq!(shown, ["line 2: \"b\" \"B\"", "line 4: <absent> \"d\""]);
        assert!(diff_lines(&l(&["x"]), &l(&["x"])).is_empty());
    }
}
