#!/usr/bin/env bash
# The project's one test command: installs what the tests need (idempotently), then
# runs formatting, lints and every test on real parts (brokers, Podman, qemu, kubectl).
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

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (-D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "building binaries (host, and static aarch64 agent for the qemu tests)"
cargo build --workspace --bins --locked
cargo build --release --locked -p edge-agent --target aarch64-unknown-linux-musl
export EDGE_TEST_BIN_DIR="$PWD/target/debug"
export EDGE_TEST_AGENT_AARCH64="$PWD/target/aarch64-unknown-linux-musl/release/edge-agent"

step "cargo test"
cargo test --workspace --locked --no-fail-fast "$@"

step "all checks passed in $(( $(date +%s) - t0 )) s"
