use super::*;

fn key(uid: &str, audience: &str) -> TokenKey {
    TokenKey {
        pod_uid: uid.into(),
        spec: TokenSpec {
            audience: audience.into(),
            expiration_seconds: 3600,
        },
    }
}

fn token(issued_at: i64, lifetime: i64) -> IssuedToken {
    IssuedToken {
        token: "secret-jwt".into(),
        issued_at,
        expires_at: issued_at + lifetime,
    }
}

#[test]
fn a_token_is_due_at_80_percent_of_its_lifetime() {
    let t = token(1000, 3600);
    assert_eq!(t.refresh_at(), 1000 + 2880);
    assert!(t.is_fresh(1000));
    assert!(t.is_fresh(1000 + 2879));
    assert!(!t.is_fresh(1000 + 2880));
    let mut book = TokenBook::default();
    book.store(key("a", ""), t);
    book.store(key("b", "vault"), token(1000, 7200));
    assert!(book.due_pods(1000 + 2879).is_empty());
    assert_eq!(book.due_pods(1000 + 2880), ["a".to_owned()].into());
    assert_eq!(book.next_refresh(), Some(1000 + 2880));
    assert!(book.fresh(&key("a", ""), 1000 + 2880).is_none());
    assert!(book.fresh(&key("b", "vault"), 1000 + 2880).is_some());
}

#[test]
fn a_long_lived_token_is_replaced_after_24_hours() {
    // e.g. the API server's extended expiry of the default kube-api-access token (1 year)
    let t = token(0, 365 * 24 * 3600);
    assert_eq!(t.refresh_at(), 24 * 3600);
    assert!(!t.is_fresh(24 * 3600));
}

#[test]
fn an_expired_or_odd_token_is_never_fresh() {
    // an expiry before issue (clock skew): due at once
    let t = IssuedToken {
        token: "x".into(),
        issued_at: 100,
        expires_at: 50,
    };
    assert!(!t.is_fresh(100));
}

#[test]
fn tokens_follow_the_pod() {
    let mut book = TokenBook::default();
    book.store(key("a", ""), token(0, 3600));
    book.store(key("a", "vault"), token(0, 3600));
    book.store(key("b", ""), token(0, 3600));
    book.retain_pod("a", &[key("a", "vault").spec].into());
    assert_eq!(book.len(), 2);
    assert!(book.fresh(&key("a", ""), 1).is_none());
    book.forget_pod("a");
    assert_eq!(book.len(), 1);
    assert!(book.fresh(&key("b", ""), 1).is_some());
}

#[test]
fn the_token_text_is_not_in_debug_output() {
    let shown = format!("{:?}", token(0, 10));
    assert!(!shown.contains("secret-jwt"), "{shown}");
}
