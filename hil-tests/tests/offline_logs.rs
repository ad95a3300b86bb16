//! The offline log cache on the real control plane: a pod printing numbered lines on a
//! device whose agent reports its new output every second (`--log-tail-interval 1s`);
//! the agent is killed, and `kubectl logs` answers from the gateway's cached tail with
//! the offline notice, an opted-out pod gets an error saying since when the device is
//! offline; a gateway restarted meanwhile still serves the tail from its store; the
//! agent comes back and the lines written during the outage are read with
//! `kubectl logs --since` spanning the outage.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use edge_hil_tests::scenario::{create, is_ready, pod_manifest, wait_node_ready, wait_pod};
use edge_hil_tests::stack::{
    AgentBuild, BrokerKind, ClusterBackend, Stack, StackOptions, eventually,
};

const DEVICE: &str = "logcache-pi-01";
const NOTICE: &str = "# edge-gateway: device logcache-pi-01 is offline since ";
/// Five numbered lines a second.
const COUNTER: &str = "i=0; while true; do echo \"line $i\"; i=$((i+1)); sleep 0.2; done";

fn numbers(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("line ")?.trim().parse().ok())
        .collect()
}

fn logs(stack: &Stack, args: &[&str]) -> Result<String> {
    let ns = stack.namespace.clone();
    let mut all = vec!["logs", "-n", &ns];
    all.extend_from_slice(args);
    Ok(stack.kubectl.run(&all)?)
}

/// `kubectl logs counter` once it is answered from the cache.
async fn cached_answer(stack: &Stack, what: &str) -> Result<String> {
    eventually(what, Duration::from_secs(60), || {
        let out = logs(stack, &["counter"]).map_err(|e| e.to_string());
        async move {
            let out = out?;
            Ok(out.starts_with(NOTICE).then_some(out))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_of_an_offline_device_reads_the_cached_tail() -> Result<()> {
    let mut options = StackOptions::fast(BrokerKind::Embedded).on(ClusterBackend::ControlPlane);
    options.agent_args = vec!["--log-tail-interval".into(), "1s".into()];
    let mut stack = Stack::start(options).await?;
    stack.start_agent(DEVICE, &[], AgentBuild::Host)?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    let on_device = [("kubernetes.io/hostname", DEVICE)];
    create(
        &stack,
        &pod_manifest("counter", &on_device, true, "Always", COUNTER),
    )
    .await?;
    let mut opted_out = pod_manifest("private", &on_device, true, "Always", COUNTER);
    opted_out.metadata.annotations =
        Some([("edge-kube.io/log-cache".to_owned(), "off".to_owned())].into());
    create(&stack, &opted_out).await?;
    for name in ["counter", "private"] {
        wait_pod(&stack, name, name, Duration::from_secs(60), is_ready).await?;
    }
    // a few reports reach the gateway
    tokio::time::sleep(Duration::from_secs(4)).await;
    let agent_log = stack.agent(DEVICE)?.log();
    let killed_at = Instant::now();
    stack.agent(DEVICE)?.kill9();

    // once the gateway sees the device offline, kubectl logs answers from the cache
    let cached = cached_answer(&stack, "kubectl logs from the cache").await?;
    // a report sent just before the kill may be routed after the broker's last will
    ensure!(cached.starts_with(NOTICE), "{cached}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cached = logs(&stack, &["counter"])?;
    let first = cached.lines().next().unwrap_or_default();
    ensure!(
        first.contains("(cached tail, not the live log)"),
        "notice: {first}"
    );
    let cached_numbers = numbers(&cached);
    ensure!(
        cached_numbers.len() >= 5
            && cached_numbers.windows(2).all(|w| w[1] == w[0] + 1)
            && cached_numbers[0] == 0,
        "the cached tail holds the numbered lines from the start in order: {cached}\n{}\n{agent_log}",
        stack.logs()
    );
    let last_cached = *cached_numbers.last().unwrap();
    let tail = logs(&stack, &["counter", "--tail=2"])?;
    ensure!(
        tail.starts_with(NOTICE) && numbers(&tail) == [last_cached - 1, last_cached],
        "--tail=2 of the cache: {tail}"
    );

    // an opted-out pod: an error that says since when the device is offline
    let ns = stack.namespace.clone();
    let out = stack.kubectl.output(&["logs", "-n", &ns, "private"])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && stderr.contains("is offline since")
            && stderr.contains("opted out"),
        "opted-out pod: {stderr} {}",
        String::from_utf8_lossy(&out.stdout)
    );

    // a gateway restarted while the device is offline still has the tail (its store)
    stack.gateway.restart()?;
    let restarted = cached_answer(&stack, "the cached tail after a gateway restart").await?;
    ensure!(
        restarted.contains("is offline since before this gateway started")
            && numbers(&restarted) == cached_numbers,
        "after a gateway restart: {restarted}\nbefore: {cached}"
    );

    // the outage goes on; then the device comes back
    tokio::time::sleep(Duration::from_secs(5)).await;
    stack.agent(DEVICE)?.restart()?;
    wait_node_ready(&stack, DEVICE, "True", Duration::from_secs(60)).await?;
    let live = eventually("the live log again", Duration::from_secs(60), || {
        // from 3 s before the agent was killed, however long this takes
        let since = format!("--since={}s", killed_at.elapsed().as_secs() + 3);
        let out = logs(&stack, &["counter", &since]).map_err(|e| e.to_string());
        async move {
            let out = out?;
            Ok((!out.starts_with("# edge-gateway")).then_some(out))
        }
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", stack.logs()))?;
    let live_numbers = numbers(&live);
    // the outage lasted more than 5 s: 25 lines or more were written while offline
    let outage: Vec<u64> = (last_cached + 1..=last_cached + 25).collect();
    ensure!(
        outage.iter().all(|n| live_numbers.contains(n))
            && live_numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "--since across the outage holds every line written while offline \
         ({}..={}): {live}",
        last_cached + 1,
        last_cached + 25
    );
    Ok(())
}
