use bollard::BollardRequest;
use http_body_util::BodyExt;

use super::*;

fn size() -> TerminalSize {
    TerminalSize {
        width: 123,
        height: 45,
    }
}

fn request(path: &str, body: &str) -> BollardRequest {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/json")
        .body(bollard::body_full(Bytes::from(body.to_owned())))
        .unwrap()
}

async fn body_of(request: BollardRequest) -> serde_json::Value {
    let bytes = request.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn the_body_carries_the_size_for_podman_and_docker() {
    let body: serde_json::Value = serde_json::from_str(&start_body(size())).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"Detach": false, "Tty": true, "h": 45, "w": 123, "ConsoleSize": [45, 123]})
    );
}

#[tokio::test]
async fn only_the_start_request_of_that_exec_is_rewritten() {
    let rewrite = sized_start("abc", size());
    let started = rewrite(request(
        "/v1.41/exec/abc/start",
        r#"{"Detach":false,"Tty":true}"#,
    ));
    assert_eq!(started.uri().path(), "/v1.41/exec/abc/start");
    assert_eq!(started.headers()["content-type"], "application/json");
    let body = body_of(started).await;
    assert_eq!(
        (body["h"].as_u64(), body["w"].as_u64()),
        (Some(45), Some(123))
    );
    for other in [
        "/v1.41/exec/abcd/start",
        "/v1.41/exec/abc/resize",
        "/v1.41/exec/abc/json",
    ] {
        let untouched = body_of(rewrite(request(other, r#"{"x":1}"#))).await;
        assert_eq!(untouched, serde_json::json!({"x": 1}), "{other}");
    }
}
