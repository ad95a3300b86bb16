use super::*;

#[test]
fn only_loopback_without_the_opt_in() {
    assert!(check_listen("127.0.0.1:9464".parse().unwrap(), false).is_ok());
    assert!(check_listen("[::1]:9464".parse().unwrap(), false).is_ok());
    let wide: SocketAddr = "0.0.0.0:9464".parse().unwrap();
    let err = check_listen(wide, false).unwrap_err();
    assert!(err.to_string().contains("nodes/metrics"), "{err}");
    assert!(check_listen(wide, true).is_ok());
}

#[test]
fn readyz_names_what_is_missing() {
    let health = Health::default();
    let response = readyz_response(&health);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    health.set_mqtt_connected(true);
    assert_eq!(readyz_response(&health).status(), StatusCode::OK);
}

#[test]
fn the_probe_asks_loopback_for_an_unspecified_listen_address() {
    use check_ready::probe_address;
    let wide: SocketAddr = "0.0.0.0:9464".parse().unwrap();
    assert_eq!(probe_address(wide), "127.0.0.1:9464".parse().unwrap());
    let wide6: SocketAddr = "[::]:9464".parse().unwrap();
    assert_eq!(probe_address(wide6), "[::1]:9464".parse().unwrap());
    let local: SocketAddr = "127.0.0.2:1".parse().unwrap();
    assert_eq!(probe_address(local), local);
}

#[tokio::test]
async fn check_ready_follows_readyz() {
    use check_ready::{CheckReadyArgs, CheckReadyError, check_ready};
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let server = tokio::spawn(serve(listener, metrics, health.clone(), token.clone()));
    let args = CheckReadyArgs {
        metrics_listen: addr,
        timeout: std::time::Duration::from_secs(5),
    };
    match check_ready(&args).await {
        Err(CheckReadyError::NotReady { status: 503, body }) => {
            assert!(body.contains("mqtt"), "{body}")
        }
        other => panic!("expected 503, got {other:?}"),
    }
    health.set_mqtt_connected(true);
    assert_eq!(check_ready(&args).await.unwrap(), "ok");
    token.cancel();
    server.await.unwrap();
    // Nothing listens any more: a clear error, not a hang.
    assert!(matches!(
        check_ready(&args).await,
        Err(CheckReadyError::Unreachable { .. })
    ));
}
