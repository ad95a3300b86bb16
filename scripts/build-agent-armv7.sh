#!/usr/bin/env bash
# Builds the static armv7 agent (`armv7-unknown-linux-musleabihf`: Raspberry Pi 2, Pi Zero
# 2 W / Pi 3 / Pi 4 on a 32-bit OS, armv7 industrial boards).
#
# Rust ships no prebuilt standard library for this target that can be downloaded here, so
# it is built from source: the pinned nightly toolchain (scripts/armv7-toolchain) with its
# `rust-src` and `cargo -Z build-std`. What a rustup target would bring besides, Debian
# brings (all installed by scripts/install-test-deps.sh):
#   - musl for armhf (`musl-dev:armhf`): libc.a and the C runtime objects crt1.o, crti.o,
#     crtn.o, rcrt1.o, and `arm-linux-musleabihf-gcc`, the compiler for ring's C code
#     against musl's headers;
#   - `gcc-arm-linux-gnueabihf`: crtbegin/crtend objects and the unwinder, libgcc_eh.a
#     (ARM EHABI; what Debian's musl-gcc links too), which stands in for the
#     `libunwind.a` the standard library asks for.
# They are linked by `rust-lld` like the other static targets (.cargo/config.toml). The
# standard library is compiled once per profile and then cached in the target directory.
#
#   scripts/build-agent-armv7.sh                 release build (the .deb, flashing)
#   scripts/build-agent-armv7.sh --profile P     another cargo profile (e.g. armv7-test)
#   scripts/build-agent-armv7.sh --print [...]   only print the binary's path
#
# Output (last line of stdout): the binary's path,
# ${CARGO_TARGET_DIR:-target}/armv7-unknown-linux-musleabihf/<profile dir>/edge-agent
# Extra cargo arguments (e.g. -j 1) follow `--`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
triple=armv7-unknown-linux-musleabihf
musl_lib=/usr/lib/arm-linux-musleabihf

die() { printf 'build-agent-armv7: %s\n' "$*" >&2; exit 1; }

profile=release
print_only=0
cargo_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) [ $# -ge 2 ] || die "--profile needs a value"; profile="$2"; shift 2 ;;
    --print) print_only=1; shift ;;
    --) shift; cargo_args=("$@"); break ;;
    *) die "unknown argument '$1' (see the header of $0)" ;;
  esac
done
case "$profile" in dev) profile_dir=debug ;; *) profile_dir="$profile" ;; esac
bin="$target_dir/$triple/$profile_dir/edge-agent"
if [ "$print_only" = 1 ]; then echo "$bin"; exit 0; fi

toolchain="$(tr -d '[:space:]' <"$root/scripts/armv7-toolchain")"
[ -n "$toolchain" ] || die "scripts/armv7-toolchain is empty"
fix="run scripts/install-test-deps.sh (it installs what this build needs)"
rustup run "$toolchain" rustc --version >/dev/null 2>&1 \
  || die "the Rust toolchain $toolchain is not installed: $fix"
sysroot="$(rustup run "$toolchain" rustc --print sysroot)"
[ -d "$sysroot/lib/rustlib/src/rust/library" ] \
  || die "$toolchain has no rust-src component: $fix"
[ -f "$musl_lib/libc.a" ] || die "no musl for armhf ($musl_lib/libc.a, Debian musl-dev:armhf): $fix"
command -v arm-linux-gnueabihf-gcc >/dev/null \
  || die "no arm-linux-gnueabihf-gcc (Debian gcc-arm-linux-gnueabihf): $fix"

# The link directory: what rustc looks for by name (C runtime objects, libc.a,
# libunwind.a), as symlinks to Debian's files. rustc finds the objects on `-L native=`.
link_dir="$target_dir/$triple-link"
mkdir -p "$link_dir"
for o in crt1.o crti.o crtn.o rcrt1.o Scrt1.o libc.a; do
  ln -sfn "$musl_lib/$o" "$link_dir/$o"
done
for o in crtbegin.o crtbeginS.o crtbeginT.o crtend.o crtendS.o; do
  src="$(arm-linux-gnueabihf-gcc -print-file-name="$o")"
  [ -f "$src" ] || die "arm-linux-gnueabihf-gcc has no $o"
  ln -sfn "$src" "$link_dir/$o"
done
unwinder="$(arm-linux-gnueabihf-gcc -print-file-name=libgcc_eh.a)"
[ -f "$unwinder" ] || die "arm-linux-gnueabihf-gcc has no libgcc_eh.a"
ln -sfn "$unwinder" "$link_dir/libunwind.a"

cd "$root"
# RUSTFLAGS (with --target, it applies to the target's crates only), keeping the caller's
RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-L native=$link_dir" \
  cargo "+$toolchain" build --locked -p edge-agent --target "$triple" --profile "$profile" \
  -Z build-std=std,panic_abort "${cargo_args[@]}" >&2
[ -x "$bin" ] || die "cargo finished but $bin is missing"
echo "$bin"
