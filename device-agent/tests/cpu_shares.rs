//! CPU requests become CPU shares on real Podman, as the kubelet maps them: a container
//! created through the agent's create effect with a 250m request gets 256 shares, one
//! without a request the minimum of 2.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use edge_agent::container_runtime::ContainerRuntime;
use edge_agent::docker_runtime::DockerRuntime;
use edge_agent::engine_api_get::{Endpoint, get_json};
use edge_agent::pod_lifecycle::{Effect, Outcome, SandboxRole};
use edge_agent::runtime_effects::run_effect;
use edge_protocol::{ContainerSpec, PodSpec, ResourceRequirements};

#[tokio::test(flavor = "multi_thread")]
async fn cpu_requests_become_the_kubelets_cpu_shares() {
    let host = docker_host();
    let device = format!("node-pressure-shares-{}", std::process::id());
    let runtime = DockerRuntime::connect(&host, &device).unwrap();
    let endpoint = Endpoint::parse(&host);
    let container = |name: &str, request: Option<u64>| ContainerSpec {
        name: name.into(),
        image: test_image(),
        command: vec!["sleep".into(), "60".into()],
        resources: ResourceRequirements {
            cpu_request_millis: request,
            ..Default::default()
        },
        ..Default::default()
    };
    let pod = Arc::new(PodSpec {
        uid: format!("{device}-uid"),
        namespace: "default".into(),
        name: "shares".into(),
        containers: vec![container("requested", Some(250)), container("none", None)],
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    for (name, want) in [("requested", 256), ("none", 2)] {
        let effect = Effect::Create {
            key: (pod.uid.clone(), name.to_owned()),
            pod: pod.clone(),
            restart_count: 0,
            spec_hash: "h".into(),
            share: None,
            sandbox: SandboxRole::Own,
            gpus: Vec::new(),
        };
        let outcome = run_effect(&runtime, &device, dir.path(), effect, &tx).await;
        let Some(Outcome::Created { id, .. }) = outcome else {
            panic!("create {name}: {outcome:?}");
        };
        let (_, inspect) = get_json(&endpoint, &format!("/containers/{id}/json"))
            .await
            .unwrap();
        let shares = inspect["HostConfig"]["CpuShares"].as_u64();
        runtime.remove(&id).await.unwrap();
        assert_eq!(shares, Some(want), "{name}: {}", inspect["HostConfig"]);
    }
}
