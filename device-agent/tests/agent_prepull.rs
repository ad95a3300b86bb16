//! Image pre-pull end to end: the real agent binary on real Podman, rumqttd and the test
//! gateway, and a real registry (`common::registry`: TLS, htpasswd). A set with the
//! registry's image and the right credential is pulled (`pulling`, then `present`), the
//! image is in Podman and in the node report; a refused set changes nothing; a wrong
//! credential fails with the registry's message; an empty set reports no images; a set
//! stored before a restart is resumed (the image, removed meanwhile, pulled again); the
//! latest status goes out again after a reconnect (Mosquitto restarted) and on a resync
//! request; the real Docker Engine reports download bytes, summed over layers (Podman
//! 4.3: none).
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::registry::start_registry;
use common::*;
use edge_protocol::{
    DownChannel, ImagePrepullSet, ImagePrepullStatus, Message, NodeReport, PrepullPhase,
    RegistryCredential, Topic, UpChannel,
};

const T: Duration = Duration::from_secs(60);

/// The statuses received on `up/prepull`, oldest first.
fn statuses(gw: &TestGateway) -> Vec<ImagePrepullStatus> {
    gw.messages()
        .into_iter()
        .filter_map(|r| match (r.topic, r.message) {
            (
                Topic::Up {
                    channel: UpChannel::Prepull,
                    ..
                },
                Message::ImagePrepullStatus(s),
            ) => Some(s),
            _ => None,
        })
        .collect()
}

fn node_reports(gw: &TestGateway) -> Vec<NodeReport> {
    gw.messages()
        .into_iter()
        .filter_map(|r| match r.message {
            Message::NodeReport(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// Waits until a status received after the first `skip` satisfies `pred`.
async fn wait_status(
    gw: &TestGateway,
    skip: usize,
    what: &str,
    pred: impl Fn(&ImagePrepullStatus) -> bool,
) -> ImagePrepullStatus {
    let deadline = std::time::Instant::now() + T;
    loop {
        if let Some(s) = statuses(gw).into_iter().skip(skip).find(|s| pred(s)) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for a pre-pull status: {what}; received: {:#?}",
            statuses(gw)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn phase_of(s: &ImagePrepullStatus, image: &str) -> Option<PrepullPhase> {
    s.images.iter().find(|i| i.image == image).map(|i| i.phase)
}

fn in_podman(image: &str) -> bool {
    Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .unwrap()
        .success()
}

/// The image's id as Podman has it (without `sha256:`).
fn image_id(image: &str) -> String {
    let out = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    id.trim_start_matches("sha256:").to_owned()
}

fn rmi(image: &str) {
    let _ = Command::new("podman")
        .args(["rmi", "-f", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The statuses about `image` of `revision` after `skip` went pending/pulling before
/// present, each once at most in that order, with sane bytes.
fn assert_pulled_in_order(gw: &TestGateway, skip: usize, revision: &str, image: &str) {
    let phases: Vec<PrepullPhase> = statuses(gw)
        .into_iter()
        .skip(skip)
        .filter(|s| s.revision == revision)
        .filter_map(|s| {
            let i = s.images.into_iter().find(|i| i.image == image)?;
            assert!(i.bytes_done <= i.bytes_total, "{i:?}");
            Some(i.phase)
        })
        .collect();
    let pulling = phases.iter().position(|p| *p == PrepullPhase::Pulling);
    let present = phases.iter().position(|p| *p == PrepullPhase::Present);
    assert!(
        matches!((pulling, present), (Some(a), Some(b)) if a < b),
        "pulling, then present: {phases:?}"
    );
    assert!(
        !phases.contains(&PrepullPhase::Failed),
        "no failure: {phases:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepulls_from_a_registry_reports_and_resumes_after_a_restart() {
    let _ = docker_host();
    let dir = tempfile::tempdir().unwrap();
    let registry = start_registry(dir.path(), "edge", "s3cret-pw");
    let image = registry.image.clone();
    // another tag on the same registry, for the wrong credential (refused before any
    // manifest is looked up)
    let other = format!("{image}-other");
    let _gone = Cleanup(vec![image.clone(), other.clone()]);
    let port = start_rumqttd();
    let device = "prepull-1";
    let gw = TestGateway::connect(port, device).await;
    // the eviction manager lists images for the node report every second; GC only at a
    // full image filesystem (the test runtime is shared)
    let mut agent = AgentProcess::start_env(
        device,
        port,
        dir.path(),
        &[
            ("EDGE_AGENT_EVICTION_MONITORING_INTERVAL_SECONDS", "1"),
            ("EDGE_AGENT_IMAGE_GC_HIGH_THRESHOLD_PERCENT", "100"),
            ("EDGE_AGENT_IMAGE_GC_LOW_THRESHOLD_PERCENT", "100"),
        ],
    );
    gw.wait_agent_online().await;
    let hello = node_reports(&gw).into_iter().next().unwrap();
    assert!(hello.capabilities.image_prepull, "{:?}", hello.capabilities);
    assert_eq!(hello.image_prepull, None, "no set yet");
    assert!(statuses(&gw).is_empty(), "no set, no status");

    let right = RegistryCredential {
        registry: registry.host.clone(),
        username: "edge".into(),
        password: "s3cret-pw".into(),
    };
    let set = |revision: &str, images: &[&str], credential: &RegistryCredential| {
        Message::from(ImagePrepullSet {
            revision: revision.into(),
            images: images.iter().map(|s| s.to_string()).collect(),
            registry_credentials: vec![credential.clone()],
        })
    };

    // 1. the right credential: pulling, then present; in Podman and the node report
    gw.publish(DownChannel::Prepull, set("r1", &[&image], &right))
        .await;
    let s = wait_status(&gw, 0, "r1 present", |s| {
        s.revision == "r1" && phase_of(s, &image) == Some(PrepullPhase::Present)
    })
    .await;
    assert!(s.complete(), "{s:?}");
    assert_eq!(s.images.len(), 1);
    assert_pulled_in_order(&gw, 0, "r1", &image);
    let last = statuses(&gw).last().cloned().unwrap();
    eprintln!(
        "bytes reported by this runtime: {}/{}",
        last.images[0].bytes_done, last.images[0].bytes_total
    );
    assert!(in_podman(&image), "{image} pulled into Podman");
    wait_until(T, "the image in the node report", || {
        node_reports(&gw)
            .iter()
            .any(|n| n.images.iter().any(|i| i.names.contains(&image)))
    })
    .await;
    // image GC (on, but only at a full disk here) is told to keep it; removal itself is
    // in image_gc's unit tests (GC on the shared test runtime would remove other tests'
    // images)
    let id = image_id(&image);
    wait_until(T, "the image kept from GC", || {
        agent
            .log_text()
            .lines()
            .any(|l| l.contains("image GC keeps the pre-pull set's images") && l.contains(&id))
    })
    .await;
    let stored = agent.state_dir.join("store/prepull.json");
    let mode = std::fs::metadata(&stored).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the stored set holds a password");
    assert!(std::fs::read_to_string(&stored).unwrap().contains("\"r1\""));

    // 2. a bad set is refused: no status about it, the stored set stays
    let before = statuses(&gw).len();
    gw.publish(DownChannel::Prepull, set("bad", &[&image, ""], &right))
        .await;
    wait_until(T, "the refusal in the agent's log", || {
        agent.log_text().contains("refused an image pre-pull set")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        statuses(&gw)
            .iter()
            .skip(before)
            .all(|s| s.revision != "bad"),
        "{:?}",
        statuses(&gw)
    );
    assert!(std::fs::read_to_string(&stored).unwrap().contains("\"r1\""));

    // 3. a wrong credential: failed with the registry's message; the shared image
    //    keeps its phase
    let wrong = RegistryCredential {
        password: "not-it".into(),
        ..right.clone()
    };
    gw.publish(DownChannel::Prepull, set("r2", &[&image, &other], &wrong))
        .await;
    let s = wait_status(&gw, before, "r2 failed", |s| {
        s.revision == "r2" && phase_of(s, &other) == Some(PrepullPhase::Failed)
    })
    .await;
    assert_eq!(phase_of(&s, &image), Some(PrepullPhase::Present), "{s:?}");
    let failed = s.images.iter().find(|i| i.image == other).unwrap();
    assert!(
        failed.message.to_lowercase().contains("auth"),
        "the registry refused the credential: {}",
        failed.message
    );
    assert!(!in_podman(&other));

    // 4. an empty set: a status without images
    let before = statuses(&gw).len();
    gw.publish(DownChannel::Prepull, set("r3", &[], &right))
        .await;
    let s = wait_status(&gw, before, "r3", |s| s.revision == "r3").await;
    assert!(s.images.is_empty(), "{s:?}");

    // 5. a set stored before a restart is resumed: the image, removed while the agent
    //    was down, is pulled again with the stored credential and reported
    gw.publish(DownChannel::Prepull, set("r4", &[&image], &right))
        .await;
    wait_status(&gw, before, "r4 present", |s| {
        s.revision == "r4" && s.complete() && !s.images.is_empty()
    })
    .await;
    agent.kill9();
    rmi(&image);
    assert!(!in_podman(&image));
    let before = statuses(&gw).len();
    let reports_before = node_reports(&gw).len();
    agent.spawn();
    let s = wait_status(&gw, before, "r4 present after the restart", |s| {
        s.revision == "r4" && phase_of(s, &image) == Some(PrepullPhase::Present)
    })
    .await;
    assert!(s.complete());
    assert_pulled_in_order(&gw, before, "r4", &image);
    assert!(in_podman(&image));
    wait_until(T, "the status in a node report after the restart", || {
        node_reports(&gw)
            .iter()
            .skip(reports_before)
            .any(|n| n.image_prepull.as_ref().is_some_and(|p| p.revision == "r4"))
    })
    .await;
    let log = agent.log_text();
    assert!(log.contains("resuming the stored set"), "{log}");
}

/// Removes these images from Podman when dropped (also when the test fails).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for image in &self.0 {
            rmi(image);
        }
    }
}

/// The latest status goes out again after every connect (one sent while offline is
/// lost): Mosquitto restarted under a set whose image is already present; and on the
/// gateway's resync request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_status_goes_out_again_after_a_reconnect() {
    let _ = docker_host();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start();
    let device = "prepull-2";
    let gw = TestGateway::connect(broker.port, device).await;
    let _agent = AgentProcess::start(device, broker.port, dir.path());
    gw.wait_agent_online().await;
    let image = test_image();
    gw.publish(
        DownChannel::Prepull,
        ImagePrepullSet {
            revision: "c1".into(),
            images: vec![image.clone()],
            registry_credentials: Vec::new(),
        }
        .into(),
    )
    .await;
    let s = wait_status(&gw, 0, "c1 present", |s| {
        s.revision == "c1" && s.complete() && !s.images.is_empty()
    })
    .await;
    // already on the device: never pulled
    assert!(
        statuses(&gw)
            .iter()
            .all(|s| phase_of(s, &image) != Some(PrepullPhase::Pulling)),
        "{:?}",
        statuses(&gw)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = statuses(&gw).len();
    let resyncs = gw.count(UpChannel::Resync);
    broker.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.restart();
    wait_until(T, "the agent connected again", || {
        gw.count(UpChannel::Resync) > resyncs
    })
    .await;
    let again = wait_status(&gw, before, "c1 again after the reconnect", |s| {
        s.revision == "c1"
    })
    .await;
    assert_eq!(again.images, s.images, "the same status, since unchanged");
    // and on the gateway's resync request
    let before = statuses(&gw).len();
    gw.publish(
        DownChannel::Resync,
        edge_protocol::ResyncRequest {
            known_generation: 0,
            reason: "test".into(),
        }
        .into(),
    )
    .await;
    wait_status(&gw, before, "c1 on a resync request", |s| {
        s.revision == "c1"
    })
    .await;
}

/// The Docker Engine reports per-layer download bytes; the runtime's pull sums them
/// (Podman's compat API reports none: 0/0 there, as the test above prints).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pulls_report_bytes_summed_over_layers() {
    use edge_agent::container_runtime::{ContainerRuntime, PullProgress};
    use edge_agent::docker_runtime::DockerRuntime;

    let engine = require_env(
        "EDGE_TEST_DOCKER_ENGINE_HOST",
        "the real Docker Engine's socket (`eval \"$(bash scripts/test-env.sh)\"` starts dockerd)",
    );
    let dir = tempfile::tempdir().unwrap();
    let registry = start_registry(dir.path(), "edge", "s3cret-pw");
    // dockerd trusts the registry's CA through its own certs.d (read at every pull)
    let certs = std::path::PathBuf::from(format!("/etc/docker/certs.d/{}", registry.host.clone()));
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(dir.path().join("cert.pem"), certs.join("ca.crt")).unwrap();
    // a layer of its own (the test image's layer is in Docker already: nothing to
    // download), incompressible, so the engine reports download progress
    let image = push_unique_image(dir.path(), &registry);
    let _gone = DockerCleanup {
        engine: engine.clone(),
        image: image.clone(),
        certs,
    };
    let runtime = DockerRuntime::connect(&engine, "prepull-3")
        .unwrap()
        .negotiate()
        .await;
    let credential = RegistryCredential {
        registry: registry.host.clone(),
        username: "edge".into(),
        password: "s3cret-pw".into(),
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<PullProgress>::new()));
    let sink = {
        let seen = seen.clone();
        move |p: PullProgress| seen.lock().unwrap().push(p)
    };
    runtime
        .pull_with_progress(&image, Some(&credential), &sink)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    eprintln!("Docker pull progress: {seen:?}");
    let last = *seen.last().expect("Docker reports download progress");
    assert!(last.bytes_total > 0, "{seen:?}");
    assert_eq!(last.bytes_done, last.bytes_total, "complete: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done),
        "never backwards: {seen:?}"
    );
    assert!(
        runtime.image_id(&image).await.unwrap().is_some(),
        "pulled into Docker"
    );
    // Podman's compat API, the same pull: whatever it reports must add up
    let podman = DockerRuntime::connect(&docker_host(), "prepull-3")
        .unwrap()
        .negotiate()
        .await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<PullProgress>::new()));
    let sink = {
        let seen = seen.clone();
        move |p: PullProgress| seen.lock().unwrap().push(p)
    };
    podman
        .pull_with_progress(&image, Some(&credential), &sink)
        .await
        .unwrap();
    rmi(&image);
    let seen = seen.lock().unwrap().clone();
    eprintln!("Podman pull progress: {seen:?}");
    if let Some(last) = seen.last() {
        assert_eq!(last.bytes_done, last.bytes_total, "{seen:?}");
    }
}

/// Pushes an image with one layer of 4 MiB of random bytes to the registry; returns its
/// reference there (not left in Podman).
fn push_unique_image(dir: &std::path::Path, registry: &common::registry::Registry) -> String {
    use std::io::Read;
    let mut noise = vec![0u8; 4 << 20];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut noise)
        .unwrap();
    std::fs::write(dir.join("noise"), &noise).unwrap();
    let tar = dir.join("noise.tar");
    assert!(
        Command::new("tar")
            .arg("-cf")
            .arg(&tar)
            .args(["-C", dir.to_str().unwrap(), "noise"])
            .status()
            .unwrap()
            .success()
    );
    let local = format!("localhost/prepull-progress:{}", unique_uid("p"));
    let remote = format!(
        "{}/edge/progress:{}",
        registry.host.clone(),
        unique_uid("p")
    );
    let run = |args: &[&str]| {
        let out = Command::new("podman").args(args).output().unwrap();
        assert!(out.status.success(), "podman {args:?}: {out:?}");
    };
    run(&["import", tar.to_str().unwrap(), &local]);
    run(&[
        "push",
        "--tls-verify=false",
        "--creds",
        "edge:s3cret-pw",
        &local,
        &remote,
    ]);
    rmi(&local);
    remote
}

/// Removes the image from Docker and the CA trust when dropped.
struct DockerCleanup {
    engine: String,
    image: String,
    certs: std::path::PathBuf,
}

impl Drop for DockerCleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["-H", &self.engine, "rmi", "-f", &self.image])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.certs);
    }
}
