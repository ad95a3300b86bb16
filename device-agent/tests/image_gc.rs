//! Image garbage collection on real Podman, with three images of this test's own
//! (imported, so each has its own id): the images and the containers' images are read
//! from the runtime, the planner removes the least recently used unused image first,
//! never one a container uses (created, not even running), and the removal really
//! frees them. The plan is limited to this test's images: other images on the shared
//! runtime are never touched here.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::*;
use edge_agent::container_runtime::{ContainerRuntime, CreateContainer};
use edge_agent::docker_runtime::DockerRuntime;
use edge_agent::engine_api_get::Endpoint;
use edge_agent::image_gc::{GcPolicy, ImageTracker, ListedImage};
use edge_agent::runtime_images::{image_key, list_images, remove_image, used_image_ids};

/// Imports a one-file image with unique content (so its own id) as `name`.
fn import(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("id"),
        format!("{name} {}\n", std::process::id()),
    )
    .unwrap();
    let tar = dir.path().join("image.tar");
    let ok = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .args(["-C", dir.path().to_str().unwrap(), "id"])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new("podman")
        .arg("import")
        .arg(&tar)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    image_key(String::from_utf8_lossy(&out.stdout).trim())
}

/// Removes this test's containers and images, also when it fails.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let listed = Command::new("podman")
            .args(["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for image in listed.lines().filter(|l| l.starts_with(&prefix())) {
            let _ = Command::new("podman")
                .args(["rm", "-f", "--depend"])
                .args(["--filter", &format!("ancestor={image}")])
                .output();
            let _ = Command::new("podman").args(["rmi", "-f", image]).output();
        }
    }
}

fn prefix() -> String {
    format!("localhost/node-pressure-gc-{}-", std::process::id())
}

/// This test's images as the runtime lists them.
async fn mine(endpoint: &Endpoint) -> Vec<ListedImage> {
    let p = prefix();
    list_images(endpoint)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.names.iter().any(|n| n.starts_with(&p)))
        .collect()
}

fn names(images: &[ListedImage]) -> BTreeSet<String> {
    images
        .iter()
        .flat_map(|i| i.names.iter())
        .filter(|n| !n.contains('@'))
        .map(|n| n.trim_start_matches(&prefix()).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn unused_images_go_least_recently_used_first_and_used_ones_stay() {
    let host = docker_host();
    let endpoint = Endpoint::parse(&host);
    let runtime = DockerRuntime::connect(&host, "node-pressure-gc").unwrap();
    let _cleanup = Cleanup;
    let p = prefix();
    let old = import(&format!("{p}old:1"));
    let mut tracker = ImageTracker::default();
    tracker.observe(
        mine(&endpoint).await,
        used_image_ids(&endpoint).await.unwrap(),
        1_000,
    );
    let newer = import(&format!("{p}newer:1"));
    let busy = import(&format!("{p}busy:1"));
    // a created (never started) container uses "busy"
    let container = runtime
        .create(&CreateContainer {
            image: format!("{p}busy:1"),
            command: vec!["/id".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let used = used_image_ids(&endpoint).await.unwrap();
    assert!(used.contains(&busy), "{used:?} lacks {busy}");
    tracker.observe(mine(&endpoint).await, used, 2_000);
    let policy = GcPolicy {
        high_percent: 85,
        low_percent: 80,
        minimum_age: Duration::ZERO,
    };
    // 90 % full, 100 bytes to free: the least recently used image only
    let plan = tracker.plan(1000, 100, policy, 3_000);
    assert_eq!(plan.remove, std::slice::from_ref(&old), "{plan:?}");
    // much to free: every unused image, never the used one
    let plan_all = tracker.plan(1 << 40, 1, policy, 3_000);
    assert_eq!(
        plan_all.remove,
        [old.clone(), newer.clone()],
        "{plan_all:?}"
    );
    for id in &plan_all.remove {
        remove_image(&runtime.client(), id).await.unwrap();
    }
    let left = mine(&endpoint).await;
    assert_eq!(
        names(&left),
        BTreeSet::from(["busy:1".to_owned()]),
        "{left:?}"
    );
    // the runtime itself refuses to remove an image a container uses
    assert!(remove_image(&runtime.client(), &busy).await.is_err());
    runtime.remove(&container).await.unwrap();
    remove_image(&runtime.client(), &busy).await.unwrap();
    assert!(mine(&endpoint).await.is_empty());
}
