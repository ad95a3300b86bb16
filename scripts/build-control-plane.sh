#!/usr/bin/env bash
# Builds the upstream Kubernetes control plane the test bed runs against
# (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and etcd), from the
# Go modules pinned in hil-tests/controlplane/go.mod, with the ordinary `go build`.
# Nothing upstream is copied into this repository: the Go module proxy serves it.
#
#   scripts/build-control-plane.sh            build (or reuse) and print the bin dir
#   scripts/build-control-plane.sh --print    only print the bin dir
#
# Output: ${CARGO_TARGET_DIR:-target}/controlplane/<kubernetes version>/bin
# A cold build takes several minutes on 2 cores and downloads about 400 MB of modules
# into the Go module cache; afterwards the script returns in about a second (a stamp of
# go.mod, go.sum and the Go version says the binaries are current).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
module="$root/hil-tests/controlplane"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

die() { printf 'build-control-plane: %s\n' "$*" >&2; exit 1; }

# GO names the toolchain to use (default: `go` on PATH, then /usr/local/go/bin/go).
export PATH="$PATH:/usr/local/go/bin"
go="${GO:-go}"
command -v "$go" >/dev/null 2>&1 || die "the Go toolchain is missing. Install Go >= 1.26
(https://go.dev/doc/install, e.g. into /usr/local/go) and put 'go' on PATH; the real
Kubernetes control plane of the test bed is built from Go modules."
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
need_go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$module/go.mod")"
have_go="$("$go" env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
  die "Go $have_go is too old: hil-tests/controlplane/go.mod needs Go >= $need_go"
fi

version="$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") { print $3 } ($1 == "k8s.io/kubernetes" && $2 ~ /^v/) { print $2 }' "$module/go.mod")"
[ -n "$version" ] || die "no 'require k8s.io/kubernetes vX.Y.Z' line in $module/go.mod"
bin="$target/controlplane/$version/bin"
if [ "${1:-}" = "--print" ]; then echo "$bin"; exit 0; fi

stamp="$bin/.stamp"
want_stamp="$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -d' ' -f1) $have_go"
tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)
current=1
[ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ] || current=0
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || current=0; done
if [ "$current" = 1 ]; then
  echo "$bin"
  exit 0
fi

# Fail early and clearly when the module proxy cannot be reached.
proxy="$("$go" env GOPROXY | cut -d, -f1)"
if [ "$proxy" != "off" ] && [ "$proxy" != "direct" ] && ! [ -d "$("$go" env GOMODCACHE)/k8s.io/kubernetes@$version" ]; then
  curl -fsS -m 20 -o /dev/null "$proxy/k8s.io/kubernetes/@v/$version.info" 2>/dev/null ||
    die "cannot reach the Go module proxy $proxy (GOPROXY) to fetch k8s.io/kubernetes $version.
Check the network or set GOPROXY to a proxy you can reach (GOPROXY=https://proxy.golang.org)."
fi

minor="$(echo "$version" | cut -d. -f2)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
done

mkdir -p "$bin"
echo "==> building Kubernetes $version (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) and etcd into $bin" >&2
echo "    (cold: downloads about 400 MB of Go modules and compiles for several minutes)" >&2
t0=$(date +%s)
# go.sum is committed and verifies every module, so no checksum-database lookup is needed.
( while sleep 30; do echo "    ... still building ($(( $(date +%s) - t0 )) s)" >&2; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
( cd "$module" && GOSUMDB=off "$go" build -trimpath -ldflags "$ldflags" -o "$bin/" tool ) ||
  die "go build failed (see above). If modules could not be downloaded, check GOPROXY."
kill $ticker 2>/dev/null || true
# go names the etcd server module's binary after its path (.../server/v3).
[ -x "$bin/server" ] && mv "$bin/server" "$bin/etcd"
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || die "go build did not produce $bin/$t"; done
echo "$want_stamp" > "$stamp"
echo "==> control plane built in $(( $(date +%s) - t0 )) s: $("$bin/kube-apiserver" --version)" >&2
echo "$bin"
