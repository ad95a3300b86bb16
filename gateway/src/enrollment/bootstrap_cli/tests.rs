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

#[test]
fn the_bootstrap_directory_pins_the_fleets_update_key_when_there_is_one() {
    let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAArn4eqbeSBsS2iD4oZmH0ZnFgM0ln3VY2RLr2Um80z8=\n-----END PUBLIC KEY-----\n";
    let store = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let args = |out: &str| BootstrapFileArgs {
        store: StoreDirArg {
            store_dir: store.path().to_owned(),
        },
        out_dir: work.path().join(out),
        token: new_token(),
        bootstrap_broker_url: "mqtts://gw:8884".into(),
        broker_urls: Vec::new(),
        device_id_template: "edge-{serial}".into(),
        identity_dir: "/var/lib/edge-agent/identity".into(),
        bootstrap_cert_valid_days: 30,
    };
    let mut said = Vec::new();
    bootstrap_file(&args("without"), &mut said).unwrap();
    assert!(!work.path().join("without/ota-signing.pub").exists());

    let layout = EnrollmentLayout::new(store.path());
    std::fs::write(layout.root().join("ota-signing.pub"), public).unwrap();
    let mut said = Vec::new();
    bootstrap_file(&args("with"), &mut said).unwrap();
    assert_eq!(
        std::fs::read_to_string(work.path().join("with/ota-signing.pub")).unwrap(),
        public
    );
    assert!(String::from_utf8(said).unwrap().contains("ota-signing.pub"));
}
