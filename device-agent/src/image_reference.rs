//! Image references as the agent handles them, pure: the tag a bare name pulls, and
//! which of a set's registry credentials a pull of an image uses (pods and pre-pulls
//! pick them the same way, [`credential_for`]).

use edge_protocol::RegistryCredential;

/// Adds `:latest` when an image reference has neither tag nor digest (otherwise the
/// Engine API pulls every tag).
pub fn normalize_image(image: &str) -> String {
    if image.contains('@') {
        return image.to_owned();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// Whether a credential's registry serves this image (`127.0.0.1:5000/x` → `127.0.0.1:5000`;
/// no registry part means Docker Hub).
pub fn credential_matches(image: &str, registry: &str) -> bool {
    let registry = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let registry = registry.strip_suffix("/v1").unwrap_or(registry);
    let first = image.split('/').next().unwrap_or("");
    let image_registry = if image.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        first
    } else {
        "docker.io"
    };
    let hub = |r: &str| matches!(r, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    registry == image_registry || (hub(registry) && hub(image_registry))
}

/// The credential a pull of `image` uses: the first whose registry serves it.
pub fn credential_for<'a>(
    image: &str,
    credentials: &'a [RegistryCredential],
) -> Option<&'a RegistryCredential> {
    credentials
        .iter()
        .find(|c| credential_matches(image, &c.registry))
}
