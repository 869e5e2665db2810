# pyrun's entry points. Every target that needs packages installs them first,
# so each works on a fresh Debian or Ubuntu host, run as root.

SHELL := /bin/bash
# The distribution's interpreter, as `sudo` finds it on a Debian or Ubuntu
# host. Debian builds it with profile-guided optimization, and here it ran
# `pyrun run -d` about 15% faster than a plain source build (pyenv's).
PYTHON ?= /usr/bin/python3
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=

# Debian packages the tests need: the registry, the image builders, the
# tools the integration tests compare against, and python-prctl's headers.
TEST_PACKAGES := docker-registry busybox-static debootstrap umoci skopeo runc \
	nftables iproute2 libcap-dev python3-venv python3-dev gcc openssl curl \
	util-linux procps iptables
BENCH_PACKAGES := podman skopeo crun hyperfine

.PHONY: all install apt-packages venv test unit integration demo demo-stop bench vm-test vm-test-qemu clean

all: install

apt-packages:
	@missing=""; for p in $(TEST_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		tests/fixtures/apt-install.sh $$missing; \
	fi

venv: $(VENV)/.installed

# The editable install's compat mode puts the checkout on sys.path with a
# plain .pth line. The default mode's import finder costs every pyrun start
# its own import of pathlib and importlib.util.
# NOTE: setuptools (65 here) warns that compat mode is transitional. If a
# release drops it, this install fails: remove the setting to get the slower
# default mode.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $@

# compileall writes the .pyc files even under PYTHONDONTWRITEBYTECODE=1,
# which would otherwise make every pyrun start compile its modules again.
# runtime.launcher replaces pip's `pyrun` script with one that starts
# Python without the site module (5 ms less per command).
install: apt-packages venv
	$(VPY) -m compileall -q runtime registry_client
	$(VPY) -m runtime.launcher $(VENV)/bin/pyrun
	ln -sf $(VENV)/bin/pyrun /usr/local/bin/pyrun
	@echo "pyrun installed: $$(command -v pyrun)"

unit: install
	$(VPY) -m pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(VPY) -m pytest tests/integration $(PYTEST_ARGS)

# PYRUN_TEST_STRICT turns skips into failures: everything is installed here.
test: install
	PYRUN_TEST_STRICT=1 $(VPY) -m pytest tests $(PYTEST_ARGS)

demo: install
	$(VPY) tests/fixtures/demo.py

# Stops the local registry that `make demo` leaves running for later runs.
demo-stop:
	$(VPY) tests/fixtures/demo.py --stop

bench: install
	tests/fixtures/apt-install.sh $(BENCH_PACKAGES)
	$(VPY) tests/bench.py --output docs/benchmarks.md

# vm-test runs the integration tests marked cgroupv2 or vmsmoke inside a pure
# cgroup v2 guest with systemd as init, and exits with their status.
#   VM_BACKEND  qemu (tests/vm: a cached Debian guest, KVM or TCG), vagrant
#               (vagrant/), or auto: vagrant when it and a provider are
#               installed, else qemu
#   VM_TESTS    test paths, relative to the checkout (default tests/integration)
#   VM_TIMEOUT  seconds the guest may take to boot and run them (default 1200)
#   VM_KEEP=1   keep the Vagrant VM afterwards (the QEMU guest never keeps state)
VM_BACKEND ?= auto
VM_TESTS ?= tests/integration
VM_TIMEOUT ?= 1200
VM_KEEP ?= 0
VM_PACKAGES := qemu-system-x86 debootstrap e2fsprogs
VM_PYTEST := python -m pytest -ra --durations=10 -m "cgroupv2 or vmsmoke"

vm-test:
	@backend="$(VM_BACKEND)"; \
	if [ "$$backend" = auto ]; then \
		if vagrant/vm-test.sh --available; then backend=vagrant; else backend=qemu; fi; \
	fi; \
	echo "vm-test: $$backend back end"; \
	if [ "$$backend" = vagrant ]; then \
		VM_KEEP=$(VM_KEEP) VM_TIMEOUT=$(VM_TIMEOUT) vagrant/vm-test.sh $(VM_TESTS); \
	elif [ "$$backend" = qemu ]; then \
		$(MAKE) --no-print-directory vm-test-qemu; \
	else \
		echo "vm-test: unknown VM_BACKEND '$$backend': use qemu, vagrant or auto" >&2; exit 2; \
	fi

# The guest has no network: build the fixture images here first, into the
# cache that the guest shares. The Vagrant VM needs nothing installed here.
vm-test-qemu: install
	@missing=""; for p in $(VM_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then tests/fixtures/apt-install.sh $$missing; fi
	$(VPY) -c 'from tests.fixtures.images import ImageCache; ImageCache().load()'
	$(VPY) tests/vm/run.py --timeout $(VM_TIMEOUT) -- $(VM_PYTEST) $(VM_TESTS)

clean:
	rm -rf $(VENV) build *.egg-info
