#![allow(clippy::unwrap_used)]
use super::*;

fn user(cn: &str, pin: &str) -> PinnedUser {
    PinnedUser {
        common_name: cn.to_owned(),
        spki_sha256: pin.to_owned(),
    }
}

fn config() -> NatsConfig {
    NatsConfig {
        listen_address: "0.0.0.0".into(),
        nodes: vec![
            "10.0.0.1:8883:6222".parse().unwrap(),
            "10.0.0.2:8883:6222".parse().unwrap(),
            "10.0.0.3:8883:6222".parse().unwrap(),
        ],
        files_dir: "/etc/nats/edge".into(),
        jetstream_dir: "/var/lib/nats".into(),
        gateway: user("edge_gateway", "aa"),
        devices: vec![user("pi-1", "bb"), user("pi-2", "cc")],
    }
}

#[test]
fn every_node_routes_to_all_and_maps_certificates_to_users() {
    let files = config().render();
    assert_eq!(files.nodes.len(), 3);
    for (i, (name, conf)) in files.nodes.iter().enumerate() {
        assert_eq!(name, &format!("nats-{}.conf", i + 1));
        assert!(conf.contains(&format!("server_name: \"edge-nats-{}\"\n", i + 1)));
        for host in ["10.0.0.1", "10.0.0.2", "10.0.0.3"] {
            assert!(
                conf.contains(&format!("\"nats-route://{host}:6222\"")),
                "{conf}"
            );
        }
        assert!(conf.contains("listen: \"0.0.0.0:8883\""));
        assert!(conf.contains("verify_and_map: true\n"));
        assert!(conf.contains("stream_replicas: 3\n"));
        assert!(
            !conf.contains("\n  max_ack_pending:"),
            "breaks QoS 1 subscriptions: {conf}"
        );
        assert!(conf.contains(&format!("store_dir: \"/var/lib/nats/node-{}\"", i + 1)));
        assert!(conf.contains("ca_file: \"/etc/nats/edge/ca.pem\""));
        // Every current certificate is pinned, the gateway's too.
        for pin in ["\"aa\"", "\"bb\"", "\"cc\""] {
            assert!(conf.contains(pin), "{conf}");
        }
        assert!(conf.contains(&format!("max_payload: {BROKER_MAX_PAYLOAD_BYTES}\n")));
        assert!(conf.ends_with("include \"authorization.conf\"\n"), "{conf}");
    }
}

#[test]
fn each_device_may_act_only_as_itself() {
    let auth = config().render().authorization;
    let line = |cn: &str| {
        auth.lines()
            .find(|l| l.contains(&format!("user: \"CN={cn},O=edge-kube\"")))
            .unwrap_or_else(|| panic!("no user for {cn}:\n{auth}"))
            .to_owned()
    };
    let pi1 = line("pi-1");
    assert!(
        pi1.contains("publish: {allow: [\"edge.v1.pi-1.up.>\"]}"),
        "{pi1}"
    );
    assert!(
        pi1.contains(
            "subscribe: {allow: [\"edge.v1.pi-1.down\", \"edge.v1.pi-1.down.>\", \"$MQTT.sub.>\"]}"
        ),
        "{pi1}"
    );
    assert!(!pi1.contains("pi-2"));
    assert!(pi1.contains("allowed_connection_types: [\"MQTT\"]"));
    let gw = line("edge_gateway");
    assert!(gw.contains("publish: {allow: [\">\"]}"), "{gw}");
    assert!(gw.contains("subscribe: {allow: [\">\"]}"), "{gw}");
}

#[test]
fn node_addresses_parse_or_say_why_not() {
    let node: NatsNode = "nats-1.example.com:8883:6222".parse().unwrap();
    assert_eq!(node.host, "nats-1.example.com");
    assert_eq!((node.mqtt_port, node.route_port), (8883, 6222));
    assert!("host:8883".parse::<NatsNode>().is_err());
    assert!(":8883:6222".parse::<NatsNode>().is_err());
    assert!("h:0:6222".parse::<NatsNode>().is_err());
    assert!("h:8883:x".parse::<NatsNode>().is_err());
}

#[test]
fn dotted_device_ids_are_not_supported() {
    assert!(device_id_supported(&DeviceId::new("pi-1").unwrap()));
    assert!(!device_id_supported(&DeviceId::new("pi.lab").unwrap()));
}
