use super::*;

const SERVER: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

#[test]
fn the_clients_order_wins() {
    assert_eq!(
        negotiate(&["v4.channel.k8s.io", "v5.channel.k8s.io"], SERVER),
        Ok("v4.channel.k8s.io")
    );
    // client-go sends one header value per protocol, newest first.
    assert_eq!(
        negotiate(
            &[
                "v5.channel.k8s.io",
                "v4.channel.k8s.io",
                "v3.channel.k8s.io"
            ],
            SERVER
        ),
        Ok("v5.channel.k8s.io")
    );
}

#[test]
fn comma_separated_values_and_spaces_are_split() {
    assert_eq!(
        negotiate(&[" v3.channel.k8s.io ,v4.channel.k8s.io", ""], SERVER),
        Ok("v4.channel.k8s.io")
    );
}

#[test]
fn missing_and_unmatched_protocols_map_to_the_kubelets_statuses() {
    let missing = negotiate(&[], SERVER).unwrap_err();
    assert_eq!(missing, NegotiationError::MissingHeader);
    assert_eq!(missing.http_status(), 400);
    assert_eq!(
        negotiate(&[" , "], SERVER),
        Err(NegotiationError::MissingHeader)
    );
    let none = negotiate(&["channel.k8s.io"], SERVER).unwrap_err();
    assert_eq!(none.http_status(), 403);
    assert!(none.to_string().contains("unable to negotiate protocol"));
}

#[test]
fn spdy_upgrade_check_is_case_insensitive() {
    assert!(is_spdy_upgrade("Upgrade", "SPDY/3.1"));
    assert!(is_spdy_upgrade("keep-alive, upgrade", "spdy/3.1"));
    assert!(!is_spdy_upgrade("Upgrade", "websocket"));
    assert!(!is_spdy_upgrade("close", "SPDY/3.1"));
}
