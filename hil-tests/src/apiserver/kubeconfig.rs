//! The kubeconfig file the emulator writes on start; kubectl and kube-rs use it unchanged.

use std::path::Path;

use base64::Engine;

/// Name of the cluster, user and context in the kubeconfig.
pub const CONTEXT_NAME: &str = "edge-hil";

/// Renders a kubeconfig (YAML) for `server` trusting `ca_pem` with bearer `token`.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CONTEXT_NAME}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {CONTEXT_NAME}
  user:
    token: {token}
contexts:
- name: {CONTEXT_NAME}
  context:
    cluster: {CONTEXT_NAME}
    user: {CONTEXT_NAME}
    namespace: default
current-context: {CONTEXT_NAME}
preferences: {{}}
"
    )
}

/// Writes the kubeconfig to `path` (mode 0600: it holds a credential).
pub fn write(path: &Path, server: &str, ca_pem: &str, token: &str) -> std::io::Result<()> {
    std::fs::write(path, render(server, ca_pem, token))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
