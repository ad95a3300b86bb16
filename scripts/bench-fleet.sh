#!/usr/bin/env bash
# Fleet benchmark: the real edge-gateway against 100, 1,000 and 10,000 simulated
# devices, on the embedded broker and on Mosquitto, then renders docs/benchmarks.md
# (tables) and docs/benchmarks.png (plot) from the results.
#
#   scripts/bench-fleet.sh                      # all sizes (about 25 minutes on 2 cores)
#   BENCH_SIZES=100,1000 scripts/bench-fleet.sh # fewer sizes
#   BENCH_BROKERS=mosquitto scripts/bench-fleet.sh
#   scripts/bench-fleet.sh --control-plane      # against the real Kubernetes control plane
#
# --control-plane (or BENCH_CONTROL_PLANE=1): instead of the API emulator, the upstream
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler (built by
# scripts/build-control-plane.sh, started fresh for each run), the gateway under its own
# ServiceAccount; the CPU and RSS of each component are recorded as well. Its rows go into
# the same docs/benchmarks.md tables next to the emulator rows (a run replaces only the
# rows of its own sizes, brokers and API); its plot goes to
# <target>/fleet-bench/benchmarks-controlplane.png, docs/benchmarks.png is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

control_plane=0
case "${BENCH_CONTROL_PLANE:-0}" in 1 | true | yes) control_plane=1 ;; esac
for arg in "$@"; do
  case "$arg" in
    --control-plane) control_plane=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-fleet.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
sizes=${BENCH_SIZES:-100,1000,10000}
brokers=${BENCH_BROKERS:-embedded,mosquitto}

# The cargo target directory (CARGO_TARGET_DIR or a cargo config's build.target-dir).
target=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p') || true
[ -n "$target" ] || target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$PWD/$target ;; esac

bash scripts/install-test-deps.sh
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib
eval "$(bash scripts/test-env.sh)"

echo "==> building the gateway and the benchmark (profile bench-fleet)"
cargo build --locked --profile bench-fleet -p edge-gateway -p edge-hil-tests --bin edge-gateway --bin fleet-bench
export EDGE_TEST_BIN_DIR=$target/bench-fleet

args=(--devices "$sizes" --brokers "$brokers")
if [ "$control_plane" = 1 ]; then
  echo "==> building (or reusing) the real Kubernetes control plane"
  EDGE_CONTROL_PLANE_BIN_DIR=$(bash scripts/build-control-plane.sh)
  export EDGE_CONTROL_PLANE_BIN_DIR
  echo "    $("$EDGE_CONTROL_PLANE_BIN_DIR/kube-apiserver" --version) in $EDGE_CONTROL_PLANE_BIN_DIR"
  out=$target/fleet-bench/results-controlplane.jsonl
  png=$target/fleet-bench/benchmarks-controlplane.png
  args+=(--control-plane --work-dir "$target/fleet-bench/work")
else
  out=$target/fleet-bench/results.jsonl
  png=docs/benchmarks.png
  args+=(--work-dir "$target/fleet-bench/work")
fi

# 10,000 devices means 10,000 connections in the simulator and in the broker (and in the
# gateway with the embedded broker): raise the open-files limit as far as allowed.
ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)"
mkdir -p "$(dirname "$out")"
rm -f "$out"
status=0
"$target/bench-fleet/fleet-bench" "${args[@]}" --out "$out" || status=$?
if [ -s "$out" ]; then
  python3 scripts/render-benchmarks.py "$out" docs/benchmarks.md "$png"
  echo "==> docs/benchmarks.md and $png updated from $out"
fi
[ "$status" = 0 ] || echo "==> fleet-bench failed (status $status); the runs that completed are in $out" >&2
exit "$status"
