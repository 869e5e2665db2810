#!/bin/bash
# Provision the pyrun VM (run as root by `vagrant up`): check that the VM
# has pure cgroup v2, then install pyrun from /vagrant with everything its
# tests need, so that `sudo pyrun` and `sudo make -C /vagrant test` work.
set -euo pipefail

cgroup_fs=$(stat -f -c %T /sys/fs/cgroup)
if [ "$cgroup_fs" != cgroup2fs ]; then
	echo "provision.sh: /sys/fs/cgroup is $cgroup_fs, not cgroup2: this VM must run pure cgroup v2." >&2
	echo "Pick a box that mounts cgroup v2 only (PYRUN_VM_BOX=generic/debian12 or bento/ubuntu-24.04)," >&2
	echo "or boot it with systemd.unified_cgroup_hierarchy=1 on the kernel command line." >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# `make install` needs make and Python's venv module. debian-archive-keyring
# lets debootstrap check Debian's mirror when the test fixtures build the
# httpd image on an Ubuntu box.
apt-get install -y -q --no-install-recommends make python3 python3-venv debian-archive-keyring

# `make install` installs the Debian packages the tests use, creates
# /vagrant/.venv and links /usr/local/bin/pyrun.
make -C /vagrant install
echo "provision.sh: ready. Try: vagrant ssh, then sudo pyrun run -d -P httpd"
