#![allow(clippy::unwrap_used)]
use super::*;

#[test]
fn only_loopback_without_the_insecure_flag() {
    for ok in ["127.0.0.1:1883", "127.0.0.2:0", "[::1]:1883"] {
        assert!(check_listen(ok.parse().unwrap(), false).is_ok(), "{ok}");
    }
    for refused in ["0.0.0.0:1883", "[::]:1883", "10.1.2.3:1883"] {
        let err = check_listen(refused.parse().unwrap(), false).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broker-config mosquitto"), "{text}");
        assert!(text.contains("--embedded-broker-insecure-listen"), "{text}");
        assert!(check_listen(refused.parse().unwrap(), true).is_ok());
    }
}

#[test]
fn thread_names_map_to_the_broker_port() {
    assert_eq!(broker_port_of_thread("edge-broker-1883"), Some(1883));
    assert_eq!(broker_port_of_thread("router-40000"), Some(40000));
    assert_eq!(broker_port_of_thread("edge-broker-v4-1884"), Some(1884));
    assert_eq!(broker_port_of_thread("tokio-runtime-worker"), None);
    assert_eq!(broker_port_of_thread("router-x"), None);
}

#[tokio::test]
async fn a_panic_on_a_broker_thread_is_reported() {
    let broker = start(SocketAddr::from(([127, 0, 0, 1], 0)), false)
        .await
        .unwrap();
    let port = broker.addr.port();
    // A panic on a thread named like the broker's router (what a rumqttd bug does).
    let t = std::thread::Builder::new()
        .name(format!("router-{port}"))
        .spawn(|| panic!("injected"))
        .unwrap();
    assert!(t.join().is_err());
    let fault = tokio::time::timeout(Duration::from_secs(5), broker.failed())
        .await
        .unwrap();
    assert!(fault.contains("injected"), "{fault}");
    assert!(fault.contains(&format!("router-{port}")), "{fault}");
}
