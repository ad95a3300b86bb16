//! Samples of the Prometheus text exposition format (what `/metrics` and a kubelet's
//! `/metrics/resource` serve), parsed for the test bed: the emulator's metrics API reads
//! resource metrics with it, tests and benchmarks read the gateway's `/metrics`.
//! Comments (`# HELP`, `# TYPE`) are skipped; a line that is not a sample is an error.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} value [timestamp_ms]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// Milliseconds since the Unix epoch, when the line carries one.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, or "".
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// A line that is neither a comment nor a sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: not a Prometheus sample ({reason}): {text:?}")]
pub struct ParseError {
    pub line: usize,
    pub reason: &'static str,
    pub text: String,
}

/// Every sample of `text`, in order.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |reason| ParseError {
            line: i + 1,
            reason,
            text: raw.to_owned(),
        };
        let (name, labels, rest) = match line.find(['{', ' ']) {
            Some(at) if line.as_bytes()[at] == b'{' => {
                let (labels, rest) = parse_labels(&line[at + 1..]).ok_or_else(|| fail("labels"))?;
                (&line[..at], labels, rest)
            }
            Some(at) => (&line[..at], BTreeMap::new(), &line[at..]),
            None => return Err(fail("no value")),
        };
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| fail("value"))?;
        let timestamp_ms = match fields.next() {
            Some(t) => Some(t.parse().map_err(|_| fail("timestamp"))?),
            None => None,
        };
        if name.is_empty() || fields.next().is_some() {
            return Err(fail("shape"));
        }
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value,
            timestamp_ms,
        });
    }
    Ok(out)
}

/// The sum of every sample named `name` (0 when there is none): a gauge or counter over
/// all its label sets.
pub fn sum(samples: &[Sample], name: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// `a="x",b="y"} rest` → the labels and `rest`.
fn parse_labels(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after_eq) = rest.split_once('=')?;
        let quoted = after_eq.trim_start().strip_prefix('"')?;
        let (value, after_value) = unescape_until_quote(quoted)?;
        labels.insert(name.trim().to_owned(), value);
        rest = after_value.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

/// A label value up to its closing quote (`\\`, `\"` and `\n` unescaped), and what follows
/// the quote.
fn unescape_until_quote(s: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests;
