//! A pre-pull an operator declares: a ConfigMap labelled `edge-kube.io/image-prepull`
//! in the gateway's pre-pull namespace (pure parsing, with errors that say what to write
//! instead). Any number of them; a device holds the images of every one selecting it.
//!
//! ```yaml
//! metadata:
//!   name: app-2-1
//!   labels: {edge-kube.io/image-prepull: "true"}
//! data:
//!   images: |                   # one image reference per line (required)
//!     ghcr.io/acme/app:2.1
//!     docker.io/library/redis:7.2
//!   nodeSelector: "ring=canary" # which Nodes (label selector; default: every device Node)
//!   imagePullSecrets: "regcred" # Secrets (kubernetes.io/dockerconfigjson) in this namespace
//! ```

use std::collections::BTreeMap;

use edge_protocol::MAX_PREPULL_IMAGES;

use crate::device_nodes::selector::{LabelSelector, SelectorError};

/// The label that makes a ConfigMap a pre-pull (any value but `false`).
pub const PREPULL_LABEL: &str = "edge-kube.io/image-prepull";

/// Longest image reference accepted (a registry host, a path and a digest fit easily).
pub const MAX_IMAGE_REFERENCE: usize = 512;

/// What one pre-pull ConfigMap asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepullSpec {
    /// Image references as written, each once, in the order written.
    pub images: Vec<String>,
    pub selector: LabelSelector,
    /// Names of pull Secrets in the ConfigMap's namespace.
    pub pull_secrets: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("data.images is missing or empty: list the image references to pull, one per line")]
    NoImages,
    #[error(
        "data.images names {0} images; at most {MAX_PREPULL_IMAGES} fit a device's pre-pull \
         set: split the list or drop images the devices already run"
    )]
    TooManyImages(usize),
    #[error(
        "data.images: {0:?} is not an image reference (letters, digits and . _ - / : @, at \
         most {MAX_IMAGE_REFERENCE} characters, e.g. ghcr.io/acme/app:2.1)"
    )]
    BadImage(String),
    #[error("data.imagePullSecrets: {0:?} is not a Secret name")]
    BadSecretName(String),
    #[error("data.nodeSelector: {0}")]
    Selector(#[from] SelectorError),
}

fn valid_reference(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= MAX_IMAGE_REFERENCE
        && !image.starts_with(['-', '/', ':', '@', '.'])
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// Words of a list written one per line, or separated by commas or spaces.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
}

impl PrepullSpec {
    pub fn parse(data: &BTreeMap<String, String>) -> Result<Self, SpecError> {
        let mut images: Vec<String> = Vec::new();
        for image in words(data.get("images").map(String::as_str).unwrap_or("")) {
            if !valid_reference(image) {
                return Err(SpecError::BadImage(image.to_owned()));
            }
            if !images.iter().any(|i| i == image) {
                images.push(image.to_owned());
            }
        }
        if images.is_empty() {
            return Err(SpecError::NoImages);
        }
        if images.len() > MAX_PREPULL_IMAGES {
            return Err(SpecError::TooManyImages(images.len()));
        }
        let selector = LabelSelector::parse(
            data.get("nodeSelector")
                .map(String::as_str)
                .unwrap_or("")
                .trim(),
        )?;
        let mut pull_secrets = Vec::new();
        for name in words(
            data.get("imagePullSecrets")
                .map(String::as_str)
                .unwrap_or(""),
        ) {
            if !valid_secret_name(name) {
                return Err(SpecError::BadSecretName(name.to_owned()));
            }
            pull_secrets.push(name.to_owned());
        }
        Ok(Self {
            images,
            selector,
            pull_secrets,
        })
    }
}

#[cfg(test)]
mod tests;
