//! The kubeconfig files the test bed writes (the emulator's, and the real control plane's
//! admin and gateway ones); kubectl and kube-rs use them unchanged.

use std::path::Path;

use base64::Engine;

/// Name of the cluster, user and context in the emulator's kubeconfig.
pub const CONTEXT_NAME: &str = "edge-hil";

/// How a kubeconfig's user authenticates.
#[derive(Debug, Clone, Copy)]
pub enum KubeconfigUser<'a> {
    /// A bearer token.
    Token(&'a str),
    /// A client certificate and its key (PEM).
    ClientCertificate { cert_pem: &'a str, key_pem: &'a str },
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// Renders a kubeconfig (YAML) named `context` for `server`, trusting `ca_pem`.
pub fn render_for(context: &str, server: &str, ca_pem: &str, user: KubeconfigUser<'_>) -> String {
    let ca = b64(ca_pem);
    let user = match user {
        KubeconfigUser::Token(token) => format!("    token: {token}"),
        KubeconfigUser::ClientCertificate { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}",
            b64(cert_pem),
            b64(key_pem)
        ),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {context}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {context}
  user:
{user}
contexts:
- name: {context}
  context:
    cluster: {context}
    user: {context}
    namespace: default
current-context: {context}
preferences: {{}}
"
    )
}

/// Renders the emulator's kubeconfig for `server` trusting `ca_pem` with bearer `token`.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    render_for(CONTEXT_NAME, server, ca_pem, KubeconfigUser::Token(token))
}

/// Writes a kubeconfig to `path` (mode 0600: it holds a credential).
pub fn write_for(
    path: &Path,
    context: &str,
    server: &str,
    ca_pem: &str,
    user: KubeconfigUser<'_>,
) -> std::io::Result<()> {
    std::fs::write(path, render_for(context, server, ca_pem, user))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Writes the emulator's kubeconfig to `path` (mode 0600).
pub fn write(path: &Path, server: &str, ca_pem: &str, token: &str) -> std::io::Result<()> {
    write_for(
        path,
        CONTEXT_NAME,
        server,
        ca_pem,
        KubeconfigUser::Token(token),
    )
}

/// Why no client could be made from a kubeconfig file.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigClientError {
    /// The file could not be read or understood.
    #[error("kubeconfig {path}: {source}")]
    Config {
        /// File.
        path: String,
        /// Cause.
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built from it.
    #[error("client from {path}: {source}")]
    Client {
        /// File.
        path: String,
        /// Cause.
        source: kube::Error,
    },
}

/// A kube-rs client from a kubeconfig file (its current context).
pub async fn client(path: &Path) -> Result<kube::Client, KubeconfigClientError> {
    let config_error = |source| KubeconfigClientError::Config {
        path: path.display().to_string(),
        source,
    };
    let raw = kube::config::Kubeconfig::read_from(path).map_err(config_error)?;
    let config = kube::Config::from_custom_kubeconfig(raw, &Default::default())
        .await
        .map_err(config_error)?;
    kube::Client::try_from(config).map_err(|source| KubeconfigClientError::Client {
        path: path.display().to_string(),
        source,
    })
}
