use super::*;

#[test]
fn the_bootstrap_listener_trusts_only_the_bootstrap_ca_and_keeps_client_ids() {
    let conf = listener_conf("0.0.0.0", 8884, Path::new("/etc/mosquitto/edge"));
    assert!(conf.contains("listener 8884 0.0.0.0\n"), "{conf}");
    assert!(
        conf.contains("cafile /etc/mosquitto/edge/bootstrap-ca.pem\n"),
        "{conf}"
    );
    assert!(
        !conf.contains("cafile /etc/mosquitto/edge/ca.pem"),
        "{conf}"
    );
    assert!(conf.contains("require_certificate true\n"));
    assert!(conf.contains("use_identity_as_username true\n"));
    // bootstrap clients keep their own client id (bootstrap_<id>), so no use_username_as_clientid
    assert!(!conf.contains("use_username_as_clientid"), "{conf}");
}

#[test]
fn the_acl_confines_bootstrap_clients_to_their_own_topics() {
    let acl = acl_lines();
    assert!(
        acl.contains("pattern write edge/bootstrap/v1/%c/request\n"),
        "{acl}"
    );
    assert!(
        acl.contains("pattern read edge/bootstrap/v1/%c/response\n"),
        "{acl}"
    );
    assert!(!acl.contains("readwrite"), "{acl}");
}
