use super::*;
use std::collections::BTreeMap;

#[test]
fn parses_dockerconfigjson_with_auth_and_plain_fields() {
    let auth = STANDARD.encode("bob:s3cret");
    let json = format!(
        r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"username":"al","password":"pw"}}}}}}"#
    );
    let data = ObjectData {
        entries: BTreeMap::from([(".dockerconfigjson".to_owned(), json.into_bytes())]),
    };
    let mut creds = credentials_from_secret(&data).unwrap();
    creds.sort_by(|a, b| a.registry.cmp(&b.registry));
    assert_eq!(creds.len(), 2);
    assert_eq!(creds[0].registry, "127.0.0.1:5000");
    assert_eq!(
        (creds[0].username.as_str(), creds[0].password.as_str()),
        ("bob", "s3cret")
    );
    assert_eq!(creds[1].registry, "docker.io");
    assert_eq!(creds[1].username, "al");
}

#[test]
fn legacy_dockercfg_and_garbage() {
    let data = ObjectData {
        entries: BTreeMap::from([(
            ".dockercfg".to_owned(),
            br#"{"ghcr.io":{"username":"u","password":"p"}}"#.to_vec(),
        )]),
    };
    assert_eq!(
        credentials_from_secret(&data).unwrap()[0].registry,
        "ghcr.io"
    );
    let bad = ObjectData {
        entries: BTreeMap::from([(".dockerconfigjson".to_owned(), b"{".to_vec())]),
    };
    assert!(credentials_from_secret(&bad).is_err());
    assert!(credentials_from_secret(&ObjectData::default()).is_err());
}
