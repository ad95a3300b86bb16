#![allow(clippy::unwrap_used)]
use super::*;

fn probe(success: u32, failure: u32) -> Probe {
    Probe {
        handler: ProbeHandler::TcpSocket {
            host: None,
            port: 1,
        },
        initial_delay_seconds: 0,
        period_seconds: 1,
        timeout_seconds: 1,
        success_threshold: success,
        failure_threshold: failure,
    }
}

#[test]
fn thresholds() {
    let mut c = ProbeCounter::new(&probe(1, 3));
    assert_eq!(c.record(true), Some(true));
    assert_eq!(c.record(false), None);
    assert_eq!(c.record(false), None);
    assert_eq!(c.record(true), None, "streak broken, still healthy");
    assert_eq!(c.record(false), None);
    assert_eq!(c.record(false), None);
    assert_eq!(c.record(false), Some(false));
    assert_eq!(c.record(false), None);
    let mut c = ProbeCounter::new(&probe(2, 1));
    assert_eq!(c.record(true), None);
    assert_eq!(c.record(true), Some(true));
}

#[tokio::test]
async fn http_get_reads_the_status() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 512];
        let _ = s.read(&mut b).await.unwrap();
        s.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
            .await
            .unwrap();
    });
    assert_eq!(
        http_get("127.0.0.1", port, false, "/h", &[]).await.unwrap(),
        503
    );
}

#[tokio::test]
async fn https_get_skips_certificate_checks_like_the_kubelet() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![der], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        let mut b = [0u8; 512];
        let _ = s.read(&mut b).await.unwrap();
        s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
    });
    assert_eq!(
        http_get("127.0.0.1", port, true, "/", &[]).await.unwrap(),
        204
    );
}

#[tokio::test]
async fn a_refused_connection_is_worded_as_the_kubelet_words_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let e = http_get("127.0.0.1", port, false, "/", &[])
        .await
        .unwrap_err();
    assert_eq!(
        dial_error("127.0.0.1", port, &e),
        format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
    let other = std::io::Error::other("malformed HTTP response");
    assert_eq!(
        dial_error("10.0.0.5", 80, &other),
        "dial tcp 10.0.0.5:80: malformed HTTP response"
    );
}
