#!/usr/bin/env bash
# build-deb.sh: build the edge-agent .deb with dpkg-deb from an already built binary.
#
# The package holds the same files as the cargo-deb metadata in device-agent/Cargo.toml
# (`cargo deb -p edge-agent`); this script needs only dpkg-deb, so it also runs where
# cargo-deb is not installed and can package any prebuilt (e.g. cross-compiled) binary.
#
#   /usr/bin/edge-agent                      the agent
#   /lib/systemd/system/edge-agent.service   systemd unit (enabled by postinst), with a
#     drop-in edge-agent.service.d/deb-binary-path.conf: ExecStart=/usr/bin/edge-agent ...
#   /etc/edge-agent/agent.toml               configuration (dpkg conffile)
#   /var/lib/edge-agent/                     local state (0700)
set -euo pipefail

prog=build-deb.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

usage() {
  cat <<EOF
Usage: $prog --arch ARCH --binary FILE [--out-dir DIR] [--version VERSION] [--unit FILE]

Build edge-agent_<version>_<arch>.deb.

  --arch ARCH       Debian architecture: amd64, arm64 or armhf. Must match the binary.
  --binary FILE     The edge-agent binary. Release packages use the static musl builds:
                      amd64: target/x86_64-unknown-linux-musl/release/edge-agent
                      arm64: target/aarch64-unknown-linux-musl/release/edge-agent
                      armhf: target/armv7-unknown-linux-musleabihf/release/edge-agent
                    A dynamically linked binary gets its Depends from dpkg-shlibdeps.
  --out-dir DIR     Where to write the .deb (default: current directory).
  --version V       Package version (default: the workspace version in Cargo.toml).
  --unit FILE       systemd unit (default: $repo/deploy/systemd/edge-agent.service).
  --compression C   xz (default, smallest), gzip (fast) or none.
  -h, --help        Show this help.
EOF
}

die() { echo "$prog: error: $*" >&2; exit 1; }

arch="" binary="" out_dir="." version="" compression="xz" unit="$repo/deploy/systemd/edge-agent.service"
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) need_value "$@"; arch="$2"; shift 2 ;;
    --binary) need_value "$@"; binary="$2"; shift 2 ;;
    --out-dir) need_value "$@"; out_dir="$2"; shift 2 ;;
    --version) need_value "$@"; version="$2"; shift 2 ;;
    --unit) need_value "$@"; unit="$2"; shift 2 ;;
    --compression) need_value "$@"; compression="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$arch" ] || die "--arch is required (amd64, arm64 or armhf)"
[ -n "$binary" ] || die "--binary is required (see --help)"
[ -f "$binary" ] || die "binary '$binary' does not exist"
[ -f "$unit" ] || die "systemd unit '$unit' does not exist (give --unit FILE)"
[ -d "$out_dir" ] || die "output directory '$out_dir' does not exist"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"
case "$compression" in
  xz|none) zopts=(-Z"$compression") ;;
  gzip) zopts=(-Zgzip -z1) ;;
  *) die "unsupported --compression '$compression' (xz, gzip or none)" ;;
esac

case "$arch" in
  amd64) want="02:003e" ;;
  arm64) want="02:00b7" ;;
  armhf) want="01:0028" ;;
  *) die "unsupported --arch '$arch' (amd64, arm64 or armhf)" ;;
esac
hex="$(od -An -tx1 -N20 -- "$binary" | tr -d ' \n')"
[ "${hex:0:8}" = "7f454c46" ] || die "'$binary' is not an ELF executable"
got="${hex:8:2}:${hex:38:2}${hex:36:2}"
[ "$got" = "$want" ] || die "wrong architecture: '$binary' (ELF class:machine $got) is not a $arch binary ($want)"

if [ -z "$version" ]; then
  version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)"
  [ -n "$version" ] || die "cannot read the workspace version from $repo/Cargo.toml; give --version"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
root="$tmp/root"
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/edge-agent" \
  "$root/usr/share/doc/edge-agent"
install -d -m 0700 "$root/var/lib/edge-agent"
install -m 0755 "$binary" "$root/usr/bin/edge-agent"
install -m 0644 "$unit" "$root/lib/systemd/system/edge-agent.service"
# The package's binary is /usr/bin/edge-agent: a drop-in points ExecStart there.
install -d -m 0755 "$root/lib/systemd/system/edge-agent.service.d"
install -m 0644 "$here/edge-agent.service.d/deb-binary-path.conf" "$root/lib/systemd/system/edge-agent.service.d/"
install -m 0644 "$here/agent.toml" "$root/etc/edge-agent/agent.toml"
printf 'edge-agent\nCopyright: edge-kube developers\nLicense: Apache-2.0\n' > "$root/usr/share/doc/edge-agent/copyright"
for s in postinst prerm postrm; do install -m 0755 "$here/maintainer-scripts/$s" "$root/DEBIAN/$s"; done
echo "/etc/edge-agent/agent.toml" > "$root/DEBIAN/conffiles"

depends=""
if command -v readelf >/dev/null && readelf -l "$binary" 2>/dev/null | grep "program interpreter" >/dev/null; then
  command -v dpkg-shlibdeps >/dev/null || die "'$binary' is dynamically linked and dpkg-shlibdeps is missing (apt-get install dpkg-dev), or use a static musl build"
  mkdir -p "$tmp/src/debian"
  printf 'Source: edge-agent\n\nPackage: edge-agent\nArchitecture: any\n' > "$tmp/src/debian/control"
  deps="$(cd "$tmp/src" && dpkg-shlibdeps -O "$root/usr/bin/edge-agent" 2>/dev/null)" \
    || die "dpkg-shlibdeps could not resolve the libraries of '$binary' (cross-built dynamic binaries need the target's libraries installed; use a static musl build)"
  depends="${deps#shlibs:Depends=}"
fi

size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
{
  echo "Package: edge-agent"
  echo "Version: $version"
  echo "Architecture: $arch"
  echo "Maintainer: edge-kube developers <edge-kube@users.noreply.github.com>"
  echo "Installed-Size: $size"
  [ -z "$depends" ] || echo "Depends: $depends"
  echo "Section: admin"
  echo "Priority: optional"
  echo "Homepage: https://github.com/edge-kube/edge-kube"
  echo "Description: run Kubernetes pods on this device through Docker or Podman"
  echo " edge-agent connects the device to an edge-gateway over MQTT; the device then"
  echo " appears as a Kubernetes Node and runs the pods scheduled onto it."
} > "$root/DEBIAN/control"

deb="$out_dir/edge-agent_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${zopts[@]}" --build "$root" "$deb" >/dev/null
echo "$deb"
