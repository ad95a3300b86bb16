#![allow(clippy::unwrap_used)]
use std::time::Duration;

use edge_protocol::{HttpHeader, LifecycleHandler, RegistryCredential};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::run_hook;
use crate::container_runtime::{
    ContainerRuntime, ContainerSnapshot, CreateContainer, LogReadOptions, Result, RuntimeError,
};
use crate::pod_lifecycle::HookError;

/// A runtime whose exec answers with a fixed exit code and output.
struct ExecOnly(i64, &'static str);

fn no<T: Send + 'static>() -> BoxFuture<'static, Result<T>> {
    async { Err(RuntimeError::Api("not in this test".into())) }.boxed()
}

impl ContainerRuntime for ExecOnly {
    fn version(&self) -> BoxFuture<'_, Result<String>> {
        no()
    }
    fn data_root(&self) -> BoxFuture<'_, Result<Option<String>>> {
        no()
    }
    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ContainerSnapshot>>> {
        no()
    }
    fn image_present<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool>> {
        no()
    }
    fn image_id<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        no()
    }
    fn pull<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a RegistryCredential>,
    ) -> BoxFuture<'a, Result<()>> {
        no()
    }
    fn create<'a>(&'a self, _: &'a CreateContainer) -> BoxFuture<'a, Result<String>> {
        no()
    }
    fn start<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<()>> {
        no()
    }
    fn stop<'a>(&'a self, _: &'a str, _: Duration) -> BoxFuture<'a, Result<()>> {
        no()
    }
    fn remove<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<()>> {
        no()
    }
    fn exec<'a>(
        &'a self,
        _: &'a str,
        _: &'a [String],
        _: Duration,
    ) -> BoxFuture<'a, Result<(i64, String)>> {
        let (code, out) = (self.0, self.1.to_owned());
        async move { Ok((code, out)) }.boxed()
    }
    fn logs(&self, _: &str, _: LogReadOptions) -> BoxStream<'static, Result<Vec<u8>>> {
        futures::stream::empty().boxed()
    }
}

fn exec() -> LifecycleHandler {
    LifecycleHandler::Exec {
        command: vec!["touch".into(), "/tmp/up".into()],
    }
}

#[tokio::test]
async fn exec_succeeds_on_exit_zero_and_fails_otherwise() {
    let (_, ok) = run_hook(&ExecOnly(0, ""), "c1", &exec(), "127.0.0.1", None).await;
    assert_eq!(ok, Ok(()));
    let (_, failed) = run_hook(
        &ExecOnly(2, "no such file\n"),
        "c1",
        &exec(),
        "127.0.0.1",
        None,
    )
    .await;
    assert_eq!(
        failed,
        Err(HookError::ExitCode {
            command: "touch /tmp/up".into(),
            code: 2,
            output: "no such file".into(),
        })
    );
}

#[tokio::test]
async fn http_get_goes_to_the_target_ip_with_path_and_headers_and_any_answer_is_success() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut b = [0u8; 1024];
        let n = s.read(&mut b).await.unwrap();
        s.write_all(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&b[..n]).into_owned()
    });
    let handler = LifecycleHandler::HttpGet {
        host: None,
        port,
        path: "/quit".into(),
        scheme: "HTTP".into(),
        headers: vec![HttpHeader {
            name: "X-Hook".into(),
            value: "preStop".into(),
        }],
    };
    let (_, result) = run_hook(&ExecOnly(0, ""), "c1", &handler, "127.0.0.1", None).await;
    assert_eq!(result, Ok(()), "the kubelet ignores a hook's status code");
    let request = server.await.unwrap();
    assert!(request.starts_with("GET /quit HTTP/1.1"), "{request}");
    assert!(request.contains("X-Hook: preStop"), "{request}");
}

#[tokio::test]
async fn http_get_fails_when_nothing_listens() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let handler = LifecycleHandler::HttpGet {
        host: Some("127.0.0.1".into()),
        port,
        path: "/".into(),
        scheme: "HTTP".into(),
        headers: vec![],
    };
    let (_, result) = run_hook(&ExecOnly(0, ""), "c1", &handler, "192.0.2.1", None).await;
    assert!(matches!(result, Err(HookError::Http(_))), "{result:?}");
}

#[tokio::test]
async fn a_hook_longer_than_its_timeout_fails() {
    let rt = ExecOnly(0, "");
    let limit = Some(Duration::from_secs(1));
    let sleep = LifecycleHandler::Sleep { seconds: 30 };
    let (elapsed, result) = run_hook(&rt, "c1", &sleep, "127.0.0.1", limit).await;
    assert_eq!(result, Err(HookError::TimedOut(Duration::from_secs(1))));
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    let short = LifecycleHandler::Sleep { seconds: 0 };
    let (_, done) = run_hook(&rt, "c1", &short, "127.0.0.1", limit).await;
    assert_eq!(done, Ok(()));
}
