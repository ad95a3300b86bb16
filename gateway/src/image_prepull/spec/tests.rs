use super::*;

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn images_one_per_line_each_once_in_order_with_selector_and_secrets() {
    let spec = PrepullSpec::parse(&data(&[
        (
            "images",
            "ghcr.io/acme/app:2.1\n  docker.io/library/redis:7.2\nghcr.io/acme/app:2.1\n",
        ),
        ("nodeSelector", "ring=canary"),
        ("imagePullSecrets", "regcred, other"),
    ]))
    .unwrap();
    assert_eq!(
        spec.images,
        ["ghcr.io/acme/app:2.1", "docker.io/library/redis:7.2"]
    );
    assert_eq!(spec.selector.as_str(), "ring=canary");
    assert_eq!(spec.pull_secrets, ["regcred", "other"]);
}

#[test]
fn a_digest_reference_is_an_image() {
    let digest = format!("ghcr.io/acme/app@sha256:{}", "a".repeat(64));
    let spec = PrepullSpec::parse(&data(&[("images", &digest)])).unwrap();
    assert_eq!(spec.images, [digest]);
    assert!(spec.selector.as_str().is_empty());
}

#[test]
fn bad_lists_say_what_to_write() {
    assert_eq!(PrepullSpec::parse(&data(&[])), Err(SpecError::NoImages));
    assert_eq!(
        PrepullSpec::parse(&data(&[("images", " \n ")])),
        Err(SpecError::NoImages)
    );
    assert_eq!(
        PrepullSpec::parse(&data(&[("images", "app:1 $(reboot)")])),
        Err(SpecError::BadImage("$(reboot)".into()))
    );
    assert_eq!(
        PrepullSpec::parse(&data(&[("images", "-rf")])),
        Err(SpecError::BadImage("-rf".into()))
    );
    let many: Vec<String> = (0..=MAX_PREPULL_IMAGES)
        .map(|i| format!("img{i}:1"))
        .collect();
    assert_eq!(
        PrepullSpec::parse(&data(&[("images", &many.join("\n"))])),
        Err(SpecError::TooManyImages(MAX_PREPULL_IMAGES + 1))
    );
    assert_eq!(
        PrepullSpec::parse(&data(&[
            ("images", "a:1"),
            ("imagePullSecrets", "Reg_Cred")
        ])),
        Err(SpecError::BadSecretName("Reg_Cred".into()))
    );
    assert!(matches!(
        PrepullSpec::parse(&data(&[("images", "a:1"), ("nodeSelector", "a=b=c=")])),
        Err(SpecError::Selector(_))
    ));
    let message = PrepullSpec::parse(&data(&[])).unwrap_err().to_string();
    assert!(message.contains("one per line"), "{message}");
}
