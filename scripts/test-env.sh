#!/usr/bin/env bash
# Starts (idempotently) the shared services the tests use and prints the environment
# to use them. Source it: `eval "$(scripts/test-env.sh)"`.
#  - Podman serving the Docker Engine API on $EDGE_TEST_DOCKER_HOST
#  - the test image localhost/busybox:test, built from Debian's busybox-static
# Brokers (rumqttd, Mosquitto) and registries are started per test on free ports.
set -euo pipefail

sock_dir=/run/edge-test
sock="$sock_dir/podman.sock"
mkdir -p "$sock_dir" /etc/containers

conf=/etc/containers/containers.conf
if ! grep -q 'edge-test' "$conf" 2>/dev/null; then
  cat > "$conf" <<'CONF'
# edge-test: podman's default runtime (crun) fails on hybrid cgroups and the default
# rlimits are refused on our build machines.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
fi

if ! curl -sf --unix-socket "$sock" http://d/v1.41/_ping >/dev/null 2>&1; then
  rm -f "$sock"
  nohup podman system service --time=0 "unix://$sock" >"$sock_dir/podman.log" 2>&1 &
  for _ in $(seq 1 100); do
    curl -sf --unix-socket "$sock" http://d/v1.41/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf --unix-socket "$sock" http://d/v1.41/_ping >/dev/null || {
    echo "podman API did not come up; see $sock_dir/podman.log" >&2; exit 1; }
fi

# Bump when the applets change, so an existing image is rebuilt.
image_revision=2
if [ "$(podman image inspect --format '{{index .Config.Labels "edge-test-image"}}' localhost/busybox:test 2>/dev/null)" != "$image_revision" ]; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/tmp" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  for applet in sh echo sleep cat ls env true false test printf kill wc head tail \
                 nc wget httpd mkdir touch rm date grep id hostname \
                 tar stty sha256sum md5sum dd cp mv sed seq cut tr; do
    ln -s busybox "$root/bin/$applet"
  done
  echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"
  tar -C "$root" -cf "$root.tar" .
  podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
    --change "LABEL edge-test-image=$image_revision" "$root.tar" localhost/busybox:test >/dev/null
  rm -rf "$root" "$root.tar"
fi

# The real Docker Engine (Debian's docker.io, scripts/install-test-deps.sh) on its own
# socket and data root, without iptables or a bridge (containers get loopback only),
# with the same test image.
docker_sock="$sock_dir/docker.sock"
if command -v dockerd >/dev/null; then
  # one caller at a time starts it (two dockerds on one data root block each other on
  # containerd's database), and a loaded machine may take a minute
  exec 9>"$sock_dir/docker.lock"
  flock 9
  if ! curl -sf --unix-socket "$docker_sock" http://d/_ping >/dev/null 2>&1; then
    if [ -f "$sock_dir/docker.pid" ] && kill -0 "$(cat "$sock_dir/docker.pid")" 2>/dev/null; then
      # a dockerd that never came up holds the data root: stop it first
      kill "$(cat "$sock_dir/docker.pid")" 2>/dev/null || true
      for _ in $(seq 1 100); do
        kill -0 "$(cat "$sock_dir/docker.pid")" 2>/dev/null || break
        sleep 0.1
      done
    fi
    rm -f "$docker_sock"
    nohup dockerd --host "unix://$docker_sock" --iptables=false --bridge=none \
      --exec-opt native.cgroupdriver=cgroupfs --data-root /var/lib/edge-test-docker \
      --exec-root "$sock_dir/docker-exec" --pidfile "$sock_dir/docker.pid" \
      >"$sock_dir/docker.log" 2>&1 9>&- &
    for _ in $(seq 1 600); do
      curl -sf --unix-socket "$docker_sock" http://d/_ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    curl -sf --unix-socket "$docker_sock" http://d/_ping >/dev/null || {
      echo "dockerd did not come up within 60 s; see $sock_dir/docker.log" >&2; exit 1; }
  fi
  flock -u 9
  if [ "$(docker -H "unix://$docker_sock" image inspect --format '{{index .Config.Labels "edge-test-image"}}' localhost/busybox:test 2>/dev/null)" != "$image_revision" ]; then
    podman save localhost/busybox:test | docker -H "unix://$docker_sock" load >/dev/null
  fi
  echo "export EDGE_TEST_DOCKER_ENGINE_HOST=unix://$docker_sock"
fi

echo "export EDGE_TEST_DOCKER_HOST=unix://$sock"
echo "export EDGE_TEST_IMAGE=localhost/busybox:test"
# The agents' pod infra (sandbox) container: the test image, exiting on SIGTERM like
# the pause binary (the default registry.k8s.io/pause image is not pulled offline).
echo "export EDGE_AGENT_SANDBOX_IMAGE=localhost/busybox:test"
echo "export EDGE_AGENT_SANDBOX_COMMAND='sh,-c,trap \"exit 0\" TERM; while sleep 1; do :; done'"
