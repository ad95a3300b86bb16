#!/usr/bin/env bash
# Builds the upstream metrics-server the test bed runs beside the real control plane
# (for `kubectl top`), from the Go module pinned in hil-tests/metrics-server/go.mod,
# with the ordinary `go build`. Nothing upstream is copied into this repository.
#
#   scripts/build-metrics-server.sh            build (or reuse) and print the binary's dir
#   scripts/build-metrics-server.sh --print    only print the dir
#
# Output: ${CARGO_TARGET_DIR:-target}/metrics-server/<version>/bin/metrics-server
# A cold build takes a few minutes on 2 cores (most modules are shared with the control
# plane's); afterwards the script returns at once (a stamp of go.mod, go.sum and the Go
# version says the binary is current).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
module="$root/hil-tests/metrics-server"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

die() { printf 'build-metrics-server: %s\n' "$*" >&2; exit 1; }

. "$root/scripts/go-module-build.sh"
go_toolchain "$module" "metrics-server"

version="$(awk '($1 == "sigs.k8s.io/metrics-server" && $2 ~ /^v/) { print $2 }' "$module/go.mod" | head -1)"
[ -n "$version" ] || die "no 'sigs.k8s.io/metrics-server vX.Y.Z' requirement in $module/go.mod"
bin="$target/metrics-server/$version/bin"
if [ "${1:-}" = "--print" ]; then echo "$bin"; exit 0; fi

stamp="$bin/.stamp"
want_stamp="$(go_stamp "$module")"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ] && [ -x "$bin/metrics-server" ]; then
  echo "$bin"
  exit 0
fi

go_check_proxy sigs.k8s.io/metrics-server "$version"

echo "==> building metrics-server $version into $bin" >&2
go_build_tools "$module" "$bin" "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitTreeState=clean" "metrics-server"
[ -x "$bin/metrics-server" ] || die "go build did not produce $bin/metrics-server"
echo "$want_stamp" > "$stamp"
echo "$bin"
