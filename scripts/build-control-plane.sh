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

. "$root/scripts/go-module-build.sh"
go_toolchain "$module" "the real Kubernetes control plane of the test bed"

version="$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") { print $3 } ($1 == "k8s.io/kubernetes" && $2 ~ /^v/) { print $2 }' "$module/go.mod")"
[ -n "$version" ] || die "no 'require k8s.io/kubernetes vX.Y.Z' line in $module/go.mod"
bin="$target/controlplane/$version/bin"
if [ "${1:-}" = "--print" ]; then echo "$bin"; exit 0; fi

stamp="$bin/.stamp"
want_stamp="$(go_stamp "$module")"
tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd)
current=1
[ "$(cat "$stamp" 2>/dev/null)" = "$want_stamp" ] || current=0
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || current=0; done
if [ "$current" = 1 ]; then
  echo "$bin"
  exit 0
fi

go_check_proxy k8s.io/kubernetes "$version"

minor="$(echo "$version" | cut -d. -f2)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean"
done

echo "==> building Kubernetes $version (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) and etcd into $bin" >&2
echo "    (cold: downloads about 400 MB of Go modules and compiles for several minutes)" >&2
go_build_tools "$module" "$bin" "$ldflags" "the control plane"
# go names the etcd server module's binary after its path (.../server/v3).
[ -x "$bin/server" ] && mv "$bin/server" "$bin/etcd"
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || die "go build did not produce $bin/$t"; done
echo "$want_stamp" > "$stamp"
echo "==> $("$bin/kube-apiserver" --version)" >&2
echo "$bin"
