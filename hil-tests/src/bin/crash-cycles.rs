//! Crash cycles: SIGKILL of an agent or the gateway at random points while pods are
//! created, changed and deleted; after each cycle, checks that the API's pod statuses
//! converge to what the devices run, that no pod runs twice and that no transition is
//! lost. See `--help` and docs/reliability.md#crash-cycles.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use edge_hil_tests::crash_cycles::{CrashCycleOptions, rng::seed_from_clock, run};
use edge_hil_tests::stack::ClusterBackend;

/// Crash cycles on a real stack: the edge-gateway binary with its embedded MQTT broker
/// and store, real edge-agent processes running pods on Podman, and the Kubernetes API
/// emulator (or, with --control-plane, the real kube-apiserver, etcd, controller manager
/// and scheduler).
///
/// Each cycle creates, changes (image) and deletes pods and, at a random point meanwhile,
/// SIGKILLs the gateway or one agent, keeps it down for a random time and starts it again
/// on the same store. It then polls until the API's pod statuses match what Podman runs
/// (phase, Ready, container id, state, exit code, restart count, image), every deleted pod
/// is gone from the API and the device, and every other pod runs its current spec. It
/// prints one line per cycle and a summary: cycles, lost transitions (what had not
/// converged after --convergence-timeout), duplicate pods (a pod uid with two running
/// containers of one name), median and longest convergence time.
///
/// The run stops at the first cycle that loses or duplicates something and exits 1;
/// repeat it with the printed --seed. Needs: `eval "$(scripts/test-env.sh)"` (Podman and
/// the test image) and `cargo build --workspace --bins` (the gateway and agent binaries,
/// found in $EDGE_TEST_BIN_DIR or target/debug). EDGE_E2E_KEEP=1 keeps the stack's files
/// (logs, stores) for a look afterwards.
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Number of cycles.
    #[arg(long, default_value_t = 100)]
    cycles: usize,
    /// Seed of every random choice (printed at the start; default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of devices (edge-agent processes).
    #[arg(long, default_value_t = 2)]
    devices: usize,
    /// Run against the real Kubernetes control plane (built by
    /// scripts/build-control-plane.sh, or from $EDGE_CONTROL_PLANE_BIN_DIR) instead of the
    /// API emulator.
    #[arg(long)]
    control_plane: bool,
    /// Live pods the workload keeps at most.
    #[arg(long, default_value_t = 6)]
    max_live_pods: usize,
    /// Latest SIGKILL after a cycle's first pod operation, milliseconds.
    #[arg(long, default_value_t = 1500)]
    max_kill_delay_ms: u64,
    /// Longest time a killed process stays down, milliseconds.
    #[arg(long, default_value_t = 2000)]
    max_downtime_ms: u64,
    /// Seconds a cycle may take to converge; what is still off then is lost.
    #[arg(long, default_value_t = 90)]
    convergence_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(seed_from_clock);
    let mut options = CrashCycleOptions::new(args.cycles, seed);
    options.devices = args.devices.max(1);
    options.max_live_pods = args.max_live_pods.max(1);
    options.max_kill_delay = Duration::from_millis(args.max_kill_delay_ms);
    options.max_downtime = Duration::from_millis(args.max_downtime_ms);
    options.convergence_timeout = Duration::from_secs(args.convergence_timeout);
    if args.control_plane {
        options.backend = ClusterBackend::ControlPlane;
    }
    println!(
        "crash cycles: {} cycle(s), seed {seed}, {} device(s), {}",
        options.cycles,
        options.devices,
        if args.control_plane {
            "real control plane"
        } else {
            "API emulator"
        }
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = runtime.block_on(run(&options, |cycle| println!("{cycle}")));
    match report {
        Ok(report) => {
            for failure in &report.failures {
                eprintln!("{failure}");
            }
            println!("{report}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("crash cycles could not run: {e}");
            ExitCode::from(2)
        }
    }
}
