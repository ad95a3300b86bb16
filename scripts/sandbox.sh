#!/usr/bin/env bash
# The main job on embedded defaults, on this machine:
#   - a Kubernetes API: the cluster KUBECONFIG points at if it answers, otherwise the
#     API emulator from hil-tests (hil-apiserver)
#   - edge-gateway with its embedded MQTT broker and sled store
#   - one local edge-agent (device "sandbox-pi") running pods on Podman
#   - examples/pod-on-device.yaml applied, and the kubectl commands to watch it
# Ctrl-C stops everything it started (containers of the sandbox pod included).
#
# Options (environment): SANDBOX_DIR (default .sandbox), SANDBOX_DEVICE (sandbox-pi),
# SANDBOX_SKIP_INSTALL=1 to skip installing system packages.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
dir=${SANDBOX_DIR:-$repo/.sandbox}
device=${SANDBOX_DEVICE:-sandbox-pi}
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
pids=()

cleanup() {
  trap - INT TERM EXIT
  say "stopping the sandbox"
  if [ -n "${kubeconfig:-}" ]; then
    # Every pod on the sandbox device, so the agent stops their containers.
    kubectl --kubeconfig "$kubeconfig" delete pods --all-namespaces \
      --field-selector "spec.nodeName=$device" --wait=false >/dev/null 2>&1 || true
    sleep 3
  fi
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM "${pids[$i]}" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # The agent stops the pods' containers when they are deleted; if it was already gone,
  # remove what is left of the sandbox device's containers.
  ids=$(podman ps -aq --filter label=io.edge-kube.managed=true --filter "label=io.edge-kube.device=$device" 2>/dev/null || true)
  [ -n "$ids" ] && podman rm -f $ids >/dev/null 2>&1 || true
  say "stopped; logs are in $dir"
}
trap cleanup INT TERM EXIT

wait_for_file() { # file, seconds, what
  for _ in $(seq 1 $(( $2 * 10 ))); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "error: $3 did not start within $2 s; see its log in $dir" >&2; exit 1
}

if [ "${SANDBOX_SKIP_INSTALL:-0}" != 1 ]; then
  say "installing what the sandbox needs (Podman, test image)"
  bash scripts/install-test-deps.sh
fi
eval "$(bash scripts/test-env.sh)"

say "building edge-gateway, edge-agent and hil-apiserver"
cargo build --quiet --bins -p edge-gateway -p edge-agent -p edge-hil-tests
bin=$repo/target/debug

rm -rf "$dir"; mkdir -p "$dir"

if [ -n "${KUBECONFIG:-}" ] && kubectl version --request-timeout=5s >/dev/null 2>&1; then
  kubeconfig=${KUBECONFIG%%:*}
  say "using the cluster KUBECONFIG points at ($(kubectl config current-context))"
  node_address=${SANDBOX_NODE_ADDRESS:-$(hostname -I | awk '{print $1}')}
  client_ca_args=()
  [ -n "${SANDBOX_KUBELET_CLIENT_CA:-}" ] && client_ca_args=(--kubelet-client-ca "$SANDBOX_KUBELET_CLIENT_CA")
else
  say "no reachable cluster in KUBECONFIG: starting the API emulator"
  "$bin/hil-apiserver" --dir "$dir/apiserver" >"$dir/apiserver.log" 2>&1 &
  pids+=($!)
  wait_for_file "$dir/apiserver/kubeconfig" 30 "hil-apiserver"
  kubeconfig=$dir/apiserver/kubeconfig
  node_address=127.0.0.1
  client_ca_args=(--kubelet-client-ca "$dir/apiserver/kubelet-client-ca.crt")
fi
export KUBECONFIG=$kubeconfig

say "starting edge-gateway (embedded broker, store in $dir/gateway)"
"$bin/edge-gateway" run --kubeconfig "$kubeconfig" --store-dir "$dir/gateway" \
  --mqtt-listen 127.0.0.1:0 --kubelet-listen 0.0.0.0:0 --metrics-listen 127.0.0.1:0 \
  --node-address "$node_address" "${client_ca_args[@]}" \
  --ready-file "$dir/gateway.ready" >"$dir/gateway.log" 2>&1 &
pids+=($!)
wait_for_file "$dir/gateway.ready" 60 "edge-gateway"
mqtt_port=$(sed -E 's/.*"mqtt_port":([0-9]+).*/\1/' "$dir/gateway.ready")
kubelet_port=$(sed -E 's/.*"kubelet_port":([0-9]+).*/\1/' "$dir/gateway.ready")
metrics_port=$(sed -E 's/.*"metrics_port":([0-9]+).*/\1/' "$dir/gateway.ready")

say "starting edge-agent as device $device (Podman at $EDGE_TEST_DOCKER_HOST)"
"$bin/edge-agent" run --device-id "$device" --broker-url "mqtt://127.0.0.1:$mqtt_port" \
  --state-dir "$dir/agent" --runtime-socket "$EDGE_TEST_DOCKER_HOST" \
  --label site=lab >"$dir/agent.log" 2>&1 &
pids+=($!)

say "waiting for node $device to be Ready"
for _ in $(seq 1 60); do kubectl get node "$device" >/dev/null 2>&1 && break; sleep 1; done
kubectl wait --for=condition=Ready "node/$device" --timeout=60s >/dev/null || {
  echo "error: node $device did not become Ready; see $dir/gateway.log and $dir/agent.log" >&2; exit 1; }
kubectl get nodes -o wide

say "applying examples/pod-on-device.yaml"
kubectl apply -f examples/pod-on-device.yaml
kubectl wait --for=condition=Ready pod/hello-edge --timeout=120s >/dev/null || {
  echo "error: pod hello-edge did not become Ready; see $dir/gateway.log and $dir/agent.log" >&2; exit 1; }
kubectl get pods -o wide

cat <<EOF

The sandbox is running (gateway MQTT :$mqtt_port, kubelet API :$kubelet_port, metrics :$metrics_port).
In another terminal:

  export KUBECONFIG=$kubeconfig
  kubectl get nodes -o wide
  kubectl get pods -o wide -w
  kubectl describe node $device
  kubectl logs -f hello-edge
  kubectl apply -f examples/configmap-secret-pod.yaml && kubectl logs configured-sensor
  curl -s http://127.0.0.1:$metrics_port/metrics | grep ^edge_

Logs: $dir/{apiserver,gateway,agent}.log. Press Ctrl-C to stop everything.
EOF
wait -n "${pids[@]}" || true
