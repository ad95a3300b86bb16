use super::*;

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

const NOW: i64 = 1_800_000_000; // 2027-01-15

fn good() -> BTreeMap<String, Vec<u8>> {
    data(&[
        ("token-id", "abcdef"),
        ("token-secret", "0123456789abcdef"),
        ("expiration", "2030-01-01T00:00:00Z"),
        (USAGE_KEY, "true"),
    ])
}

#[test]
fn parse_accepts_only_the_kubelet_format() {
    let t = PresentedToken::parse("abcdef.0123456789abcdef").unwrap();
    assert_eq!(t.id, "abcdef");
    assert_eq!(t.secret_name(), "bootstrap-token-abcdef");
    assert!(!format!("{t:?}").contains("0123456789abcdef"));
    for bad in [
        "abcdef",
        "abcde.0123456789abcdef",
        "ABCDEF.0123456789abcdef",
        "abcdef.0123456789abcde",
        "abcdef.0123456789abcdef.x",
    ] {
        assert!(PresentedToken::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn a_valid_token_passes_and_each_defect_is_refused() {
    let t = PresentedToken::parse("abcdef.0123456789abcdef").unwrap();
    assert_eq!(
        check(&t, Some(SECRET_TYPE), &good(), NOW),
        TokenCheck::Valid
    );
    let mut no_expiry = good();
    no_expiry.remove("expiration");
    assert_eq!(
        check(&t, Some(SECRET_TYPE), &no_expiry, NOW),
        TokenCheck::Valid
    );

    assert!(matches!(
        check(&t, Some("Opaque"), &good(), NOW),
        TokenCheck::Invalid(_)
    ));
    let wrong = PresentedToken::parse("abcdef.0123456789abcdee").unwrap();
    assert!(matches!(
        check(&wrong, Some(SECRET_TYPE), &good(), NOW),
        TokenCheck::Invalid(_)
    ));
    let mut no_usage = good();
    no_usage.remove(USAGE_KEY);
    assert!(matches!(
        check(&t, Some(SECRET_TYPE), &no_usage, NOW),
        TokenCheck::Invalid(_)
    ));
    let mut expired = good();
    expired.insert("expiration".into(), b"2026-01-01T00:00:00Z".to_vec());
    assert_eq!(
        check(&t, Some(SECRET_TYPE), &expired, NOW),
        TokenCheck::Expired {
            expiration: "2026-01-01T00:00:00Z".into()
        }
    );
    let mut garbage = good();
    garbage.insert("expiration".into(), b"tomorrow".to_vec());
    assert!(matches!(
        check(&t, Some(SECRET_TYPE), &garbage, NOW),
        TokenCheck::Invalid(_)
    ));
}
