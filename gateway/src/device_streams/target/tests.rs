use edge_protocol::DeviceId;

use super::{DeviceReadiness, PodPlacement, StreamRefusal, StreamRequestTarget, check_target};

fn placement() -> PodPlacement {
    PodPlacement {
        device: DeviceId::new("pi-01").unwrap(),
        uid: "uid-1".into(),
        containers: vec!["app".into(), "sidecar".into()],
    }
}

fn ready() -> DeviceReadiness {
    DeviceReadiness {
        online: true,
        streams: Some(edge_protocol::STREAM_PROTOCOL_VERSION),
        agent_version: "0.2.0".into(),
    }
}

fn exec<'a>(container: &'a str, uid: Option<&'a str>) -> StreamRequestTarget<'a> {
    StreamRequestTarget {
        namespace: "default",
        pod: "web",
        uid,
        container: Some(container),
        what: "exec",
    }
}

#[test]
fn a_known_pod_on_a_ready_device_is_served() {
    let (device, pod) =
        check_target(&exec("app", Some("uid-1")), Some(&placement()), &ready()).unwrap();
    assert_eq!(device.as_str(), "pi-01");
    assert_eq!(
        (
            pod.pod_uid.as_str(),
            pod.namespace.as_str(),
            pod.pod_name.as_str()
        ),
        ("uid-1", "default", "web")
    );
    let port_forward = StreamRequestTarget {
        container: None,
        what: "port-forward",
        ..exec("", None)
    };
    assert!(check_target(&port_forward, Some(&placement()), &ready()).is_ok());
}

#[test]
fn unknown_pods_containers_and_uids_are_404() {
    let e = check_target(&exec("app", None), None, &ready()).unwrap_err();
    assert_eq!(
        (e.http_status(), e.to_string().as_str()),
        (404, "pod does not exist")
    );
    let e = check_target(&exec("db", None), Some(&placement()), &ready()).unwrap_err();
    assert_eq!(
        e,
        StreamRefusal::ContainerNotFound {
            container: "db".into()
        }
    );
    assert_eq!(e.http_status(), 404);
    assert_eq!(e.to_string(), "container not found (\"db\")");
    let e = check_target(&exec("app", Some("uid-2")), Some(&placement()), &ready()).unwrap_err();
    assert!(matches!(e, StreamRefusal::UidMismatch { .. }), "{e}");
    assert_eq!(e.http_status(), 404);
}

#[test]
fn an_offline_device_or_an_old_agent_is_a_clear_503() {
    let offline = DeviceReadiness {
        online: false,
        ..ready()
    };
    let e = check_target(&exec("app", None), Some(&placement()), &offline).unwrap_err();
    assert_eq!(e.http_status(), 503);
    assert!(e.to_string().contains("node pi-01 is offline"), "{e}");
    for streams in [None, Some(0)] {
        let old = DeviceReadiness {
            streams,
            agent_version: "0.1.0".into(),
            ..ready()
        };
        let e = check_target(&exec("app", None), Some(&placement()), &old).unwrap_err();
        assert_eq!(e.http_status(), 503);
        assert!(
            e.to_string()
                .starts_with("edge-agent 0.1.0 on node pi-01 does not support exec"),
            "{e}"
        );
        assert!(e.to_string().ends_with("upgrade the agent"), "{e}");
    }
}
