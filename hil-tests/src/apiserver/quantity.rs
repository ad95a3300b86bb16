//! Kubernetes resource quantities (`100m`, `128Mi`, `1G`, `2`, `1e3`) as numbers.

/// Parses a quantity to its value in base units (cores, bytes, counts).
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    const SUFFIXES: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("Ei", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (s, mult) in SUFFIXES {
        if let Some(num) = q.strip_suffix(s) {
            return num.parse::<f64>().ok().map(|n| n * mult);
        }
    }
    q.parse::<f64>().ok()
}

/// A quantity JSON value (string or number) in base units.
pub fn from_json(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::String(s) => parse(s),
        serde_json::Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse("100m"), Some(0.1));
        assert_eq!(parse("128Mi"), Some(134_217_728.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("abc"), None);
    }
}
