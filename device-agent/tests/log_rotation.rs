//! Container log rotation on real Podman: a chatty container created with the agent's
//! log settings (`max-size` 1 MiB, 2 files) keeps its log file bounded while it writes
//! about 6 MB; the same container without them keeps everything (so the bound is ours).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use edge_agent::container_runtime::{ContainerRuntime, CreateContainer};
use edge_agent::docker_runtime::DockerRuntime;
use edge_agent::engine_api_get::{Endpoint, get_json};
use edge_agent::resource_policy::LogRotation;

/// About 6 MB of output (100,000 lines of 60 bytes), then `done`, then sleep.
const CHATTY: &str = "i=0; while [ $i -lt 100000 ]; do echo \"line $i aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"; i=$((i+1)); done; echo done; sleep 600";
const MAX_SIZE: u64 = 1 << 20;
const MAX_FILES: u32 = 2;

/// Runs the chatty container until it wrote everything; returns its id and the size
/// of its log file(s) and the log config the runtime reports.
async fn run_chatty(rotation: Option<LogRotation>, name: &str) -> (String, u64, serde_json::Value) {
    let host = docker_host();
    let runtime = DockerRuntime::connect(&host, "node-pressure-logs")
        .unwrap()
        .with_log_rotation(rotation);
    let endpoint = Endpoint::parse(&host);
    let _ = runtime.remove(name).await;
    let spec = CreateContainer {
        image: test_image(),
        command: vec!["/bin/sh".into(), "-c".into(), CHATTY.into()],
        ..Default::default()
    };
    let id = runtime.create(&spec).await.unwrap();
    // name it for cleanup by a later run
    let _ = runtime
        .client()
        .rename_container(
            &id,
            bollard::query_parameters::RenameContainerOptions {
                name: name.to_owned(),
            },
        )
        .await;
    runtime.start(&id).await.unwrap();
    // `ps` inside: the writer loop is gone once `done` was printed and sleep runs
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, out) = runtime
            .exec(
                &id,
                &["/bin/sh".into(), "-c".into(), "ps".into()],
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(code, 0, "{out}");
        if out.contains("sleep 600") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the chatty container did not finish: {out}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, inspect) = get_json(&endpoint, &format!("/containers/{id}/json"))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let log_path = std::path::PathBuf::from(inspect["LogPath"].as_str().unwrap());
    // the log file and any rotated siblings (`<name>.1`, ...)
    let stem = log_path.file_name().unwrap().to_string_lossy().into_owned();
    let size: u64 = std::fs::read_dir(log_path.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&stem))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    runtime.remove(&id).await.unwrap();
    (id, size, inspect["HostConfig"]["LogConfig"].clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chatty_containers_log_stays_within_the_rotation_bound() {
    let rotation = LogRotation {
        max_size_bytes: MAX_SIZE,
        max_files: MAX_FILES,
    };
    let (_, bounded, config) = run_chatty(Some(rotation), "node-pressure-logs-bounded").await;
    assert_eq!(config["Type"], "json-file", "{config}");
    assert!(
        bounded <= MAX_SIZE * u64::from(MAX_FILES),
        "log files hold {bounded} bytes, over {MAX_FILES} x {MAX_SIZE}"
    );
    let (_, unbounded, _) = run_chatty(None, "node-pressure-logs-unbounded").await;
    assert!(
        unbounded > 4 * MAX_SIZE,
        "without rotation the log holds all of the output: {unbounded} bytes"
    );
    eprintln!("log files: {bounded} bytes with rotation, {unbounded} without");
}
