//! The fleet's agent-update signing key for tests, made and used with OpenSSL exactly as
//! docs/deploy.md ("Upgrade the agent") tells an operator: `genpkey`, `pkey -pubout`, and
//! `pkeyutl -sign -rawin` over the manifest of version and SHA-256.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// An ed25519 key pair in PEM files.
#[derive(Debug, Clone)]
pub struct FleetSigningKey {
    pub private: PathBuf,
    pub public: PathBuf,
}

/// Runs `cmd`; its stdout, or an error with both outputs.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl FleetSigningKey {
    /// A new key pair in `dir` (`ota-signing.key`, `ota-signing.pub`).
    pub fn generate(dir: &Path) -> Result<Self> {
        let private = dir.join("ota-signing.key");
        let public = dir.join("ota-signing.pub");
        run(Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&private))?;
        run(Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public))?;
        Ok(Self { private, public })
    }

    /// Signs `binary` as `version`; the signature file (`<binary>.sig`).
    pub fn sign(&self, binary: &Path, version: &str) -> Result<PathBuf> {
        let out = run(Command::new("sha256sum").arg(binary))?;
        let digest = out.split_whitespace().next().context("sha256sum output")?;
        let manifest = binary.with_extension("manifest");
        std::fs::write(&manifest, edge_protocol::signed_manifest(version, digest))?;
        let signature = binary.with_extension("sig");
        run(Command::new("openssl")
            .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
            .arg(&self.private)
            .arg("-in")
            .arg(&manifest)
            .arg("-out")
            .arg(&signature))?;
        Ok(signature)
    }
}
