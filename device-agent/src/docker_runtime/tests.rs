#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn image_names() {
    assert_eq!(normalize_image("busybox"), "busybox:latest");
    assert_eq!(
        normalize_image("127.0.0.1:5000/bb"),
        "127.0.0.1:5000/bb:latest"
    );
    assert_eq!(
        normalize_image("127.0.0.1:5000/bb:1"),
        "127.0.0.1:5000/bb:1"
    );
    assert_eq!(normalize_image("a@sha256:00"), "a@sha256:00");
}

#[test]
fn credentials_match_registries() {
    assert!(credential_matches("127.0.0.1:5000/bb:1", "127.0.0.1:5000"));
    assert!(credential_matches("busybox", "https://index.docker.io/v1/"));
    assert!(!credential_matches("busybox", "ghcr.io"));
    assert!(credential_matches("ghcr.io/x/y", "ghcr.io"));
}

#[test]
fn times() {
    assert_eq!(parse_time("0001-01-01T00:00:00Z"), None);
    assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1500));
}
