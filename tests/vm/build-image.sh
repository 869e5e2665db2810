#!/bin/bash
# Build the QEMU test guest: a Debian bookworm root filesystem made with
# debootstrap, packed into a whole-disk ext4 image, plus the kernel and
# initramfs that QEMU boots directly (-kernel/-initrd), so the disk needs no
# partition table and no boot loader.
#
# Usage: build-image.sh OUTPUT_DIR REQUIREMENTS HOST_PYTHON
#   OUTPUT_DIR   created on success with disk.img, vmlinuz, initrd.img;
#                it must not exist yet
#   REQUIREMENTS pip requirements (pinned) for the guest's virtual environment
#   HOST_PYTHON  the host interpreter whose pip builds the wheels; it must be
#                the guest's Python minor version (3.11 on bookworm)
# Environment: PYRUN_VM_MIRROR and PYRUN_VM_SECURITY_MIRROR, the Debian
# archive and security mirrors (default: deb.debian.org).
#
# Runs as root. Everything is built in a temporary directory next to
# OUTPUT_DIR and renamed into place at the end, so a failure or Ctrl-C
# leaves no half-built image and no mount behind.
set -euo pipefail

output=${1:?usage: build-image.sh OUTPUT_DIR REQUIREMENTS HOST_PYTHON}
requirements=${2:?usage: build-image.sh OUTPUT_DIR REQUIREMENTS HOST_PYTHON}
host_python=${3:?usage: build-image.sh OUTPUT_DIR REQUIREMENTS HOST_PYTHON}
mirror=${PYRUN_VM_MIRROR:-http://deb.debian.org/debian}
security_mirror=${PYRUN_VM_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
here=$(cd "$(dirname "$0")" && pwd)

# 6 GiB leaves room for the fixture images and the containers the tests
# create. The file is sparse, and QEMU runs it with -snapshot, so it never
# grows on the host after the build.
disk_size=6G

if [ -e "$output" ]; then
	echo "build-image.sh: $output already exists; remove it to rebuild" >&2
	exit 1
fi
work=$(mktemp -d "$output.building.XXXXXX")
rootfs=$work/rootfs
mounted=()

cleanup() {
	local index
	for ((index = ${#mounted[@]} - 1; index >= 0; index--)); do
		umount "${mounted[index]}" || umount -l "${mounted[index]}" || true
	done
	# debootstrap mounts /proc and /sys inside the target itself; take down
	# any it left behind before deleting the tree.
	findmnt -rn -o TARGET | grep "^$rootfs/" | sort -r | xargs -r -n1 umount -l || true
	rm -rf "$work"
}
trap cleanup EXIT

# Run a command inside the guest tree with a clean environment, so the
# host's settings (PIP_FIND_LINKS, PIP_CERT, locale, ...) do not leak in.
in_guest() {
	chroot "$rootfs" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

mount_in_rootfs() {
	mkdir -p "$rootfs/$2"
	mount "${@:3}" "$1" "$rootfs/$2"
	mounted+=("$rootfs/$2")
}

echo "==> building wheels of the host's Python packages"
mkdir -p "$work/wheels"
"$host_python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" -r "$requirements"

echo "==> debootstrap bookworm from $mirror"
packages=$(grep -v -e '^#' -e '^$' "$here/packages.txt" | paste -sd, -)
nice -n 10 debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror"

# debootstrap installs the packages of the bookworm release only. Upgrade to
# the point release and security updates, as a maintained host has them:
# the fixture images' cache key includes the busybox binary, so the guest
# finds the host's cached images only when both run the same busybox-static.
echo "==> upgrading to bookworm-updates and bookworm-security"
cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security_mirror bookworm-security main
SOURCES
mount_in_rootfs proc /proc -t proc
mount_in_rootfs /dev /dev --bind
# Keep package scripts from starting services inside the chroot.
printf '#!/bin/sh\nexit 101\n' > "$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
in_guest apt-get update -q
in_guest DEBIAN_FRONTEND=noninteractive nice -n 10 apt-get upgrade -y -q
rm "$rootfs/usr/sbin/policy-rc.d"

echo "==> configuring the guest"
echo pyrun-vm > "$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpyrun-vm\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$rootfs/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$rootfs/etc/fstab"
# The tests start their own registry on a free 127.0.0.1 port; the packaged
# one would listen on port 5000 of every interface. Timers, scrubbing and
# login prompts only cost boot time in a guest that nobody logs in to.
in_guest systemctl disable docker-registry.service
in_guest systemctl mask apt-daily.timer apt-daily-upgrade.timer \
	e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer \
	e2scrub_reap.service getty.target
install -m 0755 "$here/pyrun-vm-agent" "$rootfs/usr/local/sbin/pyrun-vm-agent"
install -m 0644 "$here/pyrun-vm-agent.service" "$rootfs/etc/systemd/system/pyrun-vm-agent.service"
in_guest systemctl enable pyrun-vm-agent.service

# The default initramfs holds most of the kernel's modules (about 37 MB),
# and unpacking it takes tens of seconds under TCG. The guest only needs
# the virtio disk and ext4 to find its root file system.
printf 'virtio_pci\nvirtio_blk\next4\n' >> "$rootfs/etc/initramfs-tools/modules"
echo MODULES=list > "$rootfs/etc/initramfs-tools/conf.d/pyrun-vm"
in_guest update-initramfs -u -k all

echo "==> installing the Python packages into /opt/pyrun/venv"
mkdir -p "$rootfs/tmp/wheels"
cp "$work"/wheels/*.whl "$requirements" "$rootfs/tmp/wheels/"
in_guest python3 -m venv /opt/pyrun/venv
in_guest /opt/pyrun/venv/bin/pip install --quiet --no-index \
	--find-links /tmp/wheels -r "/tmp/wheels/$(basename "$requirements")"
rm -rf "$rootfs/tmp/wheels"
# pyrun itself is not installed: the host shares its checkout at /pyrun/src
# on every boot, so the guest always runs the code under test. A .pth file
# puts the checkout on the path, and a launcher replaces the `pyrun` entry
# point that an editable install would create.
site_packages=$(in_guest /opt/pyrun/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
echo /pyrun/src > "$rootfs$site_packages/pyrun-checkout.pth"
cat > "$rootfs/opt/pyrun/venv/bin/pyrun" <<'LAUNCHER'
#!/opt/pyrun/venv/bin/python
import sys

from runtime.cli import main

sys.exit(main())
LAUNCHER
chmod 0755 "$rootfs/opt/pyrun/venv/bin/pyrun"
ln -s /opt/pyrun/venv/bin/pyrun "$rootfs/usr/local/bin/pyrun"
umount "$rootfs/dev" "$rootfs/proc"
mounted=()

echo "==> packing the disk image"
in_guest apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/*
# An upgrade may add a newer kernel next to the first one: boot the newest.
kernel_version=$(find "$rootfs/boot" -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
cp "$rootfs/boot/vmlinuz-$kernel_version" "$work/vmlinuz"
cp "$rootfs/boot/initrd.img-$kernel_version" "$work/initrd.img"
mke2fs -q -t ext4 -L pyrun-vm -d "$rootfs" "$work/disk.img" "$disk_size"
rm -rf "$rootfs" "$work/wheels"
mv "$work" "$output"
trap - EXIT
echo "==> guest image ready in $output"
