#!/usr/bin/env bash
# The main job on embedded defaults, on this machine:
#   - a Kubernetes API (see --help for which one)
#   - edge-gateway with its embedded MQTT broker and sled store
#   - one local edge-agent (device "sandbox-pi") running pods on Podman
#   - examples/pod-on-device.yaml applied, and the kubectl commands to watch it
# Ctrl-C stops everything it started (containers of the sandbox pod included).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

usage() {
  cat <<'EOF'
Usage: scripts/sandbox.sh [--control-plane] [--help]

Runs edge-gateway (embedded MQTT broker and store), one local edge-agent as device
"sandbox-pi" running pods on Podman, and applies examples/pod-on-device.yaml. It prints
the kubectl commands to follow along; Ctrl-C stops everything it started.

The Kubernetes API it runs against, first match wins:
  1. the cluster $KUBECONFIG points at, if it answers (kind, k3s, ...); the gateway
     uses that kubeconfig. Set SANDBOX_NODE_ADDRESS (default: this host's first address)
     to where that API server reaches the gateway's kubelet API, and
     SANDBOX_KUBELET_CLIENT_CA to the CA of the client certificate it presents.
  2. --control-plane (or EDGE_SANDBOX_CONTROL_PLANE=1): the real upstream Kubernetes
     control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler),
     built from Go modules by scripts/build-control-plane.sh (needs Go; the first build
     takes several minutes, then it is reused) and run by hil-controlplane. The gateway
     runs as its own ServiceAccount under the shipped ClusterRole (gateway.kubeconfig);
     you get a cluster-admin kubeconfig (admin.kubeconfig) and use it with the control
     plane's own kubectl. The node lifecycle controller's grace period is the upstream
     default (50 s).
  3. otherwise the API emulator from hil-tests (hil-apiserver): starts in a second, no
     Go needed, not a full Kubernetes (no controllers beyond what the tests need).

Environment:
  SANDBOX_DIR            working directory, logs and kubeconfigs (default .sandbox)
  SANDBOX_DEVICE         device id of the local agent (default sandbox-pi)
  SANDBOX_SKIP_INSTALL=1 do not install system packages (Podman, test image)
  CARGO_TARGET_DIR       honoured: binaries are taken from the cargo target directory
EOF
}

control_plane=0
case "${EDGE_SANDBOX_CONTROL_PLANE:-0}" in 1 | true | yes) control_plane=1 ;; esac
for arg in "$@"; do
  case "$arg" in
    --control-plane) control_plane=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "sandbox.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
  esac
done

dir=${SANDBOX_DIR:-$repo/.sandbox}
device=${SANDBOX_DEVICE:-sandbox-pi}
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
pids=()
kubectl_bin=kubectl

cleanup() {
  trap - INT TERM EXIT
  say "stopping the sandbox"
  if [ -n "${kubeconfig:-}" ]; then
    # Every pod on the sandbox device, so the agent stops their containers.
    "$kubectl_bin" --kubeconfig "$kubeconfig" delete pods --all-namespaces \
      --field-selector "spec.nodeName=$device" --wait=false >/dev/null 2>&1 || true
    sleep 3
  fi
  # Reverse start order: agent, gateway, then the API (hil-controlplane stops its
  # components on SIGTERM; they also die with it).
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # The agent stops the pods' containers when they are deleted; if it was already gone,
  # remove what is left of the sandbox device's containers.
  ids=$(podman ps -aq --filter label=io.edge-kube.managed=true --filter "label=io.edge-kube.device=$device" 2>/dev/null || true)
  [ -n "$ids" ] && podman rm -f $ids >/dev/null 2>&1 || true
  say "stopped; logs are in $dir"
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

wait_for_file() { # file, seconds, what, pid, log
  for _ in $(seq 1 $(($2 * 10))); do
    [ -s "$1" ] && return 0
    if ! kill -0 "$4" 2>/dev/null; then
      echo "error: $3 exited before it was ready; the end of $5:" >&2
      tail -n 30 "$5" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "error: $3 did not start within $2 s; see $5" >&2
  exit 1
}

if [ "${SANDBOX_SKIP_INSTALL:-0}" != 1 ]; then
  say "installing what the sandbox needs (Podman, test image)"
  bash scripts/install-test-deps.sh
fi
eval "$(bash scripts/test-env.sh)"

# Where cargo puts binaries: CARGO_TARGET_DIR, build.target-dir of a cargo config, or
# target/ (cargo metadata knows all three).
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p') || true
[ -n "$target_dir" ] || target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir=$repo/$target_dir ;; esac
bin=$target_dir/debug

say "building edge-gateway, edge-agent, hil-apiserver and hil-controlplane (into $bin)"
cargo build --quiet --bins -p edge-gateway -p edge-agent -p edge-hil-tests

rm -rf "$dir"; mkdir -p "$dir"
gateway_kubeconfig=
mode=emulator
if [ -n "${KUBECONFIG:-}" ] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  mode=cluster
  kubeconfig=${KUBECONFIG%%:*}
  say "using the cluster KUBECONFIG points at ($(kubectl config current-context))"
  if [ "$control_plane" = 1 ]; then
    echo "    (not starting the real control plane: KUBECONFIG answers; run with KUBECONFIG= to use it)"
  fi
  node_address=${SANDBOX_NODE_ADDRESS:-$(hostname -I | awk '{print $1}')}
  client_ca_args=()
  [ -n "${SANDBOX_KUBELET_CLIENT_CA:-}" ] && client_ca_args=(--kubelet-client-ca "$SANDBOX_KUBELET_CLIENT_CA")
elif [ "$control_plane" = 1 ]; then
  mode=control-plane
  say "building (or reusing) the real Kubernetes control plane"
  cp_bin=$(bash scripts/build-control-plane.sh)
  export EDGE_CONTROL_PLANE_BIN_DIR=$cp_bin
  kubectl_bin=$cp_bin/kubectl
  say "starting the real control plane ($("$cp_bin/kube-apiserver" --version)): etcd, kube-apiserver, kube-controller-manager, kube-scheduler"
  cp_dir=$dir/controlplane
  "$bin/hil-controlplane" --dir "$cp_dir" >"$dir/controlplane.log" 2>&1 &
  pids+=($!)
  wait_for_file "$cp_dir/ready" 240 "hil-controlplane" "${pids[-1]}" "$dir/controlplane.log"
  kubeconfig=$cp_dir/admin.kubeconfig
  gateway_kubeconfig=$cp_dir/gateway.kubeconfig
  node_address=127.0.0.1
  client_ca_args=(--kubelet-client-ca "$cp_dir/pki/kubelet-client-ca.crt")
else
  say "no reachable cluster in KUBECONFIG: starting the API emulator (--control-plane for the real one)"
  "$bin/hil-apiserver" --dir "$dir/apiserver" >"$dir/apiserver.log" 2>&1 &
  pids+=($!)
  wait_for_file "$dir/apiserver/kubeconfig" 30 "hil-apiserver" "${pids[-1]}" "$dir/apiserver.log"
  kubeconfig=$dir/apiserver/kubeconfig
  node_address=127.0.0.1
  client_ca_args=(--kubelet-client-ca "$dir/apiserver/kubelet-client-ca.crt")
fi
export KUBECONFIG=$kubeconfig
kc() { "$kubectl_bin" "$@"; }

say "starting edge-gateway (embedded broker, store in $dir/gateway)"
"$bin/edge-gateway" run --kubeconfig "${gateway_kubeconfig:-$kubeconfig}" --store-dir "$dir/gateway" \
  --mqtt-listen 127.0.0.1:0 --kubelet-listen 0.0.0.0:0 --metrics-listen 127.0.0.1:0 \
  --node-address "$node_address" "${client_ca_args[@]}" \
  --ready-file "$dir/gateway.ready" >"$dir/gateway.log" 2>&1 &
pids+=($!)
wait_for_file "$dir/gateway.ready" 60 "edge-gateway" "${pids[-1]}" "$dir/gateway.log"
mqtt_port=$(sed -E 's/.*"mqtt_port":([0-9]+).*/\1/' "$dir/gateway.ready")
kubelet_port=$(sed -E 's/.*"kubelet_port":([0-9]+).*/\1/' "$dir/gateway.ready")
metrics_port=$(sed -E 's/.*"metrics_port":([0-9]+).*/\1/' "$dir/gateway.ready")

say "starting edge-agent as device $device (Podman at $EDGE_TEST_DOCKER_HOST)"
"$bin/edge-agent" run --device-id "$device" --broker-url "mqtt://127.0.0.1:$mqtt_port" \
  --state-dir "$dir/agent" --runtime-socket "$EDGE_TEST_DOCKER_HOST" \
  --label site=lab >"$dir/agent.log" 2>&1 &
pids+=($!)

say "waiting for node $device to be Ready"
for _ in $(seq 1 60); do kc get node "$device" >/dev/null 2>&1 && break; sleep 1; done
kc wait --for=condition=Ready "node/$device" --timeout=60s >/dev/null || {
  echo "error: node $device did not become Ready; see $dir/gateway.log and $dir/agent.log" >&2; exit 1; }
kc get nodes -o wide

say "applying examples/pod-on-device.yaml"
kc apply -f examples/pod-on-device.yaml
kc wait --for=condition=Ready pod/hello-edge --timeout=120s >/dev/null || {
  echo "error: pod hello-edge did not become Ready; see $dir/gateway.log and $dir/agent.log" >&2; exit 1; }
kc get pods -o wide

case "$mode" in
  control-plane)
    api="the real control plane (admin kubeconfig; the gateway runs as its ServiceAccount)"
    kubectl_setup="  export KUBECONFIG=$kubeconfig
  alias kubectl=$kubectl_bin   # the control plane's release; the PATH one may be too far off"
    logs="$dir/{controlplane.log,controlplane/logs/*.log,gateway.log,agent.log}" ;;
  cluster)
    api="your cluster"
    kubectl_setup="  export KUBECONFIG=$kubeconfig"
    logs="$dir/{gateway,agent}.log" ;;
  *)
    api="the API emulator"
    kubectl_setup="  export KUBECONFIG=$kubeconfig"
    logs="$dir/{apiserver,gateway,agent}.log" ;;
esac
cat <<EOF

The sandbox is running on $api
(gateway MQTT :$mqtt_port, kubelet API :$kubelet_port, metrics :$metrics_port).
In another terminal:

$kubectl_setup
  kubectl get nodes -o wide
  kubectl get pods -o wide -w
  kubectl describe node $device
  kubectl logs -f hello-edge
  kubectl apply -f examples/configmap-secret-pod.yaml && kubectl logs configured-sensor
  curl -s http://127.0.0.1:$metrics_port/metrics | grep ^edge_

Logs: $logs. Press Ctrl-C to stop everything.
EOF
status=0
wait -n "${pids[@]}" || status=$?
echo "error: a sandbox process exited (status $status); see the logs in $dir" >&2
exit 1
