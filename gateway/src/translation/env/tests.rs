use super::*;

proptest::proptest! {
    #[test]
    fn expansion_never_panics(s in "\\PC{0,60}") {
        let lookup = |n: &str| (n == "A").then(|| "ä".to_owned());
        let _ = expand(&s, &lookup);
    }
}

#[test]
fn expansion_follows_kubernetes_rules() {
    let lookup = |n: &str| match n {
        "A" => Some("1".to_owned()),
        "B" => Some("two".to_owned()),
        _ => None,
    };
    assert_eq!(expand("$(A)-$(B)", &lookup), "1-two");
    assert_eq!(expand("$$(A)", &lookup), "$(A)");
    assert_eq!(expand("$(C)", &lookup), "$(C)");
    assert_eq!(expand("$(A", &lookup), "$(A");
    assert_eq!(expand("ä$(A)$", &lookup), "ä1$");
    assert_eq!(expand("$x", &lookup), "$x");
}
