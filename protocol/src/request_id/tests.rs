use super::*;

#[test]
fn validates() {
    assert!(RequestId::new("a1_B-2").is_ok());
    assert_eq!(RequestId::new(""), Err(RequestIdError::Empty));
    assert!(matches!(
        RequestId::new("x".repeat(65)),
        Err(RequestIdError::TooLong { .. })
    ));
    assert_eq!(
        RequestId::new("a/b"),
        Err(RequestIdError::InvalidCharacter { found: '/' })
    );
    assert_eq!(
        RequestId::new("#"),
        Err(RequestIdError::InvalidCharacter { found: '#' })
    );
}
