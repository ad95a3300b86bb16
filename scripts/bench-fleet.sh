#!/usr/bin/env bash
# Fleet benchmark: the real edge-gateway against 100, 1,000 and 10,000 simulated
# devices, on the embedded broker and on Mosquitto, then renders docs/benchmarks.md
# (table) and docs/benchmarks.png (plot) from the results.
#
#   scripts/bench-fleet.sh                      # all sizes (about 25 minutes on 2 cores)
#   BENCH_SIZES=100,1000 scripts/bench-fleet.sh # fewer sizes
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${BENCH_SIZES:-100,1000,10000}
out=target/fleet-bench/results.jsonl

bash scripts/install-test-deps.sh
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib
eval "$(bash scripts/test-env.sh)"

echo "==> building the gateway and the benchmark (profile bench-fleet)"
cargo build --locked --profile bench-fleet -p edge-gateway -p edge-hil-tests --bin edge-gateway --bin fleet-bench
export EDGE_TEST_BIN_DIR=$PWD/target/bench-fleet

# 10,000 devices means 10,000 connections in the simulator and in the broker (and in the
# gateway with the embedded broker): raise the open-files limit as far as allowed.
ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)"
rm -f "$out"
target/bench-fleet/fleet-bench --devices "$sizes" --brokers embedded,mosquitto --out "$out"
python3 scripts/render-benchmarks.py "$out" docs/benchmarks.md docs/benchmarks.png
echo "==> docs/benchmarks.md and docs/benchmarks.png updated"
