//! Crash cycles: SIGKILL of an agent or of the gateway at random points while pods are
//! created, changed and deleted, then a check that nothing was lost or duplicated.
//!
//! The stack is real: the `edge-gateway` binary with its embedded broker and its store,
//! `edge-agent` processes running pods on Podman (their state directories survive
//! kills, like a device's disk), and the API emulator or, with
//! [`ClusterBackend::ControlPlane`], the real kube-apiserver, etcd, controller manager
//! and scheduler.
//!
//! One cycle, every random choice drawn from the seed:
//! 1. plan one to four operations ([`workload`]): create a service or a job, change a
//!    service's image, delete a pod; apply them with 0-300 ms between them;
//! 2. meanwhile, 0 to `max_kill_delay` after the first operation, SIGKILL the gateway
//!    (half the cycles) or one agent, keep it down 0 to `max_downtime`, and start it
//!    again on its store;
//! 3. poll the API and the runtime every 250 ms until [`checks::check`] finds nothing
//!    (the convergence time, measured from the restart or the last operation, whichever
//!    came later); a pod seen running twice at any poll is a duplicate; whatever is still
//!    found after `convergence_timeout` is lost.
//!
//! The run stops at the first cycle that loses or duplicates something, with the logs'
//! tails in [`CrashReport::failures`].

pub mod checks;
pub mod device_truth;
mod report;
pub mod rng;
pub mod workload;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;

use crate::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackError, StackOptions, eventually,
};

pub use checks::{Finding, check};
pub use report::{CrashReport, CycleOutcome};
use rng::SeededRng;
use workload::{Operation, Workload};

/// Why a run could not be carried out (as opposed to what it found, in the report).
#[derive(Debug, thiserror::Error)]
pub enum CrashCycleError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error("kubernetes: {0}")]
    Kubernetes(String),
    #[error("container runtime: {0}")]
    Runtime(String),
    #[error("{0}")]
    Other(String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct CrashCycleOptions {
    pub cycles: usize,
    pub seed: u64,
    /// Agents (devices), each a real `edge-agent` process.
    pub devices: usize,
    pub backend: ClusterBackend,
    /// Live pods the workload keeps at most.
    pub max_live_pods: usize,
    /// Latest SIGKILL after a cycle's first operation.
    pub max_kill_delay: Duration,
    /// Longest time a killed process stays down.
    pub max_downtime: Duration,
    /// How long a cycle may take to converge before what is left counts as lost.
    pub convergence_timeout: Duration,
}

impl CrashCycleOptions {
    pub fn new(cycles: usize, seed: u64) -> Self {
        Self {
            cycles,
            seed,
            devices: 2,
            backend: ClusterBackend::Emulator,
            max_live_pods: 6,
            max_kill_delay: Duration::from_millis(1500),
            max_downtime: Duration::from_millis(2000),
            convergence_timeout: Duration::from_secs(90),
        }
    }
}

const POLL: Duration = Duration::from_millis(250);
/// Second tag of the test image: an image change without a registry.
const SECOND_TAG: &str = "crash-cycles-b";

/// Runs the cycles; `progress` sees every cycle's outcome as it ends.
pub async fn run(
    options: &CrashCycleOptions,
    mut progress: impl FnMut(&CycleOutcome),
) -> Result<CrashReport, CrashCycleError> {
    let docker_host =
        std::env::var("EDGE_TEST_DOCKER_HOST").map_err(|_| StackError::MissingTool {
            tool: "a container runtime (EDGE_TEST_DOCKER_HOST)".to_owned(),
            hint: "run `eval \"$(scripts/test-env.sh)\"` to start Podman's Docker API".to_owned(),
        })?;
    let image =
        std::env::var("EDGE_TEST_IMAGE").unwrap_or_else(|_| "localhost/busybox:test".to_owned());
    let second = second_image(&docker_host, &image).await?;
    let mut stack =
        Stack::start(StackOptions::fast(BrokerKind::Embedded).on(options.backend)).await?;
    let devices: Vec<String> = (1..=options.devices)
        .map(|i| format!("{}-d{i}", stack.namespace))
        .collect();
    for id in &devices {
        stack.start_agent(id, &[], AgentBuild::Host)?;
    }
    let client = stack.client().await?;
    wait_nodes_ready(&stack, &client, &devices).await?;
    let pods: Api<Pod> = Api::namespaced(client, &stack.namespace);
    let (key, value) = stack.pod_node_selector();
    let mut workload = Workload::new(
        [image, second],
        options.max_live_pods,
        (key.to_owned(), value.to_owned()),
    );
    let mut rng = SeededRng::new(options.seed);
    let mut report = CrashReport {
        seed: options.seed,
        backend: match options.backend {
            ClusterBackend::Emulator => "emulator".to_owned(),
            ClusterBackend::ControlPlane => "control plane".to_owned(),
        },
        devices: options.devices,
        cycles_planned: options.cycles,
        ..CrashReport::default()
    };
    for index in 1..=options.cycles {
        let (outcome, back) = cycle(
            index,
            options,
            &mut rng,
            &mut stack,
            &devices,
            &pods,
            &docker_host,
            workload,
        )
        .await?;
        workload = back;
        report.record(&outcome);
        progress(&outcome);
        if outcome.converged_in.is_none() || !outcome.duplicates.is_empty() {
            report.failures.push(format!("{outcome}\n{}", stack.logs()));
            break;
        }
        workload.forget_deleted();
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn cycle(
    index: usize,
    options: &CrashCycleOptions,
    rng: &mut SeededRng,
    stack: &mut Stack,
    devices: &[String],
    pods: &Api<Pod>,
    docker_host: &str,
    mut workload: Workload,
) -> Result<(CycleOutcome, Workload), CrashCycleError> {
    let operations = workload.plan(rng);
    let gaps: Vec<Duration> = operations
        .iter()
        .map(|_| Duration::from_millis(rng.between(0, 300)))
        .collect();
    let kill_after = Duration::from_millis(rng.between(0, millis(options.max_kill_delay)));
    let downtime = Duration::from_millis(rng.between(0, millis(options.max_downtime)));
    // Half the kills hit the gateway, half one of the agents.
    let victim = match rng.chance(50) {
        true => "gateway".to_owned(),
        false => rng
            .pick(devices)
            .cloned()
            .unwrap_or_else(|| "gateway".to_owned()),
    };
    let api = pods.clone();
    let ops = operations.clone();
    let apply = tokio::spawn(async move {
        for (op, gap) in ops.iter().zip(gaps) {
            if let Err(e) = workload.apply(&api, op).await {
                return (workload, Err(e));
            }
            tokio::time::sleep(gap).await;
        }
        (workload, Ok(()))
    });
    tokio::time::sleep(kill_after).await;
    kill(stack, &victim)?;
    tokio::time::sleep(downtime).await;
    restart(stack, &victim)?;
    let (workload, applied) = apply
        .await
        .map_err(|e| CrashCycleError::Other(format!("the workload task failed: {e}")))?;
    applied?;
    // Both the restart and the last operation are behind us: the clock starts here.
    let from = Instant::now();
    let converged = converge(
        pods,
        docker_host,
        &workload,
        options.convergence_timeout,
        from,
    )
    .await?;
    let outcome = CycleOutcome {
        index,
        victim,
        kill_after,
        downtime,
        operations: operations.iter().map(Operation::to_string).collect(),
        converged_in: converged.took,
        duplicates: converged.duplicates,
        lost: converged.left,
        pending_when_slow: converged.pending_when_slow,
    };
    Ok((outcome, workload))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn kill(stack: &mut Stack, victim: &str) -> Result<(), CrashCycleError> {
    if victim == "gateway" {
        stack.gateway.kill9();
    } else {
        stack.agent(victim)?.kill9();
    }
    Ok(())
}

fn restart(stack: &mut Stack, victim: &str) -> Result<(), CrashCycleError> {
    // Restarting the gateway waits (blocking) for its ready file.
    tokio::task::block_in_place(|| {
        if victim == "gateway" {
            stack.gateway.restart()
        } else {
            stack.agent(victim)?.restart()
        }
    })?;
    Ok(())
}

/// How a cycle's convergence went.
struct Converged {
    /// Time to the first poll with no finding but duplicates; `None` on timeout.
    took: Option<Duration>,
    /// Pods seen running twice at any poll.
    duplicates: Vec<Finding>,
    /// Other findings of the last poll (none when converged).
    left: Vec<Finding>,
    /// Findings of the first poll after [`SLOW`], for a cycle slower than that.
    pending_when_slow: Vec<Finding>,
}

/// A cycle slower than this reports what it was still waiting for then.
const SLOW: Duration = Duration::from_secs(5);

/// Polls until a check finds nothing but duplicates (which are collected on the way).
async fn converge(
    pods: &Api<Pod>,
    docker_host: &str,
    workload: &Workload,
    timeout: Duration,
    from: Instant,
) -> Result<Converged, CrashCycleError> {
    let mut duplicates: Vec<Finding> = Vec::new();
    let mut pending_when_slow: Option<Vec<Finding>> = None;
    loop {
        let api: Vec<checks::ApiPod> = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| CrashCycleError::Kubernetes(format!("listing pods: {e}")))?
            .items
            .iter()
            .map(checks::ApiPod::from_pod)
            .collect();
        let namespace = pods.namespace().unwrap_or_default();
        let runtime = device_truth::runtime_containers(docker_host, namespace).await?;
        let findings = check(workload, &api, &runtime);
        let (dups, rest): (Vec<Finding>, Vec<Finding>) =
            findings.into_iter().partition(Finding::is_duplicate);
        for d in dups {
            if !duplicates.iter().any(|x| x.subject() == d.subject()) {
                duplicates.push(d);
            }
        }
        let took = from.elapsed();
        if rest.is_empty() || took >= timeout {
            return Ok(Converged {
                took: rest.is_empty().then_some(took),
                duplicates,
                left: rest,
                pending_when_slow: pending_when_slow.unwrap_or_default(),
            });
        }
        if took >= SLOW && pending_when_slow.is_none() {
            pending_when_slow = Some(rest);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Tags the test image a second time (same content, another name) for image changes.
async fn second_image(docker_host: &str, image: &str) -> Result<String, CrashCycleError> {
    let repo = image.rsplit_once(':').map_or(image, |(repo, _)| repo);
    let second = format!("{repo}:{SECOND_TAG}");
    let out = tokio::process::Command::new("podman")
        .args(["--url", docker_host, "tag", image, &second])
        .output()
        .await
        .map_err(|e| CrashCycleError::Runtime(format!("running podman (is it installed?): {e}")))?;
    if !out.status.success() {
        return Err(CrashCycleError::Runtime(format!(
            "podman tag {image} {second}: {} (is the test image there? `eval \"$(scripts/test-env.sh)\"` builds it)",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(second)
}

async fn wait_nodes_ready(
    stack: &Stack,
    client: &kube::Client,
    devices: &[String],
) -> Result<(), CrashCycleError> {
    let nodes: Api<Node> = Api::all(client.clone());
    for id in devices {
        let nodes = nodes.clone();
        eventually(&format!("node {id} Ready"), Duration::from_secs(60), || {
            let nodes = nodes.clone();
            async move {
                let node = nodes.get_opt(id).await.map_err(|e| e.to_string())?;
                let ready = node
                    .and_then(|n| n.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                Ok(ready.then_some(()))
            }
        })
        .await
        .map_err(|e| CrashCycleError::Other(format!("{e}\n{}", stack.logs())))?;
    }
    Ok(())
}
