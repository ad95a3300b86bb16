#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn every_node_of_a_cluster_gets_the_same_session_settings() {
    let broker = BrokerConfig::External {
        host: "n1".to_owned(),
        port: 1883,
        failover: vec![("n2".to_owned(), 1884), ("n3".to_owned(), 1885)],
        tls: false,
        ca: None,
        client_cert: None,
    };
    let nodes = failover_options(&broker, "edge-gateway", None).unwrap();
    let addresses: Vec<(String, u16)> = nodes.iter().map(MqttOptions::broker_address).collect();
    assert_eq!(
        addresses,
        [
            ("n1".to_owned(), 1883),
            ("n2".to_owned(), 1884),
            ("n3".to_owned(), 1885)
        ]
    );
    for o in &nodes {
        // one session across the cluster: same client id, persistent
        assert_eq!(o.client_id(), "edge-gateway");
        assert!(!o.clean_session());
        assert_eq!(o.keep_alive(), Duration::from_secs(15));
    }
    assert_eq!(
        options(&broker, "edge-gateway", None)
            .unwrap()
            .broker_address(),
        ("n1".to_owned(), 1883)
    );
}

#[test]
fn the_embedded_broker_is_one_node() {
    let broker = BrokerConfig::Embedded {
        listen: "0.0.0.0:1883".parse().unwrap(),
        insecure_listen: true,
    };
    let nodes = failover_options(&broker, "gw", Some(4000)).unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].broker_address(), ("127.0.0.1".to_owned(), 4000));
}

#[test]
fn tls_without_a_ca_is_refused() {
    let broker = BrokerConfig::External {
        host: "n1".to_owned(),
        port: 8883,
        failover: vec![("n2".to_owned(), 8883)],
        tls: true,
        ca: None,
        client_cert: None,
    };
    assert!(matches!(
        failover_options(&broker, "gw", None),
        Err(MqttError::MissingCa)
    ));
}
