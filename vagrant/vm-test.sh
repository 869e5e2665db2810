#!/bin/bash
# Run the integration tests marked cgroupv2 or vmsmoke in the Vagrant VM of
# vagrant/Vagrantfile, as root, and exit with their status.
#
# Usage: vagrant/vm-test.sh [TEST_PATH...]   paths relative to the checkout,
#                                             default tests/integration
#        vagrant/vm-test.sh --available       exit 0 when Vagrant and a
#                                             provider (VirtualBox, libvirt)
#                                             are installed
# Environment: VM_KEEP=1 keeps the VM afterwards (default: vagrant destroy
# -f); VM_TIMEOUT is the time limit of the test run in seconds (default
# 1200); PYRUN_VM_BOX picks the box (see the Vagrantfile).
set -uo pipefail

provider_available() {
	command -v vagrant >/dev/null || return 1
	command -v VBoxManage >/dev/null && return 0
	command -v virsh >/dev/null && vagrant plugin list 2>/dev/null | grep -q '^vagrant-libvirt' && return 0
	return 1
}

if [ "${1:-}" = --available ]; then
	provider_available
	exit
fi
if ! provider_available; then
	echo "vm-test.sh: Vagrant with VirtualBox, or with vagrant-libvirt and virsh, is missing; use VM_BACKEND=qemu" >&2
	exit 125
fi

cd "$(dirname "$0")" || exit 125
tests=${*:-tests/integration}
timeout=${VM_TIMEOUT:-1200}

status=0
# `up` provisions a new VM only; --provision also refreshes a kept one.
# `rsync` copies the checkout again in case the VM was already running.
if ! vagrant up --provision || ! vagrant rsync; then
	echo "vm-test.sh: bringing the VM up failed (see above)" >&2
	status=125
else
	timeout "$timeout" vagrant ssh -c "cd /vagrant && sudo env PYRUN_VM_GUEST=1 \
PYTEST_ADDOPTS='-p no:cacheprovider' .venv/bin/python -m pytest -ra -m 'cgroupv2 or vmsmoke' $tests"
	status=$?
	if [ "$status" -eq 124 ]; then
		echo "vm-test.sh: the tests did not finish within $timeout s (set VM_TIMEOUT to allow more)" >&2
	fi
fi

if [ "${VM_KEEP:-0}" = 1 ]; then
	echo "vm-test.sh: VM kept (VM_KEEP=1); remove it with: cd vagrant && vagrant destroy -f"
else
	vagrant destroy -f
fi
exit "$status"
