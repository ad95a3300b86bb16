use super::*;

#[test]
fn round_trips_binary() {
    let b = Base64Bytes(vec![0, 255, 10, 13]);
    let s = serde_json::to_string(&b).unwrap();
    assert_eq!(s, "\"AP8KDQ==\"");
    assert_eq!(serde_json::from_str::<Base64Bytes>(&s).unwrap(), b);
    assert!(serde_json::from_str::<Base64Bytes>("\"***\"").is_err());
    assert_eq!(format!("{b:?}"), "Base64Bytes(4 bytes)");
}
