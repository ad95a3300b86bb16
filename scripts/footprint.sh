#!/usr/bin/env bash
# Measures the agent's footprint and records it in docs/agent.md (between the
# `footprint:begin` / `footprint:end` markers):
#  - stripped size of the static aarch64, armv7 and x86_64 binaries,
#  - idle RSS of the agent with 0 and with 10 pods (native x86_64 musl build, real
#    Mosquitto broker, real Podman containers).
# Not a test: figures depend on the machine. Usage: scripts/footprint.sh [--no-write]
set -euo pipefail
cd "$(dirname "$0")/.."
write=1
[ "${1:-}" = "--no-write" ] && write=0

eval "$(bash scripts/test-env.sh)"
for tool in /usr/sbin/mosquitto mosquitto_pub podman; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-test-deps.sh" >&2; exit 1; }
done

echo "==> building static release binaries"
cargo build --release --locked -p edge-agent --target aarch64-unknown-linux-musl
cargo build --release --locked -p edge-agent --target x86_64-unknown-linux-musl
target_dir="${CARGO_TARGET_DIR:-target}"
a64="$target_dir/aarch64-unknown-linux-musl/release/edge-agent"
x64="$target_dir/x86_64-unknown-linux-musl/release/edge-agent"
# armv7: standard library built from source by the pinned nightly (the script says how)
a32="$(bash scripts/build-agent-armv7.sh | tail -n 1)"
size_of() { stat -c %s "$1"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }
# The release profile strips already; strip a copy anyway in case it changes.
tmp=$(mktemp -d)
agent_pid=""; mosq_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$mosq_pid" ] && kill "$mosq_pid" 2>/dev/null || true
  # Remove the containers this run created (they carry its device id).
  ids=$(podman ps -aq --filter "label=io.edge-kube.device=$device" 2>/dev/null || true)
  [ -n "$ids" ] && podman rm -f -t 0 $ids >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
device="footprint-$$"
trap cleanup EXIT
cp "$a64" "$tmp/a64"; cp "$x64" "$tmp/x64"; cp "$a32" "$tmp/a32"
llvm_strip=$(ls ~/.rustup/toolchains/*/lib/rustlib/*/bin/llvm-strip 2>/dev/null | head -1 || true)
if [ -n "$llvm_strip" ]; then "$llvm_strip" "$tmp/a64" "$tmp/x64" "$tmp/a32"; else
  command -v aarch64-linux-gnu-strip >/dev/null && aarch64-linux-gnu-strip "$tmp/a64"
  command -v arm-linux-gnueabihf-strip >/dev/null && arm-linux-gnueabihf-strip "$tmp/a32"
  strip "$tmp/x64"; fi
a64_size=$(size_of "$tmp/a64"); x64_size=$(size_of "$tmp/x64"); a32_size=$(size_of "$tmp/a32")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null \
       || echo $((20000 + RANDOM % 20000)))
printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$tmp/mosquitto.conf"
/usr/sbin/mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
mosq_pid=$!
sleep 0.5

"$tmp/x64" run --device-id "$device" --broker-url "mqtt://127.0.0.1:$port" \
  --state-dir "$tmp/state" --runtime-socket "$EDGE_TEST_DOCKER_HOST" \
  --heartbeat-interval 10s --log-filter warn >"$tmp/agent.log" 2>&1 &
agent_pid=$!

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$agent_pid/status"; }
settle() { sleep "$1"; rss_kib; }

echo "==> idle with 0 pods"
rss0=$(settle 15)

echo "==> 10 pods"
pods=""
for i in $(seq 1 10); do
  [ -n "$pods" ] && pods="$pods,"
  pods="$pods{\"uid\":\"$device-pod-$i\",\"namespace\":\"default\",\"name\":\"idle-$i\",\"hostNetwork\":true,\"terminationGracePeriodSeconds\":1,\"containers\":[{\"name\":\"main\",\"image\":\"$EDGE_TEST_IMAGE\",\"command\":[\"sleep\",\"100000\"]}]}"
done
mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "edge/v1/$device/down/desired" \
  -m "{\"protocol\":\"1.0\",\"kind\":\"desiredSet\",\"body\":{\"generation\":1,\"pods\":[$pods]}}"
for _ in $(seq 1 120); do
  n=$(podman ps -q --filter "label=io.edge-kube.device=$device" | wc -l)
  [ "$n" -ge 10 ] && break
  sleep 1
done
[ "$n" -ge 10 ] || { echo "only $n of 10 pods started; see $tmp/agent.log" >&2; cat "$tmp/agent.log" >&2; exit 1; }
rss10=$(settle 30)

mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t "edge/v1/$device/down/desired" \
  -m '{"protocol":"1.0","kind":"desiredSet","body":{"generation":2,"pods":[]}}'
sleep 3

kib_mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
when=$(date -u +%Y-%m-%d)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
table=$(cat <<EOF
Measured $when by \`scripts/footprint.sh\` ($cpu, $(nproc) cores, $(podman --version)):

| figure | value |
|---|---|
| stripped static binary, aarch64-unknown-linux-musl | $(mib "$a64_size") ($a64_size bytes) |
| stripped static binary, armv7-unknown-linux-musleabihf | $(mib "$a32_size") ($a32_size bytes) |
| stripped static binary, x86_64-unknown-linux-musl | $(mib "$x64_size") ($x64_size bytes) |
| idle RSS, 0 pods (x86_64 musl build, connected to Mosquitto) | $(kib_mib "$rss0") |
| idle RSS, 10 running pods | $(kib_mib "$rss10") |
EOF
)
echo
echo "$table"
if [ "$write" = 1 ]; then
  doc=docs/agent.md
  python3 - "$doc" "$table" <<'PY'
import sys
path, table = sys.argv[1], sys.argv[2]
text = open(path).read()
begin, end = "<!-- footprint:begin -->", "<!-- footprint:end -->"
if begin not in text or end not in text:
    sys.exit(f"{path} has no {begin} ... {end} section")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(f"{head}{begin}\n{table}\n{end}{tail}")
PY
  echo "==> recorded in $doc"
fi
