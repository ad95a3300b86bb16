//! Image pulls from a real registry (Debian's docker-registry, TLS with a test CA,
//! htpasswd auth, `common::registry`): pull credentials work, missing or wrong ones give
//! ErrImagePull.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::registry::start_registry;
use common::*;
use edge_protocol::{PullPolicy, RegistryCredential};

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_with_registry_credentials_and_fails_without() {
    let _ = docker_host();
    let dir = tempfile::tempdir().unwrap();
    let registry = start_registry(dir.path(), "edge", "s3cret-pw");
    let port = start_rumqttd();
    let device = "reg-pull-1";
    let gw = TestGateway::connect(port, device).await;
    let _agent = AgentProcess::start(device, port, dir.path());
    gw.wait_agent_online().await;
    let registry_host = registry.host.clone();
    let pod = |tag: &str, creds: Vec<RegistryCredential>| {
        let mut p = busybox_pod(&unique_uid(tag), tag, "exec sleep 1000");
        p.containers[0].image = registry.image.clone();
        p.containers[0].image_pull_policy = PullPolicy::Always;
        p.registry_credentials = creds;
        p
    };
    let authed = pod(
        "authed",
        vec![RegistryCredential {
            registry: registry_host.clone(),
            username: "edge".into(),
            password: "s3cret-pw".into(),
        }],
    );
    let anonymous = pod("anonymous", vec![]);
    let wrong = pod(
        "wrong",
        vec![RegistryCredential {
            registry: registry_host.clone(),
            username: "edge".into(),
            password: "not-it".into(),
        }],
    );
    let _cleanup = PodCleanup(vec![
        authed.uid.clone(),
        anonymous.uid.clone(),
        wrong.uid.clone(),
    ]);
    gw.desire(1, vec![authed.clone(), anonymous.clone(), wrong.clone()])
        .await;
    let s = gw.wait_status(&authed.uid, "running", T, is_running).await;
    assert!(!s.containers[0].image_id.is_empty());
    let events = gw.event_reasons(&authed.uid);
    assert!(events.contains(&"Pulling".to_owned()), "{events:?}");
    assert!(events.contains(&"Pulled".to_owned()), "{events:?}");
    for p in [&anonymous, &wrong] {
        let s = gw
            .wait_status(&p.uid, "pull refused", T, |s| {
                matches!(
                    waiting_reason(s).as_deref(),
                    Some("ErrImagePull" | "ImagePullBackOff")
                )
            })
            .await;
        assert!(podman_containers(&p.uid).is_empty(), "{s:?}");
    }
    let failed = gw
        .messages()
        .into_iter()
        .filter_map(|r| match r.message {
            edge_protocol::Message::PodEventReport(e) => Some(e.events),
            _ => None,
        })
        .flatten()
        .find(|e| e.pod_uid == anonymous.uid && e.reason == "Failed" && e.message.contains("pull"))
        .expect("a Failed event for the anonymous pull");
    assert!(
        failed.message.to_lowercase().contains("auth"),
        "the registry refused the anonymous pull: {}",
        failed.message
    );
    gw.desire(2, vec![]).await;
    wait_until(T, "containers removed", || {
        podman_containers(&authed.uid).is_empty()
    })
    .await;
}
