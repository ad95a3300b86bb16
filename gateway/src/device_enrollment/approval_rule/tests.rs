use super::*;

fn rule(s: &str) -> ApprovalRule {
    s.parse().unwrap()
}

#[test]
fn rules_parse_and_refuse_garbage() {
    assert_eq!(
        rule("abcdef=pi-*"),
        ApprovalRule {
            token_id: "abcdef".into(),
            id_pattern: "pi-*".into()
        }
    );
    assert_eq!(rule("*=*").token_id, "*");
    for bad in [
        "abcdef",
        "ABCDEF=pi-*",
        "abc=pi-*",
        "abcdef=",
        "abcdef=Pi_*",
        "abcdef=pi/*",
    ] {
        assert!(bad.parse::<ApprovalRule>().is_err(), "{bad}");
    }
}

#[test]
fn a_rule_matches_its_token_and_id_pattern_only() {
    let r = rule("abcdef=pi-*");
    assert!(r.matches("abcdef", "pi-10000000abcdef01"));
    assert!(r.matches("abcdef", "pi-"));
    assert!(!r.matches("abcdeg", "pi-1"));
    assert!(!r.matches("abcdef", "jetson-1"));
    assert!(!r.matches("abcdef", "xpi-1"));
    let exact = rule("abcdef=pi-1");
    assert!(exact.matches("abcdef", "pi-1"));
    assert!(!exact.matches("abcdef", "pi-10"));
    let middle = rule("*=site-*-pi-*");
    assert!(middle.matches("zzzzzz", "site-a-pi-7"));
    assert!(!middle.matches("zzzzzz", "site-a-jetson-7"));
    assert!(
        !rule("abcdef=pi-*-x").matches("abcdef", "pi-x"),
        "pieces may not overlap"
    );
}

#[test]
fn the_first_matching_rule_is_reported() {
    let rules = vec![rule("abcdef=pi-*"), rule("*=jetson-*")];
    assert_eq!(auto_approved(&rules, "abcdef", "pi-1"), Some(&rules[0]));
    assert_eq!(auto_approved(&rules, "qqqqqq", "jetson-1"), Some(&rules[1]));
    assert_eq!(auto_approved(&rules, "qqqqqq", "pi-1"), None);
    assert_eq!(auto_approved(&[], "abcdef", "pi-1"), None);
}
