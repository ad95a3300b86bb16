#!/usr/bin/env bash
# The project's one test command: installs what the tests need (idempotently), builds the
# upstream Kubernetes control plane from its Go modules (cached after the first run), then
# runs formatting, lints and every test on real parts (brokers, Podman, qemu, kubectl,
# kube-apiserver/etcd/kube-controller-manager/kube-scheduler, metrics-server).
# Usage: scripts/test.sh [extra cargo test args, e.g. a test name filter]
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { printf '\n==> [%d s] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

step "installing test dependencies"
bash scripts/install-test-deps.sh

step "starting Podman (Docker Engine API) and importing the test image"
eval "$(bash scripts/test-env.sh)"
echo "EDGE_TEST_DOCKER_HOST=$EDGE_TEST_DOCKER_HOST"

step "removing pod containers that earlier runs left behind"
# The machine outlives a run: a run cut off (or a test that failed its cleanup) leaves
# containers, and one Podman cannot list (a half-removed one) fails every listing of
# the next run. Infra containers go after the containers that joined them, hence rounds;
# one at a time, because one that cannot be removed makes a `rm` of several fail for
# all. Podman 4.3 leaves an infra container removed under a joining one "Removing" with
# its storage gone: the API then answers "container not known", the local CLI removes it.
# That removal frees the container's lock behind the API service's back, after which
# the service fails to start containers ("write child: broken pipe"): it is restarted.
removed_locally=0
for engine in "podman --url $EDGE_TEST_DOCKER_HOST" "docker -H $EDGE_TEST_DOCKER_ENGINE_HOST"; do
  for _ in 1 2 3; do
    ids=$($engine ps -aq --filter label=io.edge-kube.managed=true)
    [ -z "$ids" ] && break
    for id in $ids; do
      $engine rm -f "$id" >/dev/null 2>&1 \
        || { [ "${engine%% *}" = podman ] && podman rm -f "$id" >/dev/null 2>&1 \
             && removed_locally=1; } || true
    done
  done
  if [ "${engine%% *}" = podman ] && [ "$removed_locally" = 1 ]; then
    echo "restarting the Podman API service after a local removal"
    pkill -f "podman system service --time=0 ${EDGE_TEST_DOCKER_HOST}" || true
    sleep 1
    eval "$(bash scripts/test-env.sh)"
  fi
  left=$($engine ps -aq --filter label=io.edge-kube.managed=true | wc -l)
  echo "${engine%% *}: $left left"
  [ "$left" -eq 0 ] || { echo "cannot remove them; see '${engine} ps -a'" >&2; exit 1; }
done

step "building the real Kubernetes control plane (Go modules; cached after the first run)"
EDGE_CONTROL_PLANE_BIN_DIR="$(bash scripts/build-control-plane.sh)"
export EDGE_CONTROL_PLANE_BIN_DIR
"$EDGE_CONTROL_PLANE_BIN_DIR/kube-apiserver" --version

step "building metrics-server (Go module; cached after the first run) for the kubectl top test"
EDGE_METRICS_SERVER_BIN_DIR="$(bash scripts/build-metrics-server.sh)"
export EDGE_METRICS_SERVER_BIN_DIR
"$EDGE_METRICS_SERVER_BIN_DIR/metrics-server" --version

step "building the Debian arm64 VM image for the boot test (debootstrap; cached after the first run)"
EDGE_TEST_VM_IMAGE_DIR="$(bash scripts/build-vm-image.sh)"
export EDGE_TEST_VM_IMAGE_DIR
echo "EDGE_TEST_VM_IMAGE_DIR=$EDGE_TEST_VM_IMAGE_DIR"

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

# The armv7 agent for qemu-arm, packaging and flashing tests: its standard library is
# built from source by the pinned nightly (a few minutes once, then cached in the target
# directory); the armv7-test profile (no LTO) rebuilds a changed agent in well under a
# minute where the release profile's LTO takes minutes. Boards get the release build.
step "building the static armv7 agent (std from source, cached after the first run)"
EDGE_TEST_AGENT_ARMV7="$(bash scripts/build-agent-armv7.sh --profile armv7-test)"
export EDGE_TEST_AGENT_ARMV7

if [ $# -gt 0 ]; then
  step "cargo test $*"
  cargo test --workspace --locked --no-fail-fast "$@"
else
  step "building the tests"
  cargo test --workspace --locked --no-run
  # The slowest end-to-end suites spend their time waiting (leases, node lifecycle,
  # broker cuts, VM boots), not computing: they run in two more lanes beside the others.
  # Suites in different lanes share one Podman, so their device ids must differ (the
  # test bed's agents claim theirs and fail loudly otherwise): suites built on one
  # scenario module share ids and stay in one lane (e2e_embedded and e2e_mosquitto in
  # the third, e2e_streams and e2e_streams_translated in the second).
  second_lane=(autonomy fault_injection enrollment_secure_e2e kubectl_top crash_cycles
    device_retirement node_pressure
    e2e_streams e2e_streams_translated hostile_devices
    clustered_broker gateway_sharding certificate_rotation)
  third_lane=(e2e_embedded e2e_mosquitto agent_rollout image_prepull zero_touch_enrollment
    vm_boot)
  # Every cargo call selects the whole workspace, and lanes pick test targets by name:
  # a narrower package selection (-p, --exclude) unifies features differently and
  # rebuilds dependencies while the other lanes run.
  first_lane=(--lib --bins)
  for f in protocol/tests/*.rs gateway/tests/*.rs device-agent/tests/*.rs hil-tests/tests/*.rs; do
    name="$(basename "$f" .rs)"
    [[ " ${second_lane[*]} ${third_lane[*]} " == *" $name "* ]] || first_lane+=(--test "$name")
  done
  lane_pids=()
  lane_logs=()
  for lane in second third; do
    declare -n suites="${lane}_lane"
    log="$target_dir/test-$lane-lane.log"
    step "cargo test, $lane lane: ${suites[*]} (output in $log, printed when done)"
    (
      cargo test --workspace --locked --no-fail-fast \
        $(printf -- '--test %s ' "${suites[@]}") >"$log" 2>&1
    ) &
    lane_pids+=($!)
    lane_logs+=("$log")
    unset -n suites
  done
  trap 'kill "${lane_pids[@]}" 2>/dev/null || true' EXIT
  step "cargo test, first lane: everything else"
  status=0
  cargo test --workspace --locked --no-fail-fast "${first_lane[@]}" || status=1
  cargo test --workspace --locked --doc || status=1
  step "waiting for the other lanes"
  for i in "${!lane_pids[@]}"; do
    wait "${lane_pids[$i]}" || status=1
    cat "${lane_logs[$i]}"
  done
  [ "$status" -eq 0 ] || { echo "tests failed (first lane above the other lanes' logs)" >&2; exit 1; }
fi

step "all checks passed in $(( $(date +%s) - t0 )) s"
