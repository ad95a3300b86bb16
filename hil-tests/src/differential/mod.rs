//! The differential check of the API server emulator against the real kube-apiserver:
//! the same scripted kubectl session runs against both (`tests/differential_kubectl.rs`)
//! and every step's outputs are compared here, field by field for JSON and YAML, line by
//! line for text, after [`normalize`] has blanked what is expected to differ between any
//! two clusters (uids, resourceVersions, timestamps, ages, generated name suffixes,
//! certificate data).
//!
//! Each remaining difference must be listed in [`known_differences`] (with the reason the
//! emulator does not do what kube-apiserver does); [`check`] reports differences that are
//! not listed and listed differences that no longer occur, so that the list stays true.
//!
//! | file | what is there |
//! |---|---|
//! | `normalize.rs` | placeholders for volatile values, text line normalization |
//! | `compare.rs` | JSON tree and line comparison |
//! | `known_differences.rs` | the differences we keep, each with its reason |

pub mod compare;
pub mod known_differences;
pub mod normalize;

use std::fmt;

use serde_json::Value;

use compare::FieldDifference;
use normalize::GeneratedNames;

pub use known_differences::{KNOWN_DIFFERENCES, KnownDifference, Verdict, check};

/// Errors comparing two transcripts.
#[derive(Debug, thiserror::Error)]
pub enum DifferentialError {
    /// The two transcripts do not have the same steps.
    #[error("the transcripts differ in their steps: {0}")]
    Steps(String),
    /// A step's output is not in the format the step declares.
    #[error("step {step:?} on {server}: {format:?} output does not parse: {error}")]
    Parse {
        step: String,
        server: String,
        format: Format,
        error: String,
    },
}

/// How a step's standard output is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Line by line (tables, describe, messages, logs).
    Text,
    /// One JSON document (`-o json`).
    Json,
    /// One YAML document (`-o yaml`).
    Yaml,
    /// One JSON document per line (`get -w -o json --output-watch-events`).
    JsonLines,
}

/// One kubectl invocation and what it printed.
#[derive(Debug, Clone)]
pub struct Step {
    /// Identifies the step in both transcripts (e.g. `get pod sensor -o json`).
    pub label: String,
    pub format: Format,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// One server's run of the session.
#[derive(Debug, Clone, Default)]
pub struct Transcript {
    /// `emulator` or `real`.
    pub server: String,
    pub steps: Vec<Step>,
}

impl Transcript {
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            steps: Vec::new(),
        }
    }

    /// The whole transcript as text (for keeping next to a failing test).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            out.push_str(&format!(
                "=== {} ({:?}, exit {:?})\n{}",
                s.label, s.format, s.exit_code, s.stdout
            ));
            if !s.stderr.is_empty() {
                out.push_str(&format!("--- stderr\n{}", s.stderr));
            }
            out.push('\n');
        }
        out
    }
}

/// A difference that remained after normalization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The step's label.
    pub step: String,
    /// `stdout .metadata.labels.x`, `stderr line 1`, `exit code`.
    pub path: String,
    pub emulator: String,
    pub real: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} | {}: emulator={} real={}",
            self.step, self.path, self.emulator, self.real
        )
    }
}

fn parse(step: &Step, server: &str) -> Result<Value, DifferentialError> {
    let err = |error: String| DifferentialError::Parse {
        step: step.label.clone(),
        server: server.to_owned(),
        format: step.format,
        error,
    };
    if step.stdout.trim().is_empty() {
        return Ok(Value::Null);
    }
    match step.format {
        Format::Text => Ok(Value::Null),
        Format::Json => serde_json::from_str(&step.stdout).map_err(|e| err(e.to_string())),
        Format::Yaml => crate::apiserver::patch::yaml_to_json(&step.stdout).map_err(err),
        Format::JsonLines => step
            .stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| err(e.to_string())))
            .collect::<Result<Vec<Value>, _>>()
            .map(Value::Array),
    }
}

/// The generated names a transcript's JSON and YAML outputs reveal.
fn learn_names(t: &Transcript) -> Result<GeneratedNames, DifferentialError> {
    let mut names = GeneratedNames::default();
    for s in &t.steps {
        names.learn(&parse(s, &t.server)?);
    }
    Ok(names)
}

/// Compares two runs of the same session step by step: exit codes, standard output
/// (per the step's format) and standard error (as text), after normalization.
pub fn compare_transcripts(
    emulator: &Transcript,
    real: &Transcript,
) -> Result<Vec<Difference>, DifferentialError> {
    let labels = |t: &Transcript| t.steps.iter().map(|s| s.label.clone()).collect::<Vec<_>>();
    if labels(emulator) != labels(real) {
        return Err(DifferentialError::Steps(format!(
            "{} has {:?}, {} has {:?}",
            emulator.server,
            labels(emulator),
            real.server,
            labels(real)
        )));
    }
    let (en, rn) = (learn_names(emulator)?, learn_names(real)?);
    let mut out = Vec::new();
    for (e, r) in emulator.steps.iter().zip(&real.steps) {
        let mut push = |where_: &str, d: FieldDifference| {
            out.push(Difference {
                step: e.label.clone(),
                path: format!("{where_}{}", d.path),
                emulator: d.emulator,
                real: d.real,
            });
        };
        if e.exit_code != r.exit_code {
            push(
                "",
                FieldDifference {
                    path: "exit code".into(),
                    emulator: format!("{:?}", e.exit_code),
                    real: format!("{:?}", r.exit_code),
                },
            );
        }
        if e.format == Format::Text {
            let (a, b) = (
                normalize::normalize_text(&e.stdout, &en),
                normalize::normalize_text(&r.stdout, &rn),
            );
            for d in compare::diff_lines(&a, &b) {
                push("stdout ", d);
            }
        } else {
            let a = normalize::normalize_json(&parse(e, &emulator.server)?, &en);
            let b = normalize::normalize_json(&parse(r, &real.server)?, &rn);
            for d in compare::diff_json(&a, &b) {
                push("stdout ", d);
            }
        }
        let (a, b) = (
            normalize::normalize_text(&e.stderr, &en),
            normalize::normalize_text(&r.stderr, &rn),
        );
        for d in compare::diff_lines(&a, &b) {
            push("stderr ", d);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn step(label: &str, format: Format, stdout: &str) -> Step {
        Step {
            label: label.into(),
            format,
            exit_code: Some(0),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn differences_survive_normalization_and_volatile_values_do_not() {
        let mut e = Transcript::new("emulator");
        let mut r = Transcript::new("real");
        e.steps.push(step(
            "get",
            Format::Json,
            r#"{"metadata": {"uid": "58107eb7-4c76-4d69-ab8b-b08d7f0e2fcd", "resourceVersion": "3"}, "data": {"a": "1"}}"#,
        ));
        r.steps.push(step(
            "get",
            Format::Json,
            r#"{"metadata": {"uid": "0dd161a5-44c1-4e05-aa67-1d4de8b4dea5", "resourceVersion": "300"}, "data": {"a": "2"}}"#,
        ));
        e.steps
            .push(step("table", Format::Text, "NAME   AGE\nweb    5s\n"));
        r.steps.push(step(
            "table",
            Format::Text,
            "NAME   AGE\nweb    12s\nextra  1s\n",
        ));
        let d: Vec<String> = compare_transcripts(&e, &r)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            [
                "get | stdout .data.a: emulator=\"1\" real=\"2\"",
                "table | stdout line 3: emulator=<absent> real=\"extra  <age>\""
            ]
        );
    }

    #[test]
    fn steps_must_match() {
        let mut e = Transcript::new("emulator");
        e.steps.push(step("a", Format::Text, ""));
        let r = Transcript::new("real");
        assert!(matches!(
            compare_transcripts(&e, &r),
            Err(DifferentialError::Steps(_))
        ));
    }
}
