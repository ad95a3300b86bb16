use super::*;
use crate::device_enrollment::bootstrap_token::{PresentedToken, TokenCheck, check};

#[test]
fn new_tokens_have_the_kubelet_format_and_differ() {
    let a = new_token();
    let b = new_token();
    assert!(PresentedToken::parse(&a).is_some(), "{a}");
    assert_ne!(a, b);
}

#[test]
fn the_manifest_is_a_secret_the_gateway_accepts_until_it_expires() {
    let args = BootstrapTokenArgs {
        ttl: Duration::from_secs(3600),
        namespace: "edge-kube-system".into(),
        description: "lab".into(),
    };
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let token = "abcdef.0123456789abcdef";
    let yaml = token_manifest(token, &args, now);
    assert!(yaml.contains("name: bootstrap-token-abcdef\n"), "{yaml}");
    assert!(
        yaml.contains("type: edge-kube.io/bootstrap-token\n"),
        "{yaml}"
    );
    // read back what the Secret would hold, and check it as the gateway does
    let data: std::collections::BTreeMap<String, Vec<u8>> = yaml
        .lines()
        .skip_while(|l| *l != "stringData:")
        .skip(1)
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').as_bytes().to_vec()))
        .collect();
    let presented = PresentedToken::parse(token).unwrap();
    assert_eq!(
        check(&presented, Some(SECRET_TYPE), &data, now.as_second()),
        TokenCheck::Valid
    );
    assert!(matches!(
        check(&presented, Some(SECRET_TYPE), &data, now.as_second() + 3601),
        TokenCheck::Expired { .. }
    ));
    let forever = token_manifest(
        token,
        &BootstrapTokenArgs {
            ttl: Duration::ZERO,
            ..args
        },
        now,
    );
    assert!(!forever.contains("expiration"), "{forever}");
}
