#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn labels_follow_kubernetes_syntax() {
    let ok = parse_labels(&[
        "site=lab".into(),
        "example.com/rack=r-1".into(),
        "empty=".into(),
    ])
    .unwrap();
    assert_eq!(ok.get("site").map(String::as_str), Some("lab"));
    assert_eq!(ok.get("empty").map(String::as_str), Some(""));
    for bad in [
        "noequals",
        "=v",
        "a=-x",
        "kubernetes.io/arch=arm64",
        "node.kubernetes.io/x=y",
        "a=b c",
        "a=1,a=2",
    ] {
        let raw: Vec<String> = bad.split(',').map(String::from).collect();
        assert!(parse_labels(&raw).is_err(), "{bad}");
    }
}

#[test]
fn broker_urls_are_checked() {
    for ok in [
        "mqtts://gw.example.com:8883",
        "mqtts://10.0.0.1",
        "mqtt://127.0.0.1:1883",
    ] {
        check_broker_url(ok).unwrap();
    }
    for bad in ["http://x", "mqtts://", "mqtts://h:port", "gw:8883"] {
        assert!(check_broker_url(bad).is_err(), "{bad}");
    }
}
