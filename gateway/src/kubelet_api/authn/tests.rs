use super::*;

#[test]
fn bearer_tokens_are_taken_from_the_authorization_header() {
    assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
    assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
    assert_eq!(bearer_token(Some("Basic abc")), None);
    assert_eq!(bearer_token(Some("Bearer ")), None);
    assert_eq!(bearer_token(None), None);
}

#[test]
fn authenticated_users_are_in_system_authenticated_once() {
    let u = add_authenticated_group(UserInfo {
        username: "a".into(),
        groups: vec!["team".into()],
        ..Default::default()
    });
    assert_eq!(u.groups, vec!["team", AUTHENTICATED_GROUP]);
    assert_eq!(add_authenticated_group(u.clone()), u);
}
