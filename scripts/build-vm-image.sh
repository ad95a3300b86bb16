#!/usr/bin/env bash
# Builds (once) the Debian bookworm arm64 disk image the VM boot test flashes and boots
# under qemu-system-aarch64 (hil-tests/tests/vm_boot.rs): a Raspberry Pi style partitioned
# raw image (MBR, FAT boot partition, ext4 root), so deploy/flash/flash-image.sh treats it
# exactly like a Raspberry Pi OS image, plus Debian's arm64 kernel and initrd next to it.
#
# The root filesystem: debootstrap minbase from Debian's packages only, systemd, static
# networking for QEMU's user network (10.0.2.15/24, gateway 10.0.2.2 = the host's
# loopback), Podman (runc, cgroupfs, CNI bridge) with its socket enabled, and the test
# image localhost/busybox:test (Debian's busybox-static), imported into Podman at first
# boot from a tarball in the image (no registry is reachable). A drop-in points the
# edge-agent unit (which flash-image.sh installs) at Podman and at that sandbox image.
#
#   scripts/build-vm-image.sh            build (or reuse) and print the cache dir
#   scripts/build-vm-image.sh --print    only print the cache dir
#
# Output: ${EDGE_VM_CACHE_ROOT:-/var/cache/edge-kube-test}/vm-r<revision>/ with disk.img,
# vmlinuz, initrd.img and cmdline.txt (the kernel command line). Outside the repository
# and the target directory, so it survives `cargo clean` and worktrees. Two stages, each
# cached under its own revision: the base root filesystem (debootstrap and Podman,
# vm-base-r<base revision>/rootfs.tar; about 10 minutes, 17 on a loaded machine, under
# qemu-user) and the configured disk image made from it (about a minute). It needs root
# (chroot, mounts, file ownership); afterwards the script returns at once.
set -euo pipefail
PATH="$PATH:/usr/sbin:/sbin"

# Bump when the recipe below changes: a new revision is a new cache directory.
# base_revision: the packages (debootstrap, Podman); revision: the configuration and image.
base_revision=1
revision=2
cache_root="${EDGE_VM_CACHE_ROOT:-/var/cache/edge-kube-test}"
out="$cache_root/vm-r$revision"
base="$cache_root/vm-base-r$base_revision"
if [ "${1:-}" = "--print" ]; then echo "$out"; exit 0; fi

prog=build-vm-image
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
info() { printf '%s: %s\n' "$prog" "$*" >&2; }

current() { [ -f "$out/done" ] && [ -f "$out/disk.img" ] && [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ]; }
if current; then echo "$out"; exit 0; fi

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mounts); run it as root once, the result is cached in $out"
for tool in debootstrap chroot sfdisk mkfs.ext4 mkfs.vfat mcopy update-binfmts qemu-aarch64-static flock; do
  command -v "$tool" >/dev/null || die "'$tool' not found: run scripts/install-test-deps.sh (debootstrap, binfmt-support, qemu-user-static, e2fsprogs, dosfstools, mtools)"
done

mkdir -p "$cache_root"
exec 9>"$cache_root/vm.lock"
flock 9
if current; then echo "$out"; exit 0; fi

t0=$(date +%s)
mirror="${EDGE_VM_DEBIAN_MIRROR:-$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/*$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)}"
mirror="${mirror:-http://deb.debian.org/debian}"
if [ -f "$base/done" ]; then
  info "making the VM image from the cached base $base, about a minute, cached in $out"
else
  info "building the VM image (Debian bookworm arm64 with Podman), 10 to 20 minutes, cached in $out"
  info "mirror $mirror"
fi

work="$cache_root/vm-r$revision.build"
root="$work/rootfs"
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
  mounted=()
}
trap 'cleanup; info "failed; the partial build is left in $work for inspection (removed by the next run)"' EXIT
cleanup_build_dir() {
  # a previous failed run may have left mounts behind
  local m
  for m in $(awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do umount -l "$m" || true; done
  rm -rf "$work" "$base.partial"
}
cleanup_build_dir
mkdir -p "$work"

if [ ! -f "$base/done" ]; then
# ---- arm64 binaries in the chroot run under qemu-user through binfmt_misc -------------------
if [ ! -f /proc/sys/fs/binfmt_misc/status ]; then
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if ! grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
  update-binfmts --enable qemu-aarch64 || die "cannot register qemu-aarch64 with binfmt_misc (package binfmt-support)"
fi

# ---- first stage (host) and second stage (chroot, qemu-user) --------------------------------
include=systemd-sysv,udev,iproute2,ifupdown,kmod,linux-image-cloud-arm64,initramfs-tools,busybox-static,ca-certificates
info "[$(( $(date +%s) - t0 )) s] debootstrap, first stage"
debootstrap --arch=arm64 --foreign --variant=minbase --include="$include" bookworm "$root" "$mirror" \
  >"$work/debootstrap-1.log" 2>&1 || die "debootstrap (first stage) failed; see $work/debootstrap-1.log"
# binfmt's fix-binary flag normally makes this unnecessary; it is removed again below
cp /usr/bin/qemu-aarch64-static "$root/usr/bin/"
info "[$(( $(date +%s) - t0 )) s] debootstrap, second stage under qemu-user (6 to 16 minutes)"
chroot "$root" /debootstrap/debootstrap --second-stage >"$work/debootstrap-2.log" 2>&1 \
  || die "debootstrap (second stage) failed; see $work/debootstrap-2.log and $root/debootstrap/debootstrap.log"

# ---- Podman ---------------------------------------------------------------------------------
for m in proc sys dev dev/pts; do
  case "$m" in
    proc) mount -t proc proc "$root/proc" ;;
    sys) mount -t sysfs sysfs "$root/sys" ;;
    dev) mount --bind /dev "$root/dev" ;;
    dev/pts) mount -t devpts devpts "$root/dev/pts" ;;
  esac
  mounted+=("$root/$m")
done
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" > "$root/etc/apt/sources.list"
info "[$(( $(date +%s) - t0 )) s] installing Podman in the chroot (1 to 3 minutes)"
chroot "$root" /bin/sh -c 'export DEBIAN_FRONTEND=noninteractive LC_ALL=C; apt-get update -qq &&
  apt-get install -y -qq --no-install-recommends podman runc containernetworking-plugins iptables catatonit' \
  >"$work/podman.log" 2>&1 || die "installing Podman in the chroot failed; see $work/podman.log"
chroot "$root" systemctl enable podman.socket >>"$work/podman.log" 2>&1 \
  || die "cannot enable podman.socket; see $work/podman.log"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root/usr/sbin/policy-rc.d" "$root/usr/bin/qemu-aarch64-static"
cleanup
info "[$(( $(date +%s) - t0 )) s] caching the base root filesystem in $base"
rm -rf "$base"
mkdir -p "$base.partial"
tar -C "$root" --numeric-owner --xattrs -cpf "$base.partial/rootfs.tar" .
cp "$work"/*.log "$base.partial/"
printf 'base revision %s\nbuilt %s in %s s\n' "$base_revision" "$(date -u +%FT%TZ)" "$(( $(date +%s) - t0 ))" > "$base.partial/done"
mv "$base.partial" "$base"
else
  mkdir -p "$root"
  tar -C "$root" --numeric-owner --xattrs -xpf "$base/rootfs.tar"
fi

# ---- configuration --------------------------------------------------------------------------
echo edge-vm > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tedge-vm\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
printf 'nameserver 10.0.2.3\n' > "$root/etc/resolv.conf"
printf '/dev/vda2\t/\text4\tdefaults,noatime\t0\t0\n' > "$root/etc/fstab"
# QEMU's user network: the host's loopback is 10.0.2.2 (net.ifnames=0 keeps the name eth0).
# systemd-networkd, not ifupdown: ifupdown-pre's `udevadm settle` costs half a minute of
# boot under TCG.
printf 'auto lo\niface lo inet loopback\n' > "$root/etc/network/interfaces"
find "$root/etc/systemd/system" -name networking.service -path '*.wants/*' -delete
mkdir -p "$root/etc/systemd/network" "$root/etc/systemd/system/network-online.target.wants" \
  "$root/etc/systemd/system/sockets.target.wants" "$root/etc/systemd/system/multi-user.target.wants"
cat > "$root/etc/systemd/network/10-eth0.network" <<'EOF'
[Match]
Name=eth0

[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
DNS=10.0.2.3
EOF
# systemctl enable systemd-networkd, by hand (no arm64 binary runs in this stage)
wants="$root/etc/systemd/system"
ln -sf /lib/systemd/system/systemd-networkd.service "$wants/multi-user.target.wants/systemd-networkd.service"
ln -sf /lib/systemd/system/systemd-networkd.socket "$wants/sockets.target.wants/systemd-networkd.socket"
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service \
  "$wants/network-online.target.wants/systemd-networkd-wait-online.service"
# every copy of the image gets a new machine id at its first boot, as a flashed card does
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# a root login on the serial console, for debugging a boot by hand (no password)
sed -i 's/^root:[^:]*:/root::/' "$root/etc/shadow"

# Podman: the same settings as the host's test Podman (scripts/test-env.sh)
mkdir -p "$root/etc/containers"
cat > "$root/etc/containers/containers.conf" <<'EOF'
# edge-test VM image (scripts/build-vm-image.sh)
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF

# The test image, from Debian's busybox-static (arm64), imported at first boot.
img="$work/busybox-image"
mkdir -p "$img/bin" "$img/tmp" "$img/etc"
cp "$root/bin/busybox" "$img/bin/busybox"
for applet in sh echo sleep cat ls env true false test printf kill wc head tail \
              nc wget httpd mkdir touch rm date grep id hostname \
              tar stty sha256sum md5sum dd cp mv sed seq cut tr; do
  ln -s busybox "$img/bin/$applet"
done
echo "root:x:0:0:root:/:/bin/sh" > "$img/etc/passwd"
mkdir -p "$root/usr/share/edge-test"
tar -C "$img" --owner=0 --group=0 -cf "$root/usr/share/edge-test/busybox-image.tar" .
cat > "$root/etc/systemd/system/edge-test-image.service" <<'EOF'
[Unit]
Description=Import the offline test image localhost/busybox:test into Podman
Before=edge-agent.service
ConditionPathExists=!/var/lib/edge-test/image-imported

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/podman import --change "CMD [\"/bin/sh\"]" --change "ENV PATH=/bin" /usr/share/edge-test/busybox-image.tar localhost/busybox:test
ExecStartPost=/bin/mkdir -p /var/lib/edge-test
ExecStartPost=/bin/touch /var/lib/edge-test/image-imported

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/edge-test-image.service "$root/etc/systemd/system/multi-user.target.wants/edge-test-image.service"
# The agent (installed by flash-image.sh) talks to Podman's socket and uses the test
# image as its pod sandbox (registry.k8s.io/pause cannot be pulled offline).
mkdir -p "$root/etc/systemd/system/edge-agent.service.d"
cat > "$root/etc/systemd/system/edge-agent.service.d/vm-test.conf" <<'EOF'
[Unit]
Wants=edge-test-image.service
After=edge-test-image.service

[Service]
Environment=EDGE_AGENT_RUNTIME_SOCKET=unix:///run/podman/podman.sock
Environment=EDGE_AGENT_SANDBOX_IMAGE=localhost/busybox:test
Environment="EDGE_AGENT_SANDBOX_COMMAND=sh,-c,trap 'exit 0' TERM; while sleep 1; do :; done"
# its log on the serial console too, where the test reads it
StandardOutput=journal+console
StandardError=journal+console
EOF

# ---- kernel, initrd ---------------------------------------------------------------------------
kernel="$(ls "$root"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1)"
initrd="$(ls "$root"/boot/initrd.img-* 2>/dev/null | sort -V | tail -n1)"
[ -n "$kernel" ] && [ -n "$initrd" ] || die "no kernel or initrd in $root/boot (linux-image-cloud-arm64, initramfs-tools)"
cp "$kernel" "$work/vmlinuz"
cp "$initrd" "$work/initrd.img"
echo "root=/dev/vda2 rw console=ttyAMA0 net.ifnames=0 panic=-1" > "$work/cmdline.txt"

# ---- the Raspberry Pi style disk image ----------------------------------------------------------
info "[$(( $(date +%s) - t0 )) s] writing the partitioned disk image"
mib=$((1024 * 1024))
boot_mib=64
used_mib=$(( $(du -sxm "$root" | cut -f1) ))
root_mib=$(( used_mib + 1024 ))   # room for the agent, pods and logs
boot_img="$work/boot.vfat"
root_img="$work/root.ext4"
truncate -s $((boot_mib * mib)) "$boot_img"
mkfs.vfat -F 32 -n bootfs "$boot_img" >/dev/null 2>&1
cp "$work/cmdline.txt" "$work/boot-cmdline.txt"
mcopy -i "$boot_img" "$work/vmlinuz" ::/vmlinuz
mcopy -i "$boot_img" "$work/initrd.img" ::/initrd.img
mcopy -i "$boot_img" "$work/boot-cmdline.txt" ::/cmdline.txt
truncate -s $((root_mib * mib)) "$root_img"
mkfs.ext4 -q -L rootfs -d "$root" "$root_img" || die "mkfs.ext4 -d failed"
disk="$work/disk.img"
truncate -s $(((1 + boot_mib + root_mib) * mib)) "$disk"
sfdisk -q "$disk" <<EOF
label: dos
start=2048, size=$((boot_mib * 2048)), type=c
start=$(((1 + boot_mib) * 2048)), size=$((root_mib * 2048)), type=83
EOF
dd if="$boot_img" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$root_img" of="$disk" bs=1M seek=$((1 + boot_mib)) conv=notrunc,sparse status=none

# ---- publish --------------------------------------------------------------------------------
rm -rf "$out"
mkdir -p "$out"
mv "$disk" "$work/vmlinuz" "$work/initrd.img" "$work/cmdline.txt" "$out/"
cp "$work"/*.log "$out/" 2>/dev/null || true
printf 'revision %s\nbuilt %s in %s s\n' "$revision" "$(date -u +%FT%TZ)" "$(( $(date +%s) - t0 ))" > "$out/done"
trap - EXIT
rm -rf "$work"
# older revisions are of no use any more
for old in "$cache_root"/vm-r[0-9]* "$cache_root"/vm-base-r[0-9]*; do
  case "$old" in "$out" | "$base" | *.build | *.partial | *.lock) continue ;; esac
  if [ -d "$old" ]; then info "removing the old revision $old"; rm -rf "$old"; fi
done
info "[$(( $(date +%s) - t0 )) s] done: $out"
echo "$out"
