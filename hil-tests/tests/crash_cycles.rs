//! The short crash-cycle runs of the test command: SIGKILL of the gateway or an agent
//! while pods are created, changed and deleted, on the real gateway, agents, embedded
//! broker and Podman; 20 cycles with the API emulator, 10 on the real control plane.
//! Nothing may be lost or run twice. The long run: `crash-cycles --cycles 1000`
//! (docs/reliability.md#crash-cycles). `EDGE_CRASH_CYCLES_SEED` repeats a run.

use edge_hil_tests::crash_cycles::{CrashCycleOptions, rng::seed_from_clock, run};
use edge_hil_tests::stack::ClusterBackend;

async fn cycles(count: usize, backend: ClusterBackend) -> anyhow::Result<()> {
    let seed = std::env::var("EDGE_CRASH_CYCLES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(seed_from_clock);
    eprintln!("crash cycles seed {seed} (EDGE_CRASH_CYCLES_SEED={seed} repeats it)");
    let mut options = CrashCycleOptions::new(count, seed);
    options.backend = backend;
    let report = run(&options, |cycle| eprintln!("{cycle}")).await?;
    eprintln!("{report}");
    anyhow::ensure!(report.passed(), "{report}\n{}", report.failures.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_crash_cycles_lose_and_duplicate_nothing() -> anyhow::Result<()> {
    cycles(20, ClusterBackend::Emulator).await
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_crash_cycles_on_the_real_control_plane_lose_and_duplicate_nothing()
-> anyhow::Result<()> {
    cycles(10, ClusterBackend::ControlPlane).await
}
