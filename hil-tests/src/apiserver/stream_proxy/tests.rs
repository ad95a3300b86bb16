use serde_json::json;

use super::*;

fn node(features: serde_json::Value) -> Value {
    json!({"metadata": {"name": "n"}, "status": {"declaredFeatures": features}})
}

#[test]
fn spdy_goes_through_to_every_node() {
    for n in [
        node(json!([])),
        node(json!([WEBSOCKETS_TO_KUBELET])),
        json!({}),
    ] {
        assert_eq!(choose_upgrade("SPDY/3.1", &n).unwrap(), Upgrade::Spdy);
    }
}

#[test]
fn websocket_goes_through_only_to_nodes_that_declare_it() {
    let declaring = node(json!(["SomethingElse", WEBSOCKETS_TO_KUBELET]));
    assert!(declares_websockets(&declaring));
    assert_eq!(
        choose_upgrade("websocket", &declaring).unwrap(),
        Upgrade::WebSocket
    );
    assert_eq!(
        choose_upgrade("WebSocket", &declaring).unwrap(),
        Upgrade::WebSocket
    );
    for other in [
        node(json!([])),
        node(json!(["SomethingElse"])),
        node(json!("ExtendWebSocketsToKubelet")),
        json!({}),
    ] {
        assert!(!declares_websockets(&other));
        let refused = choose_upgrade("websocket", &other).unwrap_err();
        assert_eq!(refused.code, 400, "{refused:?}");
        assert!(refused.message.contains("use SPDY/3.1"), "{refused:?}");
    }
}

#[test]
fn other_upgrades_are_refused() {
    let declaring = node(json!([WEBSOCKETS_TO_KUBELET]));
    for upgrade in ["", "h2c", "SPDY/3"] {
        assert!(choose_upgrade(upgrade, &declaring).is_err(), "{upgrade}");
    }
}
