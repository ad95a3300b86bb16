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

export PATH="$PATH:/usr/local/go/bin"
go="${GO:-go}"
command -v "$go" >/dev/null 2>&1 || die "the Go toolchain is missing. Install Go >= 1.26
(https://go.dev/doc/install, e.g. into /usr/local/go) and put 'go' on PATH; metrics-server
is built from its Go module."
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
have_go="$("$go" env GOVERSION | sed 's/^go//')"

version="$(awk '($1 == "sigs.k8s.io/metrics-server" && $2 ~ /^v/) { print $2 }' "$module/go.mod" | head -1)"
[ -n "$version" ] || die "no 'sigs.k8s.io/metrics-server vX.Y.Z' requirement in $module/go.mod"
bin="$target/metrics-server/$version/bin"
if [ "${1:-}" = "--print" ]; then echo "$bin"; exit 0; fi

stamp="$bin/.stamp"
want_stamp="$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -d' ' -f1) $have_go"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ] && [ -x "$bin/metrics-server" ]; then
  echo "$bin"
  exit 0
fi

proxy="$("$go" env GOPROXY | cut -d, -f1)"
if [ "$proxy" != "off" ] && [ "$proxy" != "direct" ] && ! [ -d "$("$go" env GOMODCACHE)/sigs.k8s.io/metrics-server@$version" ]; then
  curl -fsS -m 20 -o /dev/null "$proxy/sigs.k8s.io/metrics-server/@v/$version.info" 2>/dev/null ||
    die "cannot reach the Go module proxy $proxy (GOPROXY) to fetch sigs.k8s.io/metrics-server $version.
Check the network or set GOPROXY to a proxy you can reach (GOPROXY=https://proxy.golang.org)."
fi

mkdir -p "$bin"
echo "==> building metrics-server $version into $bin" >&2
t0=$(date +%s)
( while sleep 30; do echo "    ... still building metrics-server ($(( $(date +%s) - t0 )) s)" >&2; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
# go.sum is committed and verifies every module, so no checksum-database lookup is needed.
( cd "$module" && GOSUMDB=off "$go" build -trimpath -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitTreeState=clean" -o "$bin/" tool ) ||
  die "go build failed (see above). If modules could not be downloaded, check GOPROXY."
kill $ticker 2>/dev/null || true
[ -x "$bin/metrics-server" ] || die "go build did not produce $bin/metrics-server"
echo "$want_stamp" > "$stamp"
echo "    metrics-server built in $(( $(date +%s) - t0 )) s" >&2
echo "$bin"
