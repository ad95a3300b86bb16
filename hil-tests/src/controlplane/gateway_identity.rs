//! The gateway's own identity on the real control plane: exactly the Namespace,
//! ServiceAccount, ClusterRole, ClusterRoleBinding, Role and RoleBinding of the shipped kustomize base
//! (`deploy/kustomize/base`), and a kubeconfig with a token for that ServiceAccount from
//! the TokenRequest API. Real RBAC then proves the role is enough: a call it does not
//! allow is a 403 in the gateway's log.

use std::path::{Path, PathBuf};

use crate::stack::{StackError, StackResult};

/// Namespace and name of the gateway's ServiceAccount (as in deploy/kustomize/base).
pub const GATEWAY_NAMESPACE: &str = "edge-system";
pub const GATEWAY_SERVICE_ACCOUNT: &str = "edge-gateway";

const IDENTITY_KINDS: [&str; 6] = [
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

fn kustomize_base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kustomize/base")
}

/// Keeps the documents of a multi-document YAML stream whose top-level kind is one of
/// the identity kinds.
pub fn identity_documents(rendered: &str) -> String {
    rendered
        .split("\n---\n")
        .filter(|doc| {
            doc.lines()
                .filter_map(|l| l.strip_prefix("kind: "))
                .any(|k| IDENTITY_KINDS.contains(&k.trim()))
        })
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Renders the kustomize base with `kubectl` and writes the identity documents to
/// `<dir>/gateway-identity.yaml`, for `kubectl apply -f`.
pub fn write_identity_manifest(kubectl: &Path, dir: &Path) -> StackResult<PathBuf> {
    let base = kustomize_base();
    let out = std::process::Command::new(kubectl)
        .arg("kustomize")
        .arg(&base)
        .output()
        .map_err(|e| StackError::Spawn {
            program: kubectl.display().to_string(),
            error: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(StackError::Other(format!(
            "kubectl kustomize {}: {}",
            base.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let docs = identity_documents(&String::from_utf8_lossy(&out.stdout));
    let found = IDENTITY_KINDS
        .iter()
        .filter(|k| {
            docs.contains(&format!("\nkind: {k}\n")) || docs.starts_with(&format!("kind: {k}\n"))
        })
        .count();
    if found != IDENTITY_KINDS.len() {
        return Err(StackError::Other(format!(
            "the kustomize base lacks one of {IDENTITY_KINDS:?}:\n{docs}"
        )));
    }
    let path = dir.join("gateway-identity.yaml");
    std::fs::write(&path, docs).map_err(|e| StackError::io(&path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_identity_kinds() {
        let rendered = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: c\n";
        let kept = identity_documents(rendered);
        assert!(kept.contains("kind: Namespace"));
        assert!(kept.contains("kind: ServiceAccount"));
        assert!(!kept.contains("ConfigMap"));
    }
}
