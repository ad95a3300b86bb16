# Shared by scripts/build-control-plane.sh and scripts/build-metrics-server.sh (sourced,
# not run): finds the Go toolchain and checks its version against the module's go.mod,
# checks that the Go module proxy answers before a cold build, and runs `go build` of
# the module's `tool` packages with a progress line every 30 s.
# The sourcing script defines die() first.

# Sets $go and $have_go; fails clearly when Go is missing or older than `go` in go.mod.
# $1: the module directory; $2: what is built with it (for the message).
go_toolchain() {
  local module="$1" what="$2" need_go
  # GO names the toolchain to use (default: `go` on PATH, then /usr/local/go/bin/go).
  export PATH="$PATH:/usr/local/go/bin"
  go="${GO:-go}"
  command -v "$go" >/dev/null 2>&1 || die "the Go toolchain is missing. Install Go >= 1.26
(https://go.dev/doc/install, e.g. into /usr/local/go) and put 'go' on PATH; $what is
built from Go modules."
  export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
  have_go="$("$go" env GOVERSION | sed 's/^go//')"
  need_go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$module/go.mod")"
  if [ -n "$need_go" ] && [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
    die "Go $have_go is too old: ${module#"$root/"}/go.mod needs Go >= $need_go"
  fi
}

# What says the binaries are current: go.mod, go.sum and the Go version. $1: module dir.
go_stamp() {
  echo "$(cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -d' ' -f1) $have_go"
}

# Fails early and clearly when the module proxy cannot be reached for a module that is
# not in the module cache yet. $1: module path; $2: version.
go_check_proxy() {
  local path="$1" version="$2" proxy
  proxy="$("$go" env GOPROXY | cut -d, -f1)"
  if [ "$proxy" != "off" ] && [ "$proxy" != "direct" ] && ! [ -d "$("$go" env GOMODCACHE)/$path@$version" ]; then
    curl -fsS -m 20 -o /dev/null "$proxy/$path/@v/$version.info" 2>/dev/null ||
      die "cannot reach the Go module proxy $proxy (GOPROXY) to fetch $path $version.
Check the network or set GOPROXY to a proxy you can reach (GOPROXY=https://proxy.golang.org)."
  fi
}

# Builds the module's `tool` packages into a directory. $1: module dir; $2: output dir;
# $3: ldflags; $4: what is built (for the progress line).
go_build_tools() {
  local module="$1" bin="$2" ldflags="$3" what="$4" t0 ticker
  mkdir -p "$bin"
  t0=$(date +%s)
  ( while sleep 30; do echo "    ... still building $what ($(( $(date +%s) - t0 )) s)" >&2; done ) &
  ticker=$!
  # go.sum is committed and verifies every module, so no checksum-database lookup is needed.
  if ! ( cd "$module" && GOSUMDB=off "$go" build -trimpath -ldflags "$ldflags" -o "$bin/" tool ); then
    kill $ticker 2>/dev/null || true
    die "go build failed (see above). If modules could not be downloaded, check GOPROXY."
  fi
  kill $ticker 2>/dev/null || true
  echo "    $what built in $(( $(date +%s) - t0 )) s" >&2
}
