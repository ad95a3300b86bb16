//! What is expected to differ between two runs of the same kubectl session, blanked out:
//! uids, resourceVersions, timestamps (RFC 3339, kubectl's describe format, ages in tables),
//! certificate data, cluster IPs, and the random parts of generated names (pod-template-hash values,
//! `generateName` suffixes, `kube-api-access-xxxxx` volumes, event name suffixes).
//!
//! Everything else is kept, so that a difference in what a server returns shows.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Placeholder of a timestamp.
pub const TIME: &str = "<time>";
/// Placeholder of an age column (`5s`, `2m3s`).
pub const AGE: &str = "<age>";
/// Placeholder of a uid.
pub const UID: &str = "<uid>";
/// Placeholder of a resourceVersion.
pub const RESOURCE_VERSION: &str = "<rv>";
/// Placeholder of a pod-template-hash.
pub const HASH: &str = "<hash>";
/// Placeholder of a random name suffix.
pub const RANDOM: &str = "<rand>";
/// Placeholder of an IPv4 address (other than loopback).
pub const IP: &str = "<ip>";
/// Placeholder of PEM data.
pub const PEM: &str = "<pem>";

/// Name prefixes followed by a random 5-character suffix (after hashes are replaced).
const RANDOM_SUFFIX_AFTER: &[&str] = &["<hash>-", "kube-api-access-"];

/// The generated values one server made up, learnt from its JSON outputs.
#[derive(Debug, Default, Clone)]
pub struct GeneratedNames {
    hashes: BTreeSet<String>,
}

impl GeneratedNames {
    /// Learns the pod-template-hash values (label values anywhere in `v`).
    pub fn learn(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if k == "pod-template-hash"
                        && let Some(h) = child.as_str()
                        && h.len() >= 4
                    {
                        self.hashes.insert(h.to_owned());
                    }
                    self.learn(child);
                }
            }
            Value::Array(a) => a.iter().for_each(|c| self.learn(c)),
            _ => {}
        }
    }

    /// `s` with every learnt value replaced by its placeholder.
    pub fn apply(&self, s: &str) -> String {
        let mut out = s.to_owned();
        for h in &self.hashes {
            if out.contains(h.as_str()) {
                out = out.replace(h.as_str(), HASH);
            }
        }
        out
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Length of an RFC 3339 timestamp at the start of `s` (`2024-01-01T00:00:00Z`, with
/// optional fraction and `Z` or a numeric offset), if there is one.
fn rfc3339_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    for (i, want) in shape.iter().enumerate() {
        let ok = match want {
            b'd' => b[i].is_ascii_digit(),
            c => b[i] == *c,
        };
        if !ok {
            return None;
        }
    }
    let mut i = shape.len();
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    match b.get(i) {
        Some(b'Z') => Some(i + 1),
        Some(b'+' | b'-') if b.len() >= i + 6 && b[i + 3] == b':' => Some(i + 6),
        _ => None,
    }
}

/// Length of a dotted IPv4 address at the start of `s`, if there is one (not followed
/// by another digit or dot).
fn ipv4_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    for part in 0..4 {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            i += 1;
        }
        if i == start || s[start..i].parse::<u16>().ok()? > 255 {
            return None;
        }
        if part < 3 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    b.get(i)
        .is_none_or(|c| !c.is_ascii_digit() && *c != b'.')
        .then_some(i)
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit() && !b.is_ascii_uppercase(),
        })
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Replaces, after each `marker`, a following run of exactly `len` lowercase
/// alphanumerics (ending at a non-alphanumeric or the end) by `placeholder`.
fn replace_suffix_after(s: &str, marker: &str, len: usize, placeholder: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find(marker) {
        let after = pos + marker.len();
        out.push_str(&rest[..after]);
        let tail = &rest[after..];
        let run = tail
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            .count();
        if run == len {
            out.push_str(placeholder);
            rest = &tail[len..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces event name suffixes: `.` followed by exactly 16 lowercase hex digits (the
/// recorder's `UnixNano` in hex) at a word end.
fn replace_event_suffixes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] == b'.' {
            let run = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
                .count();
            let end = i + 1 + run;
            if run == 16 && b.get(end).is_none_or(|c| !is_word_byte(*c)) {
                out.push_str(&s[copied..=i]);
                out.push_str("<id>");
                i = end;
                copied = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    out
}

/// Replaces RFC 3339 timestamps, uuids and IPv4 addresses other than loopback ones
/// (cluster IPs come from each cluster's own service range) anywhere in `s`.
fn replace_embedded(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let boundary = i == 0 || !is_word_byte(s.as_bytes()[i - 1]);
        if boundary && let Some(n) = rfc3339_len(rest) {
            out.push_str(TIME);
            i += n;
            continue;
        }
        if boundary
            && (i == 0 || s.as_bytes()[i - 1] != b'.')
            && let Some(n) = ipv4_len(rest)
        {
            if rest.starts_with("127.") {
                out.push_str(&rest[..n]);
            } else {
                out.push_str(IP);
            }
            i += n;
            continue;
        }
        if boundary
            && rest.len() >= 36
            && rest.is_char_boundary(36)
            && is_uuid(&rest[..36])
            && rest.as_bytes().get(36).is_none_or(|c| !is_word_byte(*c))
        {
            out.push_str(UID);
            i += 36;
            continue;
        }
        let ch = rest.chars().next().map_or(1, char::len_utf8);
        out.push_str(&rest[..ch]);
        i += ch;
    }
    out
}

/// A string value as it compares: placeholders for volatile content.
pub fn normalize_str(s: &str, names: &GeneratedNames) -> String {
    if rfc3339_len(s) == Some(s.len()) {
        return TIME.to_owned();
    }
    if s.starts_with("-----BEGIN ") {
        return PEM.to_owned();
    }
    let mut out = names.apply(s);
    for marker in RANDOM_SUFFIX_AFTER {
        out = replace_suffix_after(&out, marker, 5, RANDOM);
    }
    replace_embedded(&replace_event_suffixes(&out))
}

/// The order of normalized list items: by identity first (namespace, name, and for events
/// reason and message), so that one differing field does not reorder the list.
fn item_order(item: &Value) -> (String, String, String, String, String) {
    let s = |p: &str| {
        item.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (
        s("/metadata/namespace"),
        s("/metadata/name"),
        s("/reason"),
        s("/message"),
        item.to_string(),
    )
}

/// A JSON document as it compares: volatile values replaced by placeholders, list
/// `items` sorted (their order follows generated names).
pub fn normalize_json(v: &Value, names: &GeneratedNames) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                let nv = match (k.as_str(), child) {
                    ("resourceVersion", Value::String(_)) => Value::String(RESOURCE_VERSION.into()),
                    ("items", Value::Array(items)) => {
                        let mut items: Vec<Value> =
                            items.iter().map(|i| normalize_json(i, names)).collect();
                        items.sort_by_cached_key(item_order);
                        Value::Array(items)
                    }
                    _ => normalize_json(child, names),
                };
                out.insert(k.clone(), nv);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|c| normalize_json(c, names)).collect()),
        Value::String(s) => Value::String(normalize_str(s, names)),
        other => other.clone(),
    }
}

/// Ages as kubectl prints them for the first minutes (`45s`, `2m5s`), and `<invalid>`
/// (a time slightly in the future).
fn is_age(word: &str) -> bool {
    if word == "<invalid>" {
        return true;
    }
    let Some(body) = word.strip_suffix('s') else {
        return false;
    };
    match body.split_once('m') {
        Some((m, s)) => all_digits(m) && all_digits(s),
        None => all_digits(body),
    }
}

const WEEKDAYS: &[&str] = &["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];

/// kubectl describe's `Mon, 02 Jan 2006 15:04:05 -0700` as six words starting at `w[0]`.
fn is_describe_time(w: &[&str]) -> bool {
    w.len() >= 6
        && WEEKDAYS.contains(&w[0])
        && all_digits(w[1])
        && w[2].len() == 3
        && all_digits(w[3])
        && w[4].len() == 8
        && w[4].bytes().filter(|b| *b == b':').count() == 2
        && (w[5].starts_with('+') || w[5].starts_with('-'))
        && all_digits(&w[5][1..])
}

/// One line of text output as it compares: placeholders as in [`normalize_str`], ages and
/// describe times replaced, column padding (two or more spaces) reduced to two spaces,
/// trailing spaces dropped. Leading indentation is kept.
pub fn normalize_line(line: &str, names: &GeneratedNames) -> String {
    let line = normalize_str(line, names);
    let indent = line.len() - line.trim_start().len();
    let (lead, body) = line.split_at(indent);
    // Cells are separated by 2+ spaces; words inside a cell by one.
    let cells: Vec<String> = body
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|cell| {
            let words: Vec<&str> = cell.split(' ').collect();
            let mut out: Vec<String> = Vec::with_capacity(words.len());
            let mut i = 0;
            while i < words.len() {
                if is_describe_time(&words[i..]) {
                    out.push(TIME.to_owned());
                    i += 6;
                    continue;
                }
                let w = words[i];
                let core = w.trim_end_matches([')', ',']);
                if is_age(core) {
                    out.push(format!("{AGE}{}", &w[core.len()..]));
                } else {
                    out.push(w.to_owned());
                }
                i += 1;
            }
            out.join(" ")
        })
        .collect();
    format!("{lead}{}", cells.join("  "))
}

/// Text output as normalized lines (see [`normalize_line`]).
pub fn normalize_text(text: &str, names: &GeneratedNames) -> Vec<String> {
    text.lines().map(|l| normalize_line(l, names)).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn names() -> GeneratedNames {
        let mut n = GeneratedNames::default();
        n.learn(&json!({"metadata": {"labels": {"pod-template-hash": "7c9d998dd4"}}}));
        n
    }

    #[test]
    fn strings_lose_volatile_parts() {
        let n = names();
        assert_eq!(normalize_str("2026-11-28T06:22:12Z", &n), TIME);
        assert_eq!(normalize_str("2026-11-28T06:22:12.154227Z", &n), TIME);
        assert_eq!(
            normalize_str("58107eb7-4c76-4d69-ab8b-b08d7f0e2fcd", &n),
            UID
        );
        assert_eq!(
            normalize_str("web-7c9d998dd4-7p877", &n),
            "web-<hash>-<rand>"
        );
        assert_eq!(
            normalize_str("Successfully assigned diff/web-7c9d998dd4-klcb8 to n1", &n),
            "Successfully assigned diff/web-<hash>-<rand> to n1"
        );
        assert_eq!(
            normalize_str("kube-api-access-24lcw", &n),
            "kube-api-access-<rand>"
        );
        assert_eq!(normalize_str("sensor.18ec21451e075161", &n), "sensor.<id>");
        assert_eq!(normalize_str("-----BEGIN CERTIFICATE-----\nx", &n), PEM);
        assert_eq!(normalize_str("10.0.0.130", &n), IP);
        assert_eq!(
            normalize_str("IP: 10.96.0.2, 127.0.0.2", &n),
            "IP: <ip>, 127.0.0.2"
        );
        assert_eq!(normalize_str("6.6.31 (arm64)", &n), "6.6.31 (arm64)");
        assert_eq!(normalize_str("1.2.3.4.5", &n), "1.2.3.4.5");
        // Not volatile: kept.
        assert_eq!(normalize_str("web-abcde", &n), "web-abcde");
        assert_eq!(normalize_str("v1.37.2", &n), "v1.37.2");
    }

    #[test]
    fn json_items_are_sorted_and_versions_blanked() {
        let n = names();
        let v = json!({"items": [{"metadata": {"name": "b", "resourceVersion": "9"}},
            {"metadata": {"name": "a", "resourceVersion": "3", "uid": "58107eb7-4c76-4d69-ab8b-b08d7f0e2fcd"}}]});
        assert_eq!(
            normalize_json(&v, &n),
            json!({"items": [{"metadata": {"name": "a", "resourceVersion": RESOURCE_VERSION, "uid": UID}},
                {"metadata": {"name": "b", "resourceVersion": RESOURCE_VERSION}}]})
        );
    }

    #[test]
    fn lines_lose_ages_times_and_padding() {
        let n = names();
        assert_eq!(
            normalize_line(
                "web-7c9d998dd4-7p877   0/1     Pending   0          10s   <none>",
                &n
            ),
            "web-<hash>-<rand>  0/1  Pending  0  <age>  <none>"
        );
        assert_eq!(
            normalize_line("CreationTimestamp:  Sat, 28 Nov 2026 06:22:11 +0000", &n),
            "CreationTimestamp:  <time>"
        );
        assert_eq!(
            normalize_line(
                "  Normal  Scheduled  2m5s (x2 over 3m1s)  default-scheduler",
                &n
            ),
            "  Normal  Scheduled  <age> (x2 over <age>)  default-scheduler"
        );
        // CPU quantities are not ages.
        assert_eq!(
            normalize_line("  cpu                250m (6%)  100m (2%)", &n),
            "  cpu  250m (6%)  100m (2%)"
        );
    }
}
