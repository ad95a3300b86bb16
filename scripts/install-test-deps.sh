#!/usr/bin/env bash
# Installs (idempotently) everything the test suite needs on a Debian machine that has
# only the Rust toolchain: Podman (Docker Engine API for the agent), Mosquitto (real
# broker), nats-server (clustered broker), qemu-user-static (runs the aarch64 agent),
# a registry for pull tests, busybox-static (the test image), debootstrap and
# qemu-system-arm (the VM boot test), the Rust targets for
# static agent builds, and for the armv7 agent (scripts/build-agent-armv7.sh) the pinned
# nightly toolchain with rust-src, the ARM cross gcc and musl for armhf (Debian's armhf
# architecture is added to dpkg for that one package).
set -euo pipefail

need_pkgs=(podman runc busybox-static mosquitto mosquitto-clients qemu-user-static
           docker-registry apache2-utils iproute2 procps curl ca-certificates
           # ring's C code for the static aarch64 agent: the cross compiler and, which
           # --no-install-recommends would otherwise leave out, its libc headers
           gcc-aarch64-linux-gnu libc6-dev-arm64-cross
           # the armv7 agent: ARM cross gcc (ring's C code, crtbegin/crtend, libgcc_eh's
           # unwinder) and musl for armhf (libc.a, crt1.o, arm-linux-musleabihf-gcc)
           gcc-arm-linux-gnueabihf musl-dev:armhf
           # enrollment, flashing and packaging tests: openssl checks certificates;
           # synthetic disk images; dpkg-deb/dpkg-shlibdeps build the agent .deb
           openssl fdisk dosfstools mtools e2fsprogs xz-utils mount dpkg-dev
           # the clustered broker tests: a three-node NATS cluster (MQTT over JetStream)
           nats-server
           # the real Docker Engine (the pod sandbox differs between it and Podman);
           # scripts/test-env.sh starts its own dockerd
           docker.io
           # the VM boot test (scripts/build-vm-image.sh, hil-tests/tests/vm_boot.rs): a
           # Debian arm64 root filesystem from debootstrap, its second stage run under
           # qemu-user through binfmt_misc, booted by qemu-system-aarch64
           debootstrap binfmt-support qemu-system-arm)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if [[ " ${missing[*]} " == *":armhf "* ]] && ! dpkg --print-foreign-architectures | grep -qx armhf; then
    $SUDO dpkg --add-architecture armhf
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Services that Debian starts on install are not what the tests use: they start their own.
for svc in mosquitto nats-server docker-registry docker docker.socket; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

echo "==> rust targets and components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add aarch64-unknown-linux-musl x86_64-unknown-linux-musl >/dev/null
# armv7: no prebuilt standard library to download, so the pinned nightly builds it from
# its rust-src (scripts/build-agent-armv7.sh)
armv7_toolchain="$(tr -d '[:space:]' <"$(dirname "$0")/armv7-toolchain")"
if ! rustup run "$armv7_toolchain" rustc --version >/dev/null 2>&1 \
   || [ ! -d "$(rustup run "$armv7_toolchain" rustc --print sysroot)/lib/rustlib/src/rust/library" ]; then
  echo "==> installing Rust $armv7_toolchain with rust-src (armv7 agent)"
  rustup toolchain install "$armv7_toolchain" --profile minimal --component rust-src >/dev/null
fi
echo "==> test dependencies ready"
