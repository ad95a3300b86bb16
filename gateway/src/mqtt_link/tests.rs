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

/// A broker node that takes longer than rumqttc's default 5 s to answer a CONNECT (NATS
/// while its JetStream leaders move) is waited for: giving the attempt up would leave
/// the CONNECT running there while the gateway connects to another node.
#[tokio::test]
async fn a_slow_connack_is_waited_for() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut connect = [0u8; 512];
        let _ = socket.read(&mut connect).await.unwrap();
        tokio::time::sleep(Duration::from_secs(7)).await;
        // CONNACK: no session present, accepted
        socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
        let _ = socket.read(&mut connect).await;
    });
    let (_client, mut eventloop) = client(MqttOptions::new("edge-gateway", "127.0.0.1", port));
    assert_eq!(
        eventloop.network_options().connection_timeout(),
        edge_protocol::broker_failover::CONNACK_TIMEOUT.as_secs()
    );
    match eventloop.poll().await {
        Ok(Event::Incoming(Packet::ConnAck(_))) => {}
        other => panic!("expected the late CONNACK, got {other:?}"),
    }
}
