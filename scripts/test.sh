#!/usr/bin/env bash
# The project's one test command: installs what the tests need (idempotently), builds the
# upstream Kubernetes control plane from its Go modules (cached after the first run), then
# runs formatting, lints and every test on real parts (brokers, Podman, qemu, kubectl,
# kube-apiserver/etcd/kube-controller-manager/kube-scheduler, metrics-server).
# Usage: scripts/test.sh [extra cargo test args, e.g. a test name filter]
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*"; }
t0=$(date +%s)

step "installing test dependencies"
bash scripts/install-test-deps.sh

step "starting Podman (Docker Engine API) and importing the test image"
eval "$(bash scripts/test-env.sh)"
echo "EDGE_TEST_DOCKER_HOST=$EDGE_TEST_DOCKER_HOST"

step "building the real Kubernetes control plane (Go modules; cached after the first run)"
EDGE_CONTROL_PLANE_BIN_DIR="$(bash scripts/build-control-plane.sh)"
export EDGE_CONTROL_PLANE_BIN_DIR
"$EDGE_CONTROL_PLANE_BIN_DIR/kube-apiserver" --version

step "building metrics-server (Go module; cached after the first run) for the kubectl top test"
EDGE_METRICS_SERVER_BIN_DIR="$(bash scripts/build-metrics-server.sh)"
export EDGE_METRICS_SERVER_BIN_DIR
"$EDGE_METRICS_SERVER_BIN_DIR/metrics-server" --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "building binaries (host, and static aarch64 agent for the qemu tests)"
cargo build --workspace --bins --locked
cargo build --release --locked -p edge-agent --target aarch64-unknown-linux-musl
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export EDGE_TEST_BIN_DIR="$target_dir/debug"
export EDGE_TEST_AGENT_AARCH64="$target_dir/aarch64-unknown-linux-musl/release/edge-agent"

step "cargo test"
cargo test --workspace --locked --no-fail-fast "$@"

step "all checks passed in $(( $(date +%s) - t0 )) s"
