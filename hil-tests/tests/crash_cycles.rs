//! The short crash-cycle run of the test command: 20 cycles of SIGKILL of the gateway or
//! an agent while pods are created, changed and deleted, on the real gateway, agents,
//! embedded broker and Podman with the API emulator. Nothing may be lost or run twice.
//! The long run: `crash-cycles --cycles 1000` (docs/reliability.md#crash-cycles).
//! `EDGE_CRASH_CYCLES_SEED` repeats a run.

use edge_hil_tests::crash_cycles::{CrashCycleOptions, rng::seed_from_clock, run};

#[tokio::test(flavor = "multi_thread")]
async fn twenty_crash_cycles_lose_and_duplicate_nothing() -> anyhow::Result<()> {
    let seed = std::env::var("EDGE_CRASH_CYCLES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(seed_from_clock);
    eprintln!("crash cycles seed {seed} (EDGE_CRASH_CYCLES_SEED={seed} repeats it)");
    let options = CrashCycleOptions::new(20, seed);
    let report = run(&options, |cycle| eprintln!("{cycle}")).await?;
    eprintln!("{report}");
    anyhow::ensure!(report.passed(), "{report}\n{}", report.failures.join("\n"));
    Ok(())
}
