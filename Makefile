# pyrun's entry points. Every target that needs packages installs them first,
# so each works on a fresh Debian or Ubuntu host, run as root.

SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
VPY := $(VENV)/bin/python
PYTEST_ARGS ?=

# Debian packages the tests need: the registry, the image builders, the
# tools the integration tests compare against, and python-prctl's headers.
TEST_PACKAGES := docker-registry busybox-static debootstrap umoci runc \
	nftables iproute2 libcap-dev python3-venv python3-dev gcc openssl curl \
	util-linux
BENCH_PACKAGES := podman skopeo crun hyperfine

.PHONY: all install apt-packages venv test unit integration demo bench vm-test clean

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

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e '.[test]'
	touch $@

install: apt-packages venv
	ln -sf $(VENV)/bin/pyrun /usr/local/bin/pyrun
	@echo "pyrun installed: $$(command -v pyrun)"

unit: install
	$(VPY) -m pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(VPY) -m pytest tests/integration $(PYTEST_ARGS)

test: install
	$(VPY) -m pytest tests $(PYTEST_ARGS)

demo: install
	$(VPY) tests/fixtures/demo.py

bench: install
	tests/fixtures/apt-install.sh $(BENCH_PACKAGES)
	$(VPY) tests/bench.py --output docs/benchmarks.md

clean:
	rm -rf $(VENV) build *.egg-info
