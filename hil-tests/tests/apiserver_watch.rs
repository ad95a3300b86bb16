#![allow(clippy::unwrap_used)]
//! Watch semantics through kube-rs: initial events, resume from a resourceVersion,
//! selector transitions, bookmarks, timeoutSeconds, 410 Gone, and kube-runtime watchers
//! (list+watch and streaming lists).

use std::time::Duration;

use edge_hil_tests::apiserver::{ApiServer, ApiServerConfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;

async fn start(
    tweak: impl FnOnce(&mut ApiServerConfig),
) -> (ApiServer, kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ApiServerConfig::new(dir.path());
    cfg.scheduler = false;
    cfg.node_lifecycle = false;
    tweak(&mut cfg);
    let server = ApiServer::start(cfg).await.unwrap();
    let client = server.client().await.unwrap();
    (server, client, dir)
}

fn cm(name: &str, label: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": label}}})).unwrap()
}

async fn next<S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin>(
    s: &mut S,
) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("watch event within 5 s")
        .expect("stream open")
        .unwrap()
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.as_deref().unwrap()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.as_deref().unwrap()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.as_deref().unwrap()),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(s) => format!("ERROR {} {}", s.code, s.reason),
    }
}

#[tokio::test]
async fn watch_initial_events_changes_and_selector_transitions() {
    let (_s, client, _d) = start(|_| {}).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("pre", "a"))
        .await
        .unwrap();
    let mut w = cms
        .watch(&WatchParams::default().labels("app=a"), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next(&mut w).await), "ADDED pre");
    cms.create(&PostParams::default(), &cm("other", "b"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("new", "a"))
        .await
        .unwrap();
    assert_eq!(describe(&next(&mut w).await), "ADDED new");
    cms.patch(
        "new",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut w).await), "MODIFIED new");
    // Leaving the selector is a DELETED, entering it an ADDED.
    cms.patch(
        "new",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "b"}}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut w).await), "DELETED new");
    cms.patch(
        "other",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "a"}}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut w).await), "ADDED other");
    cms.delete("pre", &DeleteParams::default()).await.unwrap();
    assert_eq!(describe(&next(&mut w).await), "DELETED pre");
}

#[tokio::test]
async fn watch_resumes_from_resource_version() {
    let (_s, client, _d) = start(|_| {}).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let a = cms
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    cms.create(&PostParams::default(), &cm("b", "x"))
        .await
        .unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let mut w = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next(&mut w).await), "ADDED b");
    let e = next(&mut w).await;
    assert_eq!(describe(&e), "DELETED a");
    if let WatchEvent::Deleted(o) = e {
        assert!(
            o.metadata.resource_version.unwrap().parse::<u64>().unwrap()
                > rv.parse::<u64>().unwrap()
        );
    }
}

#[tokio::test]
async fn watch_too_old_resource_version_is_410_gone() {
    let (s, client, _d) = start(|c| c.watch_history = 3).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let a = cms
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    for i in 0..5 {
        cms.create(&PostParams::default(), &cm(&format!("n{i}"), "x"))
            .await
            .unwrap();
    }
    let mut w = cms
        .watch(
            &WatchParams::default(),
            a.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    let e = next(&mut w).await;
    assert_eq!(describe(&e), "ERROR 410 Expired");
    // Compaction (like etcd's) has the same effect on any older version.
    let latest = cms
        .get("n4")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    s.cluster().compact();
    let before: u64 = latest.parse::<u64>().unwrap() - 1;
    let mut w = cms
        .watch(&WatchParams::default(), &before.to_string())
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next(&mut w).await), "ERROR 410 Expired");
}

#[tokio::test]
async fn bookmarks_and_timeout() {
    let (_s, client, _d) = start(|c| c.bookmark_interval = Duration::from_millis(200)).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let a = cms
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let rv = a.metadata.resource_version.clone().unwrap();
    let mut w = cms
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            }
            .timeout(2),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    let e = next(&mut w).await;
    match e {
        WatchEvent::Bookmark(b) => assert!(
            b.metadata.resource_version.parse::<u64>().unwrap() >= rv.parse::<u64>().unwrap()
        ),
        other => panic!("expected a bookmark, got {}", describe(&other)),
    }
    // timeoutSeconds=2 ends the stream.
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        while let Some(e) = w.next().await {
            e.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "watch with timeoutSeconds=2 ended");
}

#[tokio::test]
async fn kube_runtime_watchers_list_watch_and_streaming_list() {
    let (_s, client, _d) = start(|c| c.bookmark_interval = Duration::from_millis(300)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p1"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
    )
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    for cfg in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let stream = watcher(pods.clone(), cfg).default_backoff();
        let mut stream = std::pin::pin!(stream);
        let mut seen_init = Vec::new();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            match ev {
                watcher::Event::Init => {}
                watcher::Event::InitApply(p) => seen_init.push(p.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen_init, ["p1"]);
        let mut p2 = p.clone();
        p2.metadata.name = Some(format!("p-{}", seen_init.len() + rand_suffix()));
        let name = p2.metadata.name.clone().unwrap();
        pods.create(&PostParams::default(), &p2).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::Apply(p) => assert_eq!(p.metadata.name.unwrap(), name),
            other => panic!("unexpected {other:?}"),
        }
        pods.delete(&name, &DeleteParams::default()).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(matches!(ev, watcher::Event::Delete(_)), "{ev:?}");
    }
}

fn rand_suffix() -> usize {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as usize
        % 100_000
}

#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    let (_s, client, _d) = start(|_| {}).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut c = cm("m", "x");
    c.data = Some([("big".to_string(), "value".to_string())].into());
    cms.create(&PostParams::default(), &c).await.unwrap();
    let meta = cms.get_metadata("m").await.unwrap();
    assert_eq!(meta.metadata.name.as_deref(), Some("m"));
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    let list = cms
        .list_metadata(&kube::api::ListParams::default().fields("metadata.name=m"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let mut w = cms
        .watch_metadata(&WatchParams::default().fields("metadata.name=m"), "0")
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("m")),
        other => panic!("unexpected {other:?}"),
    }
}
