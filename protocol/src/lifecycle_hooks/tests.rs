use super::*;
use crate::ContainerSpec;

#[test]
fn a_container_without_hooks_encodes_as_before() {
    let json = serde_json::to_value(ContainerSpec::default()).unwrap();
    for field in [
        "lifecycle",
        "terminationMessagePath",
        "terminationMessagePolicy",
    ] {
        assert!(json.get(field).is_none(), "{field} in {json}");
    }
}

#[test]
fn hooks_and_termination_settings_round_trip() {
    let c = ContainerSpec {
        lifecycle: Some(Lifecycle {
            post_start: Some(LifecycleHandler::Exec {
                command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            }),
            pre_stop: Some(LifecycleHandler::HttpGet {
                host: None,
                port: 8080,
                path: "/quit".into(),
                scheme: "HTTP".into(),
                headers: vec![],
            }),
        }),
        termination_message_path: Some("/tmp/msg".into()),
        termination_message_policy: TerminationMessagePolicy::FallbackToLogsOnError,
        ..Default::default()
    };
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["lifecycle"]["postStart"]["type"], "exec");
    assert_eq!(json["lifecycle"]["preStop"]["type"], "httpGet");
    assert_eq!(json["terminationMessagePolicy"], "FallbackToLogsOnError");
    let back: ContainerSpec = serde_json::from_value(json).unwrap();
    assert_eq!(back, c);
    let sleep: LifecycleHandler = serde_json::from_str(r#"{"type":"sleep","seconds":3}"#).unwrap();
    assert_eq!(sleep, LifecycleHandler::Sleep { seconds: 3 });
}
