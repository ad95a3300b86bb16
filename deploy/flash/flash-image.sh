#!/usr/bin/env bash
# flash-image.sh: put edge-agent into a Raspberry Pi OS / Ubuntu disk image, and
# optionally write the image to an SD card.
#
# Works on a copy (never modifies the input), needs no root, no loop devices and no
# graphical tool: the partition table is read with sfdisk, the ext4 root filesystem is
# edited in place inside the copy with debugfs (e2fsprogs) at the partition's offset.
#
# Into the image's root filesystem it writes:
#   - the static edge-agent binary matching the image's architecture (aarch64 or armv7,
#     detected from the ELF header of /bin/sh in the image), at the path the systemd
#     unit's ExecStart names
#   - the device bundle (agent.toml, ca.pem, device.pem, device.key 0600) to /etc/edge-agent/,
#     or (--bootstrap, one image for many boards) the bootstrap directory to
#     /etc/edge-agent/bootstrap/, an agent.toml without identity and a unit drop-in that
#     makes the agent enroll first (zero-touch enrollment)
#   - the systemd unit, enabled (symlink in multi-user.target.wants)
#   - /etc/hostname (and the 127.0.1.1 line of /etc/hosts) set to the device id (with
#     --bootstrap only when --hostname is given: the id comes from the board at first boot)
set -euo pipefail
# sfdisk, debugfs and e2fsck live in /usr/sbin, which is not on a normal user's PATH.
PATH="$PATH:/usr/sbin:/sbin"

prog=flash-image.sh
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

usage() {
  cat <<EOF
Usage: $prog --image IMAGE --bundle DIR --output FILE [options]
       $prog --image IMAGE --bundle DIR --write-to /dev/sdX [options]
       $prog --image IMAGE --bootstrap DIR --output FILE [options]

Put edge-agent and a device bundle into a Raspberry Pi OS or Ubuntu disk image, or (with
--bootstrap) the one bootstrap directory every board of a fleet gets: each board then
names itself from its hardware, makes its key and enrolls at first boot.

Required:
  --image FILE        Input disk image: .img, or compressed .img.xz / .img.gz. Never modified.
  --bundle DIR        Device bundle written by 'edge-gateway enroll' (agent.toml, ca.pem,
                      device.pem, device.key).
  --bootstrap DIR     Instead of --bundle: the directory written by 'edge-gateway
                      bootstrap-file' (bootstrap.toml, ca.pem, bootstrap.pem, bootstrap.key),
                      for zero-touch enrollment (docs/deploy.md, "Flash 100 Pis with one image").
  --output FILE       Where to write the prepared image (uncompressed .img). Optional
                      with --write-to (a temporary file is used and removed afterwards).

Agent binaries (static builds; the one matching the image's architecture is used):
  --agent-aarch64 F   aarch64 agent (64-bit Raspberry Pi OS, Ubuntu arm64). Default:
                      \$EDGE_AGENT_AARCH64, else
                      $repo/target/aarch64-unknown-linux-musl/release/edge-agent
  --agent-armv7 F     armv7 agent (32-bit Raspberry Pi OS armhf: Pi 2, Pi Zero 2 W or
                      Pi 3/4 on a 32-bit OS; built by scripts/build-agent-armv7.sh).
                      Default: \$EDGE_AGENT_ARMV7, else
                      $repo/target/armv7-unknown-linux-musleabihf/release/edge-agent
  --agent-x86_64 F    x86_64 agent (PC images). Default: \$EDGE_AGENT_X86_64, else
                      $repo/target/x86_64-unknown-linux-musl/release/edge-agent

Other options:
  --unit FILE         systemd unit to install and enable. Default:
                      $repo/deploy/systemd/edge-agent.service
  --hostname NAME     Host name to set. Default: device_id from the bundle's agent.toml;
                      with --bootstrap the image's host name is kept unless this is given.
  --write-to DEVICE   After preparing, write the image to this block device (SD card),
                      with a progress bar and fsync. Asks for confirmation.
  --yes               Do not ask for confirmation before --write-to (for scripts).
  --force             Overwrite --output if it exists.
  -h, --help          Show this help.

Requirements: sfdisk (fdisk), debugfs and e2fsck (e2fsprogs), xz-utils for .xz, gzip for .gz,
pv (optional, nicer progress bar).

Example:
  edge-gateway enroll pi-01 --broker-url mqtts://gw.example.com:8883 --out-dir pi-01-bundle
  $prog --image 2024-11-19-raspios-bookworm-arm64-lite.img.xz --bundle pi-01-bundle \\
        --output pi-01.img --write-to /dev/sdb

  One image for a hundred boards:
  edge-gateway bootstrap-file --token abcdef.0123456789abcdef \\
        --bootstrap-broker-url mqtts://gw.example.com:8884 --broker-url mqtts://gw.example.com:8883 \\
        --device-id-template 'pi-{serial}' --out-dir fleet-bootstrap
  $prog --image 2024-11-19-raspios-bookworm-arm64-lite.img.xz --bootstrap fleet-bootstrap \\
        --output fleet.img
EOF
}

die() { echo "$prog: error: $*" >&2; exit 1; }
trap 'echo "$prog: error: unexpected failure at line $LINENO: $BASH_COMMAND" >&2' ERR
info() { echo "$prog: $*" >&2; }

image="" bundle="" bootstrap="" output="" write_to="" unit="$repo/deploy/systemd/edge-agent.service"
hostname_opt="" assume_yes=0 force=0
agent_aarch64="${EDGE_AGENT_AARCH64:-$repo/target/aarch64-unknown-linux-musl/release/edge-agent}"
agent_armv7="${EDGE_AGENT_ARMV7:-$repo/target/armv7-unknown-linux-musleabihf/release/edge-agent}"
agent_x86_64="${EDGE_AGENT_X86_64:-$repo/target/x86_64-unknown-linux-musl/release/edge-agent}"

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --image) need_value "$@"; image="$2"; shift 2 ;;
    --bundle) need_value "$@"; bundle="$2"; shift 2 ;;
    --bootstrap) need_value "$@"; bootstrap="$2"; shift 2 ;;
    --output) need_value "$@"; output="$2"; shift 2 ;;
    --agent-aarch64) need_value "$@"; agent_aarch64="$2"; shift 2 ;;
    --agent-armv7) need_value "$@"; agent_armv7="$2"; shift 2 ;;
    --agent-x86_64) need_value "$@"; agent_x86_64="$2"; shift 2 ;;
    --unit) need_value "$@"; unit="$2"; shift 2 ;;
    --hostname) need_value "$@"; hostname_opt="$2"; shift 2 ;;
    --write-to) need_value "$@"; write_to="$2"; shift 2 ;;
    --yes) assume_yes=1; shift ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[ -n "$image" ] || die "--image is required (see --help)"
[ -n "$bundle" ] || [ -n "$bootstrap" ] || die "--bundle (or --bootstrap) is required (see --help)"
[ -z "$bundle" ] || [ -z "$bootstrap" ] || die "give --bundle (one device) or --bootstrap (many boards), not both"
[ -n "$output" ] || [ -n "$write_to" ] || die "--output is required (or --write-to)"

for tool in sfdisk debugfs e2fsck dd od sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found: install fdisk, e2fsprogs and coreutils (apt-get install fdisk e2fsprogs)"
done

# ---- inputs -----------------------------------------------------------------------------
[ -f "$image" ] || die "image '$image' does not exist or is not a regular file"
if [ -n "$bundle" ]; then
  [ -d "$bundle" ] || die "bundle directory '$bundle' does not exist"
  for f in agent.toml ca.pem device.pem device.key; do
    [ -f "$bundle/$f" ] || die "bundle '$bundle' has no $f (write one with: edge-gateway enroll <device-id> --out-dir $bundle)"
  done
  device_id="$(sed -n 's/^[[:space:]]*device_id[[:space:]]*=[[:space:]]*"\([^"]*\)".*$/\1/p' "$bundle/agent.toml" | head -n1)"
  [ -n "$device_id" ] || die "$bundle/agent.toml has no device_id = \"...\" line"
else
  [ -d "$bootstrap" ] || die "bootstrap directory '$bootstrap' does not exist"
  for f in bootstrap.toml ca.pem bootstrap.pem bootstrap.key; do
    [ -f "$bootstrap/$f" ] || die "bootstrap directory '$bootstrap' has no $f (write one with: edge-gateway bootstrap-file --token <token> ... --out-dir $bootstrap)"
  done
  device_id=""
fi
[ -f "$unit" ] || die "systemd unit '$unit' not found (give --unit FILE)"

new_hostname="${hostname_opt:-$device_id}"
[ -z "$new_hostname" ] || [[ "$new_hostname" =~ ^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$ ]] \
  || die "host name '$new_hostname' is not a valid DNS name (lower-case letters, digits, '-', '.')"

# Where the unit runs the agent from: the first word of ExecStart (prefixes like '-' dropped).
agent_dest="$(sed -n 's/^[[:space:]]*ExecStart=[-@:+!]*\([^[:space:]]*\).*$/\1/p' "$unit" | head -n1)"
[[ "$agent_dest" == /* ]] || die "cannot find an absolute ExecStart=/path/to/edge-agent in $unit"
unit_name="$(basename "$unit")"

image_abs="$(realpath -- "$image")"
if [ -n "$output" ]; then
  out_abs="$(realpath -m -- "$output")"
  [ "$out_abs" != "$image_abs" ] || die "--output must differ from --image (the input is never modified)"
  [ ! -e "$output" ] || [ "$force" = 1 ] || die "output '$output' exists (use --force to overwrite it)"
  [ -d "$(dirname "$out_abs")" ] || die "directory of --output '$output' does not exist"
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/flash-image.XXXXXX")"
work=""
cleanup() {
  rm -rf "$tmp"
  if [ -n "$work" ] && [ -e "$work" ]; then rm -f "$work"; fi
}
trap cleanup EXIT

# ---- copy (or decompress) the image ------------------------------------------------------
if [ -n "$output" ]; then
  work="$output.partial"
else
  work="$tmp/image.img"
fi
magic="$(od -An -tx1 -N6 -- "$image" | tr -d ' \n')"
case "$magic" in
  fd377a585a00)
    command -v xz >/dev/null || die "'$image' is xz-compressed but xz is not installed (apt-get install xz-utils)"
    info "decompressing $image"
    xz -dc -- "$image" > "$work" || die "'$image' is not a valid .xz file"
    ;;
  1f8b*)
    command -v gzip >/dev/null || die "'$image' is gzip-compressed but gzip is not installed"
    info "decompressing $image"
    gzip -dc -- "$image" > "$work" || die "'$image' is not a valid .gz file"
    ;;
  504b0304*)
    die "'$image' is a zip archive: unzip it first and pass the .img inside"
    ;;
  *)
    cp --sparse=always -- "$image" "$work"
    ;;
esac

# ---- find the root filesystem ------------------------------------------------------------
table="$(sfdisk --dump -- "$work" 2>/dev/null)" \
  || die "'$image' is not a disk image: no MBR or GPT partition table found (is it a .zip, or a single partition?)"
sector="$(sed -n 's/^sector-size:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$table")"
sector="${sector:-512}"
root_offset=""
summary=""
while IFS= read -r line; do
  start="$(sed -n 's/.*start=[[:space:]]*\([0-9]*\).*/\1/p' <<<"$line")"
  type="$(sed -n 's/.*type=[[:space:]]*\([^,[:space:]]*\).*/\1/p' <<<"$line")"
  [ -n "$start" ] || continue
  offset=$((start * sector))
  summary+=" [start=$start type=$type]"
  # ext2/3/4 superblock magic 0xEF53 at byte 1080 of the partition.
  fs_magic="$(od -An -tx1 -j $((offset + 1080)) -N2 -- "$work" | tr -d ' \n')"
  [ "$fs_magic" = "53ef" ] || continue
  if debugfs -R "stat /etc" "$work?offset=$offset" 2>/dev/null | grep "Type: directory" >/dev/null; then
    root_offset="$offset"
    break
  fi
done < <(grep 'start=' <<<"$table")
[ -n "$summary" ] || die "'$image' has a partition table but no partitions"
[ -n "$root_offset" ] || die "no Linux root partition in '$image': no ext2/3/4 partition with /etc found (partitions:$summary)"
fs="$work?offset=$root_offset"

state="$(debugfs -R stats "$fs" 2>/dev/null)"
grep -q "Filesystem state:[[:space:]]*clean" <<<"$state" \
  || die "the root filesystem of '$image' was not cleanly unmounted; check it with e2fsck first"
! grep -q "Filesystem features:.*needs_recovery" <<<"$state" \
  || die "the root filesystem of '$image' has an unreplayed journal; check it with e2fsck first"

# ---- helpers on the image's filesystem ----------------------------------------------------
dfs() { debugfs "$@" "$fs" 2>/dev/null; }
fs_type() { dfs -R "stat \"$1\"" | sed -n 's/^Inode:.*Type: \([a-z]*\).*/\1/p' | head -n1; }

# Follows symlinks inside the image; prints the final path (or nothing).
resolve() {
  local path="$1" hops=0 type target
  while [ $hops -lt 16 ]; do
    type="$(fs_type "$path")"
    case "$type" in
      symlink)
        target="$(dfs -R "stat \"$path\"" | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p')"
        [ -n "$target" ] || target="$(dfs -R "cat \"$path\"")"
        if [[ "$target" != /* ]]; then target="$(dirname "$path")/$target"; fi
        path="$(realpath -m -s -- "$target")"
        hops=$((hops + 1))
        ;;
      "") return 0 ;;
      *) echo "$path"; return 0 ;;
    esac
  done
}

# ELF architecture name of a header given as hex bytes.
elf_arch() {
  local hex="$1"
  [ "${hex:0:8}" = "7f454c46" ] || { echo "not-elf"; return; }
  local class="${hex:8:2}" machine="${hex:38:2}${hex:36:2}"
  case "$class:$machine" in
    02:00b7) echo aarch64 ;;
    01:0028) echo armv7 ;;
    02:003e) echo x86_64 ;;
    01:0003) echo i386 ;;
    *) echo "unknown(class $class, machine 0x$machine)" ;;
  esac
}

# ---- architecture ----------------------------------------------------------------------------
image_arch=""
for candidate in /bin/sh /usr/bin/sh /bin/bash /usr/bin/bash /bin/busybox /sbin/init /lib/systemd/systemd; do
  real="$(resolve "$candidate")"
  [ -n "$real" ] || continue
  [ "$(fs_type "$real")" = "regular" ] || continue
  header="$({ dfs -R "cat \"$real\"" || true; } | head -c 20 | od -An -tx1 | tr -d ' \n')"
  arch="$(elf_arch "$header")"
  if [ "$arch" != "not-elf" ]; then image_arch="$arch"; arch_source="$candidate -> $real"; break; fi
done
[ -n "$image_arch" ] || die "cannot tell the image's architecture: no ELF /bin/sh, /bin/bash, /bin/busybox or /sbin/init in its root filesystem"
info "root filesystem at byte $root_offset, architecture $image_arch ($arch_source)"

case "$image_arch" in
  aarch64) agent="$agent_aarch64" ;;
  armv7) agent="$agent_armv7" ;;
  x86_64) agent="$agent_x86_64" ;;
  *) die "wrong architecture: the image is $image_arch; edge-agent images are aarch64, armv7 or x86_64" ;;
esac
case "$image_arch" in
  armv7) build_hint="bash scripts/build-agent-armv7.sh" ;;
  *) build_hint="cargo build --release -p edge-agent --target $image_arch-unknown-linux-musl" ;;
esac
[ -f "$agent" ] || die "wrong architecture: the image is $image_arch but there is no $image_arch agent binary at '$agent' (build it with $build_hint, or give --agent-$image_arch FILE)"
agent_header="$(od -An -tx1 -N20 -- "$agent" | tr -d ' \n')"
agent_arch="$(elf_arch "$agent_header")"
[ "$agent_arch" = "$image_arch" ] || die "wrong architecture: the image is $image_arch but agent binary '$agent' is $agent_arch"

# ---- stage the files --------------------------------------------------------------------------
stage="$tmp/stage"
mkdir -p "$stage"
cp -- "$agent" "$stage/edge-agent"
cp -- "$unit" "$stage/unit"
# dest | staged file | mode
files=(
  "$agent_dest|$stage/edge-agent|0755"
  "/etc/systemd/system/$unit_name|$stage/unit|0644"
)
dirs=("$(dirname "$agent_dest")" /etc/edge-agent /etc/systemd/system/multi-user.target.wants)
if [ -n "$bundle" ]; then
  for f in agent.toml ca.pem device.pem device.key; do cp -- "$bundle/$f" "$stage/$f"; done
  files+=(
    "/etc/edge-agent/agent.toml|$stage/agent.toml|0644"
    "/etc/edge-agent/ca.pem|$stage/ca.pem|0644"
    "/etc/edge-agent/device.pem|$stage/device.pem|0644"
    "/etc/edge-agent/device.key|$stage/device.key|0600"
  )
  wrote="/etc/edge-agent/{agent.toml,ca.pem,device.pem,device.key}"
else
  mkdir -p "$stage/bootstrap"
  for f in bootstrap.toml ca.pem bootstrap.pem bootstrap.key; do cp -- "$bootstrap/$f" "$stage/bootstrap/$f"; done
  # no identity in the image: the agent takes device id, broker and certificates from
  # its enrollment (EDGE_AGENT_IDENTITY_DIR, /var/lib/edge-agent/identity by default)
  printf '%s\n' "# edge-agent: identity, broker and certificates come from zero-touch enrollment" \
    "# (/etc/edge-agent/bootstrap/bootstrap.toml); other settings: edge-agent --print-default-config" \
    > "$stage/agent.toml"
  printf '%s\n' "[Service]" "Environment=EDGE_AGENT_BOOTSTRAP_FILE=/etc/edge-agent/bootstrap/bootstrap.toml" \
    > "$stage/bootstrap.conf"
  files+=(
    "/etc/edge-agent/agent.toml|$stage/agent.toml|0644"
    "/etc/edge-agent/bootstrap/bootstrap.toml|$stage/bootstrap/bootstrap.toml|0600"
    "/etc/edge-agent/bootstrap/ca.pem|$stage/bootstrap/ca.pem|0644"
    "/etc/edge-agent/bootstrap/bootstrap.pem|$stage/bootstrap/bootstrap.pem|0644"
    "/etc/edge-agent/bootstrap/bootstrap.key|$stage/bootstrap/bootstrap.key|0600"
    "/etc/systemd/system/$unit_name.d/bootstrap.conf|$stage/bootstrap.conf|0644"
  )
  dirs+=(/etc/edge-agent/bootstrap "/etc/systemd/system/$unit_name.d")
  wrote="/etc/edge-agent/{agent.toml,bootstrap/}, the unit drop-in $unit_name.d/bootstrap.conf"
fi
if [ -n "$new_hostname" ]; then
  printf '%s\n' "$new_hostname" > "$stage/hostname"
  if [ "$(fs_type /etc/hosts)" = "regular" ]; then
    dfs -R "cat /etc/hosts" > "$stage/hosts.orig"
  else
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$stage/hosts.orig"
  fi
  if grep -q '^127\.0\.1\.1[[:space:]]' "$stage/hosts.orig"; then
    sed "s/^127\.0\.1\.1[[:space:]].*/127.0.1.1\t$new_hostname/" "$stage/hosts.orig" > "$stage/hosts"
  else
    cp "$stage/hosts.orig" "$stage/hosts"
    printf '127.0.1.1\t%s\n' "$new_hostname" >> "$stage/hosts"
  fi
  files+=("/etc/hostname|$stage/hostname|0644" "/etc/hosts|$stage/hosts|0644")
fi
link="/etc/systemd/system/multi-user.target.wants/$unit_name"

cmds="$tmp/debugfs.cmds"
: > "$cmds"
ensure_dir() {
  local path="" part
  IFS=/ read -ra parts <<<"${1#/}"
  for part in "${parts[@]}"; do
    path="$path/$part"
    case "$(fs_type "$path")" in
      directory) ;;
      "") printf 'mkdir "%s"\nsif "%s" mode 040755\nsif "%s" uid 0\nsif "%s" gid 0\n' "$path" "$path" "$path" "$path" >> "$cmds"
          debugfs -w -f "$cmds" "$fs" >"$tmp/debugfs.log" 2>&1 || true
          : > "$cmds"
          [ "$(fs_type "$path")" = "directory" ] || die "cannot create $path in the image: $(cat "$tmp/debugfs.log")" ;;
      *) die "$path exists in the image but is not a directory" ;;
    esac
  done
}
for d in "${dirs[@]}"; do ensure_dir "$d"; done

for entry in "${files[@]}"; do
  IFS='|' read -r dest src mode <<<"$entry"
  case "$(fs_type "$dest")" in
    "") ;;
    regular|symlink) printf 'rm "%s"\n' "$dest" >> "$cmds" ;;
    *) die "$dest exists in the image and is not a file" ;;
  esac
  printf 'write "%s" "%s"\nsif "%s" mode 0100%s\nsif "%s" uid 0\nsif "%s" gid 0\n' \
    "$src" "$dest" "$dest" "${mode#0}" "$dest" "$dest" >> "$cmds"
done
[ -z "$(fs_type "$link")" ] || printf 'rm "%s"\n' "$link" >> "$cmds"
printf 'symlink "%s" "/etc/systemd/system/%s"\n' "$link" "$unit_name" >> "$cmds"
debugfs -w -f "$cmds" "$fs" >"$tmp/debugfs.log" 2>&1 || true

# ---- verify everything landed (debugfs does not fail on a failed command) -------------------
for entry in "${files[@]}"; do
  IFS='|' read -r dest src mode <<<"$entry"
  want="$(sha256sum < "$src" | cut -d' ' -f1)"
  got="$(dfs -R "cat \"$dest\"" | sha256sum | cut -d' ' -f1)"
  if [ "$want" != "$got" ]; then
    if grep -qi "no free space\|could not allocate" "$tmp/debugfs.log"; then
      die "the image's root filesystem is full: $dest could not be written (grow the image and its root partition first)"
    fi
    die "writing $dest into the image failed: $(cat "$tmp/debugfs.log")"
  fi
  dfs -R "stat \"$dest\"" | grep "Mode:  0*${mode#0} " >/dev/null || die "could not set mode $mode on $dest"
done
[ "$(dfs -R "stat \"$link\"" | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p')" = "/etc/systemd/system/$unit_name" ] \
  || die "could not enable $unit_name (symlink $link): $(cat "$tmp/debugfs.log")"
e2fsck -fn "$fs" >"$tmp/e2fsck.log" 2>&1 || die "the edited root filesystem does not check clean: $(cat "$tmp/e2fsck.log")"

info "wrote $agent_dest ($image_arch), $wrote, enabled $unit_name, hostname ${new_hostname:-kept}"

if [ -n "$output" ]; then
  mv -f -- "$work" "$output"
  work=""
  final="$output"
  info "prepared image: $output"
else
  final="$work"
fi

# ---- optionally write to an SD card ---------------------------------------------------------
if [ -n "$write_to" ]; then
  [ -b "$write_to" ] || die "--write-to '$write_to' is not a block device (expected e.g. /dev/sdb or /dev/mmcblk0)"
  dev_real="$(realpath -- "$write_to")"
  if grep -q "^$dev_real" /proc/mounts; then
    die "$write_to (or one of its partitions) is mounted: unmount it first (e.g. umount ${dev_real}*)"
  fi
  size_img="$(stat -c %s -- "$final")"
  size_dev="$(blockdev --getsize64 "$write_to" 2>/dev/null || echo 0)"
  [ "$size_dev" -ge "$size_img" ] || die "$write_to holds $size_dev bytes, the image needs $size_img"
  if [ "$assume_yes" != 1 ]; then
    model="$(cat "/sys/class/block/$(basename "$dev_real")/device/model" 2>/dev/null || true)"
    echo "About to ERASE $write_to (${model:-unknown model}, $size_dev bytes) and write $final to it." >&2
    printf 'Type yes to continue: ' >&2
    answer=""
    read -r answer || true
    [ "$answer" = "yes" ] || die "not confirmed; nothing was written to $write_to"
  fi
  info "writing $final to $write_to"
  if command -v pv >/dev/null 2>&1; then
    pv -s "$size_img" -- "$final" | dd of="$write_to" bs=4M iflag=fullblock conv=fsync status=none
  else
    dd if="$final" of="$write_to" bs=4M conv=fsync status=progress
  fi
  sync
  info "done: $write_to holds the image; put the card into the board and power it on"
fi
