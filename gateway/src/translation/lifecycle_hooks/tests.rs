use super::*;
use edge_protocol::HttpHeader;
use serde_json::json;

fn container(v: serde_json::Value) -> Container {
    serde_json::from_value(v).unwrap()
}

#[test]
fn hooks_are_translated_with_named_ports_resolved() {
    let c = container(json!({
        "name": "app", "image": "busybox",
        "ports": [{"name": "admin", "containerPort": 9090}],
        "lifecycle": {
            "postStart": {"exec": {"command": ["sh", "-c", "touch /tmp/up"]}},
            "preStop": {"httpGet": {"port": "admin", "path": "/quit",
                "httpHeaders": [{"name": "X-Why", "value": "stop"}]}}
        }
    }));
    assert_eq!(
        lifecycle(&c).unwrap(),
        Some(Lifecycle {
            post_start: Some(LifecycleHandler::Exec {
                command: vec!["sh".into(), "-c".into(), "touch /tmp/up".into()],
            }),
            pre_stop: Some(LifecycleHandler::HttpGet {
                host: None,
                port: 9090,
                path: "/quit".into(),
                scheme: "HTTP".into(),
                headers: vec![HttpHeader {
                    name: "X-Why".into(),
                    value: "stop".into(),
                }],
            }),
        })
    );
}

#[test]
fn sleep_is_sent_and_tcp_socket_is_not() {
    let c = container(json!({
        "name": "app", "image": "busybox",
        "lifecycle": {
            "postStart": {"tcpSocket": {"port": 80}},
            "preStop": {"sleep": {"seconds": 4}}
        }
    }));
    assert_eq!(
        lifecycle(&c).unwrap(),
        Some(Lifecycle {
            post_start: None,
            pre_stop: Some(LifecycleHandler::Sleep { seconds: 4 }),
        })
    );
    let only_tcp = container(json!({
        "name": "app", "image": "busybox",
        "lifecycle": {"preStop": {"tcpSocket": {"port": 80}}}
    }));
    assert_eq!(lifecycle(&only_tcp).unwrap(), None);
}

#[test]
fn an_unknown_port_name_refuses_the_container() {
    let c = container(json!({
        "name": "app", "image": "busybox",
        "lifecycle": {"postStart": {"httpGet": {"port": "nope"}}}
    }));
    assert!(matches!(
        lifecycle(&c),
        Err(TranslationError::UnknownProbePort { .. })
    ));
}

#[test]
fn termination_message_defaults_are_left_out() {
    let defaulted = container(json!({
        "name": "app", "image": "busybox",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File"
    }));
    assert_eq!(termination_message_path(&defaulted), None);
    assert_eq!(
        termination_message_policy(&defaulted),
        TerminationMessagePolicy::File
    );
    let set = container(json!({
        "name": "app", "image": "busybox",
        "terminationMessagePath": "/tmp/why",
        "terminationMessagePolicy": "FallbackToLogsOnError"
    }));
    assert_eq!(termination_message_path(&set), Some("/tmp/why".into()));
    assert_eq!(
        termination_message_policy(&set),
        TerminationMessagePolicy::FallbackToLogsOnError
    );
}
