//! The differences between the emulator and kube-apiserver that the differential check
//! accepts, each with the reason we keep it (too expensive or inherent). The list is in
//! the same order, with the same words, as the section "Differences found by the
//! differential check" of `hil-tests/README.md` (a unit test holds the two together).
//!
//! A pattern matches a rendered [`Difference`] (`step | path: emulator=... real=...`);
//! `*` matches any run of characters, everything else itself.

use super::Difference;

/// One accepted difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDifference {
    /// What differs, in a few words.
    pub what: &'static str,
    /// Matches the rendered differences it covers.
    pub pattern: &'static str,
    /// Why the emulator keeps it.
    pub reason: &'static str,
}

impl KnownDifference {
    /// The README line for this difference.
    pub fn readme_line(&self) -> String {
        format!("- {}: {}", self.what, self.reason)
    }

    /// Whether this entry covers `d`.
    pub fn matches(&self, d: &Difference) -> bool {
        glob(self.pattern, &d.to_string())
    }
}

/// The accepted differences (see `hil-tests/README.md`).
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[
    KnownDifference {
        what: "no EndpointSlices (`kubectl get endpointslices`)",
        pattern: "get endpointslices -l kubernetes.io/service-name=web | *",
        reason: "the emulator serves no discovery.k8s.io group and runs no EndpointSlice or \
                 Endpoints controller (kubelet-independent controllers are out of scope; \
                 without a kubelet no pod has an IP to list)",
    },
    KnownDifference {
        what: "`kubectl describe service` shows `Endpoints: <none>`",
        pattern: "describe service web | stdout line *: emulator=\"Endpoints:  <none>\" \
                  real=\"Endpoints:\"",
        reason: "the same: there are no EndpointSlices for kubectl to read (the real cluster \
                 has an empty one)",
    },
    KnownDifference {
        what: "no RBAC on the emulator's own requests and no impersonation (`kubectl auth can-i --as=...`)",
        pattern: "auth can-i create pods --as=system:serviceaccount:diff:sensor | *",
        reason: "every authenticated request is allowed, SelfSubjectAccessReviews are always \
                 allowed and `Impersonate-*` headers are ignored, so the answer is `yes` where \
                 RBAC says `no`; RBAC answers SubjectAccessReviews only (what the gateway's \
                 kubelet API asks), and the rest is tested against the real control plane",
    },
    KnownDifference {
        what: "`managedFields` of updates lack the `\".\"` entries of maps they create",
        pattern: "* | stdout *.metadata.managedFields[*].fieldsV1*",
        reason: "structured-merge-diff marks a map or list item an update creates (not only \
                 its leaves) using the Go types' schemas; the emulator derives field sets from \
                 the JSON without them (see Known differences: server-side apply)",
    },
];

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The outcome of checking differences against a list.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Differences no entry covers.
    pub unexpected: Vec<Difference>,
    /// Entries that covered no difference (the emulator changed, or the session did).
    pub stale: Vec<KnownDifference>,
    /// Covered differences, with the entry that covers each.
    pub explained: Vec<(Difference, KnownDifference)>,
}

impl Verdict {
    /// No unexpected difference and no stale entry.
    pub fn passed(&self) -> bool {
        self.unexpected.is_empty() && self.stale.is_empty()
    }

    /// A report for a failing test.
    pub fn report(&self) -> String {
        let mut out = String::new();
        if !self.unexpected.is_empty() {
            out.push_str(&format!(
                "{} difference(s) between the emulator and kube-apiserver that are not known \
                 (fix the emulator, or list them in differential/known_differences.rs and \
                 hil-tests/README.md):\n",
                self.unexpected.len()
            ));
            for d in &self.unexpected {
                out.push_str(&format!("  {d}\n"));
            }
        }
        if !self.stale.is_empty() {
            out.push_str(&format!(
                "{} known difference(s) no longer occur (remove them from the list and the \
                 README):\n",
                self.stale.len()
            ));
            for k in &self.stale {
                out.push_str(&format!("  {} ({})\n", k.what, k.pattern));
            }
        }
        out
    }
}

/// Sorts `diffs` into those `known` covers and those it does not, and finds entries of
/// `known` that cover nothing.
pub fn check(diffs: &[Difference], known: &[KnownDifference]) -> Verdict {
    let mut v = Verdict::default();
    let mut used = vec![false; known.len()];
    for d in diffs {
        match known.iter().position(|k| k.matches(d)) {
            Some(i) => {
                used[i] = true;
                v.explained.push((d.clone(), known[i]));
            }
            None => v.unexpected.push(d.clone()),
        }
    }
    v.stale = known
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(k, _)| *k)
        .collect();
    v
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn glob_matches_runs() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(glob(
            "get * | stdout .x*",
            "get pod -o json | stdout .x.y: 1"
        ));
        assert!(!glob("a*c", "abd"));
        assert!(!glob("abc", "abcd"));
    }

    #[test]
    fn unknown_and_stale_entries_fail() {
        let d = |p: &str| Difference {
            step: "s".into(),
            path: p.into(),
            emulator: "1".into(),
            real: "2".into(),
        };
        let known = [
            KnownDifference {
                what: "x",
                pattern: "s | stdout .x*",
                reason: "r",
            },
            KnownDifference {
                what: "gone",
                pattern: "s | stdout .gone*",
                reason: "r",
            },
        ];
        let v = check(&[d("stdout .x.y"), d("stdout .z")], &known);
        assert_eq!(v.unexpected, [d("stdout .z")]);
        assert_eq!(v.stale, [known[1]]);
        assert_eq!(v.explained.len(), 1);
        assert!(!v.passed());
    }

    /// The README section lists the same differences in the same order.
    #[test]
    fn readme_lists_the_known_differences_in_order() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("## Differences found by the differential check")
            .nth(1)
            .expect("README.md has the section \"Differences found by the differential check\"");
        let section = section.split("\n## ").next().unwrap_or(section);
        let lines: Vec<&str> = section.lines().filter(|l| l.starts_with("- ")).collect();
        let want: Vec<String> = KNOWN_DIFFERENCES
            .iter()
            .map(KnownDifference::readme_line)
            .collect();
        assert_eq!(lines, want);
    }
}
