#!/usr/bin/env python3
"""Run a command inside a pure cgroup v2 QEMU guest and exit with its status.

    tests/vm/run.py [--timeout SECONDS] [--] COMMAND [ARG...]

The guest is Debian bookworm with systemd as init, built once by
build-image.sh and cached under /var/cache/pyrun-vm, keyed by everything
that goes into it. QEMU boots the cached kernel and initramfs directly, with
the disk in snapshot mode, so every run starts from the same clean image.

The guest has no network device. The host shares folders over virtio-9p: the
checkout (read-only, at /pyrun/src), the fixture image cache and the test
data it is built from (at the same paths as on the host), and a control
folder holding the command. The agent in the guest (pyrun-vm-agent) runs the
command in /pyrun/src, streams its output over a virtio serial port that
this script copies to stdout, and writes the exit status back into the
control folder.

Exit status: the command's, or 124 when the guest did not finish in time,
or 125 when the guest could not be built or booted or never reported.
Runs as root, with the project's venv Python (`make vm-test` does so): the
guest gets wheels of the packages that pyrun[test] needs, at the versions
installed in that venv.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = Path(os.environ.get("PYRUN_VM_CACHE", "/var/cache/pyrun-vm"))
# The fixture image cache and the third-party archives that tests/fixtures
# turns into images, found as tests/fixtures/images.py and imports.py find
# them. The guest sees both at the same paths as the host, because the
# fixtures' cache keys include the archives' paths.
FIXTURE_CACHE = Path(os.environ.get("PYRUN_TEST_CACHE", "/var/cache/pyrun-test"))
TEST_DATA = Path(os.environ.get("PYRUN_TESTDATA", REPO.parent / "shared" / "testdata"))
DEFAULT_MIRROR = "http://deb.debian.org/debian"
GUEST_PYTHON = (3, 11)  # Debian bookworm's python3

# The files that go into the guest image: changing one rebuilds it.
IMAGE_INPUTS = ("build-image.sh", "packages.txt", "pyrun-vm-agent", "pyrun-vm-agent.service")

EXIT_TIMED_OUT = 124
EXIT_VM_FAILED = 125

# A guest under KVM reaches its agent in well under a minute. When it does
# not, KVM is taken as unusable for this guest and the run starts over with
# TCG (software emulation).
KVM_BOOT_TIMEOUT = 90

# After the agent has written the exit status, the guest gets this long to
# power off before QEMU is stopped.
POWEROFF_GRACE = 60

BOOTED_MARKER = b"pyrun-vm: guest booted"
KVM_FAILURE_MARKERS = (b"KVM internal error", b"emulation failure")


class VMError(Exception):
    """A failure of the VM machinery itself, as opposed to the command."""


def log(message: str) -> None:
    print(f"pyrun-vm: {message}", file=sys.stderr, flush=True)


# --- The guest image ---------------------------------------------------------


def guest_requirements() -> str:
    """Pin pyrun's dependencies, test extras included, at the versions installed here.

    Only what pyrun[test] needs counts, with the packages those need in turn,
    so a tool someone installs into the venv by hand does not rebuild the
    image.
    """
    from importlib import metadata

    from packaging.requirements import Requirement  # installed with pytest

    pins: dict[str, str] = {}
    pending = [(Requirement("pyrun[test]"), {"test"})]
    while pending:
        requirement, extras = pending.pop()
        distribution = metadata.distribution(requirement.name)
        for text in distribution.requires or []:
            needed = Requirement(text)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if needed.marker and not any(needed.marker.evaluate(env) for env in environments):
                continue
            name = metadata.distribution(needed.name).metadata["Name"]
            if name not in pins:
                pins[name] = metadata.version(name)
                pending.append((needed, set(needed.extras)))
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()))


def image_key(requirements: str, mirror: str) -> str:
    """Hash everything the image is built from into a cache key."""
    digest = hashlib.sha256()
    for name in IMAGE_INPUTS:
        digest.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    digest.update(requirements.encode() + b"\0" + mirror.encode())
    return digest.hexdigest()[:16]


def ensure_image() -> Path:
    """Return the cached guest image folder, building it when it is missing."""
    mirror = os.environ.get("PYRUN_VM_MIRROR", DEFAULT_MIRROR)
    requirements = guest_requirements()
    image = CACHE / f"image-{image_key(requirements, mirror)}"
    CACHE.mkdir(parents=True, exist_ok=True)

    # Two runs that start together build the image once: the second waits.
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.is_dir():
            log(f"using the cached guest image {image}")
            return image

        log(f"building the guest image {image} (a few minutes)")
        with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="requirements-") as pinned:
            pinned.write(requirements)
            pinned.flush()
            build = subprocess.run([str(HERE / "build-image.sh"), str(image), pinned.name, sys.executable])
        if build.returncode != 0:
            raise VMError(f"building the guest image failed (build-image.sh exited with {build.returncode})")

        # Keep only the image just built: each one takes about 1 GB.
        for stale in CACHE.glob("image-*"):
            if stale != image and stale.is_dir() and ".building." not in stale.name:
                shutil.rmtree(stale)
        return image


# --- Choosing KVM or TCG -----------------------------------------------------


def qemu_version() -> str:
    result = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()[0]


def kvm_verdict_file(image: Path) -> Path:
    """Name the file that records that KVM failed for this host and guest."""
    host = f"{platform.release()} {qemu_version()} {image.name}"
    return CACHE / f"kvm-unusable-{hashlib.sha256(host.encode()).hexdigest()[:16]}"


def kvm_worth_trying(image: Path) -> bool:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("/dev/kvm is missing or not accessible: using TCG (software emulation)")
        return False
    if kvm_verdict_file(image).exists():
        log("KVM failed with this host kernel, QEMU and guest before: using TCG (software emulation)")
        return False
    return True


# --- Running the guest -------------------------------------------------------


def write_control(control: Path, command: list[str]) -> list[tuple[str, Path, str, str]]:
    """Write the command and the list of shares for the agent; return the shares.

    Each share is (mount tag, host folder, guest folder, mount options).
    """
    shares = [("pyrun-src", REPO, "/pyrun/src", "ro")]
    FIXTURE_CACHE.mkdir(parents=True, exist_ok=True)
    shares.append(("pyrun-fixtures", FIXTURE_CACHE, str(FIXTURE_CACHE), "rw"))
    if TEST_DATA.is_dir():
        shares.append(("pyrun-testdata", TEST_DATA, str(TEST_DATA), "ro"))

    (control / "mounts").write_text(
        "".join(f"{tag} {guest} {options}\n" for tag, _, guest, options in shares))
    (control / "command").write_text(
        "cd /pyrun/src\n"
        "export HOME=/root PYTHONDONTWRITEBYTECODE=1 PATH=/opt/pyrun/venv/bin:$PATH\n"
        # The checkout is read-only: no bytecode files, no pytest cache.
        "export PYRUN_VM_GUEST=1 PYTEST_ADDOPTS='-p no:cacheprovider'\n"
        f"export PYRUN_TEST_CACHE={shlex.quote(str(FIXTURE_CACHE))} "
        f"PYRUN_TESTDATA={shlex.quote(str(TEST_DATA))}\n"
        f"exec {shlex.join(command)}\n")
    return shares


def qemu_command(image: Path, control: Path, shares, accelerator: str) -> list[str]:
    # -nodefaults drops QEMU's default network card, which would give the
    # guest user-mode networking to the host's network.
    command = [
        "nice", "-n", "10", "qemu-system-x86_64",
        "-nodefaults", "-no-user-config", "-nic", "none",
        "-display", "none", "-monitor", "none", "-no-reboot",
        "-m", "2048", "-smp", "2",
        "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.img"),
        # panic=-1 turns a kernel panic into a reboot, which -no-reboot turns
        # into QEMU exiting, so a broken guest fails fast instead of hanging.
        # mitigations=off: the guest needs no protection from itself, and
        # page-table isolation makes every system call slower under TCG.
        "-append", "root=/dev/vda rw console=ttyS0 panic=-1 quiet mitigations=off",
        "-drive", f"file={image / 'disk.img'},format=raw,if=virtio,snapshot=on",
        "-serial", f"file:{control / 'console.log'}",
        "-device", "virtio-serial-pci",
        "-chardev", f"file,id=output,path={control / 'output.log'}",
        "-device", "virtserialport,chardev=output,name=pyrun.output",
        "-device", "virtio-rng-pci",
        "-virtfs", f"local,path={control},mount_tag=pyrun-control,security_model=none",
    ]
    for tag, host, _, options in shares:
        readonly = ",readonly=on" if options == "ro" else ""
        command += ["-virtfs", f"local,path={host},mount_tag={tag},security_model=passthrough{readonly}"]
    if accelerator == "kvm":
        command += ["-accel", "kvm", "-cpu", "host"]
    else:
        command += ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return command


class KVMUnusable(Exception):
    """KVM could not run the guest; the caller retries with TCG."""


def run_guest(image: Path, control: Path, shares, accelerator: str, timeout: float) -> int:
    """Boot the guest, copy its output to stdout, and return the command's status."""
    output = control / "output.log"
    status_file = control / "exit-status"
    for stale in (output, status_file, control / "console.log"):
        stale.unlink(missing_ok=True)
    output.touch()

    log(f"booting the guest with {accelerator.upper()}, time limit {timeout:.0f} s")
    started = time.monotonic()
    qemu_errors = open(control / "qemu.log", "w+b")
    qemu = subprocess.Popen(qemu_command(image, control, shares, accelerator),
                            stdin=subprocess.DEVNULL, stdout=qemu_errors, stderr=subprocess.STDOUT)
    booted = False
    previous_tail = b""  # the end of the last chunk, in case a read splits the marker
    status_seen_at = None
    try:
        with open(output, "rb") as stream:
            while True:
                chunk = stream.read()
                if chunk:
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.buffer.flush()
                    booted = booted or BOOTED_MARKER in previous_tail + chunk
                    previous_tail = chunk[-len(BOOTED_MARKER):]
                elapsed = time.monotonic() - started

                if qemu.poll() is not None:
                    sys.stdout.buffer.write(stream.read())
                    if accelerator == "kvm" and not booted:
                        tail_console(control)
                        raise KVMUnusable(f"QEMU exited with status {qemu.returncode} before the guest booted")
                    break
                if accelerator == "kvm" and not booted:
                    qemu_errors.seek(0)
                    if any(marker in qemu_errors.read() for marker in KVM_FAILURE_MARKERS):
                        raise KVMUnusable("QEMU reported a KVM emulation failure")
                    if elapsed > KVM_BOOT_TIMEOUT:
                        raise KVMUnusable(f"the guest did not boot within {KVM_BOOT_TIMEOUT} s")
                if status_file.exists():
                    status_seen_at = status_seen_at or time.monotonic()
                    if time.monotonic() - status_seen_at > POWEROFF_GRACE:
                        log(f"the guest did not power off within {POWEROFF_GRACE} s of reporting; stopping QEMU")
                        break
                if elapsed > timeout:
                    tail_console(control)
                    raise TimeoutError(f"the guest did not finish within {timeout:.0f} s "
                                       f"(set VM_TIMEOUT to allow more)")
                time.sleep(0.5)
    finally:
        stop(qemu)
        qemu_errors.close()

    log(f"the guest ran for {time.monotonic() - started:.0f} s")
    if not status_file.exists():
        tail_console(control)
        raise VMError("the guest powered off without reporting an exit status (see the console above)")
    try:
        return int(status_file.read_text())
    except ValueError as err:
        raise VMError(f"the guest reported an invalid exit status: {err}") from err


def stop(qemu: subprocess.Popen) -> None:
    if qemu.poll() is not None:
        return
    qemu.terminate()
    try:
        qemu.wait(timeout=10)
    except subprocess.TimeoutExpired:
        qemu.kill()
        qemu.wait()


def tail_console(control: Path, lines: int = 30) -> None:
    """Print the end of the guest's console and QEMU's own messages."""
    for name in ("console.log", "qemu.log"):
        path = control / name
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        if text:
            log(f"last lines of the guest's {name} (all of it: {CACHE / 'last-run' / name}):")
            print("\n".join(text), file=sys.stderr, flush=True)


def keep_logs(control: Path) -> None:
    """Copy the last run's console and QEMU logs to the cache, for a look after the run."""
    logs_dir = CACHE / "last-run"
    logs_dir.mkdir(parents=True, exist_ok=True)
    for name in ("console.log", "qemu.log", "output.log"):
        if (control / name).exists():
            shutil.copyfile(control / name, logs_dir / name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("VM_TIMEOUT", 1200)),
                        help="seconds the guest may run, boot included (default: $VM_TIMEOUT or 1200)")
    parser.add_argument("command", nargs="+", help="the command to run in the guest, in /pyrun/src")
    args = parser.parse_args()

    # SIGTERM (from a CI time limit, or `kill`) unwinds like Ctrl-C does, so
    # the clean-up below stops QEMU and removes the control folder.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    if os.geteuid() != 0:
        log("run as root: building the image and sharing folders with QEMU need it")
        return EXIT_VM_FAILED
    for tool in ("qemu-system-x86_64", "debootstrap", "mke2fs"):
        if shutil.which(tool) is None:
            log(f"{tool} is missing: install qemu-system-x86, debootstrap and e2fsprogs")
            return EXIT_VM_FAILED

    # The wheels built here must install into the guest's Python 3.11.
    if sys.version_info[:2] != GUEST_PYTHON:
        log(f"run this with Python {GUEST_PYTHON[0]}.{GUEST_PYTHON[1]}, the guest's version "
            f"(the project venv on Debian 12), not {sys.version.split()[0]}")
        return EXIT_VM_FAILED

    control = Path(tempfile.mkdtemp(prefix="pyrun-vm-"))
    try:
        image = ensure_image()
        shares = write_control(control, args.command)
        if kvm_worth_trying(image):
            try:
                return run_guest(image, control, shares, "kvm", args.timeout)
            except KVMUnusable as err:
                log(f"KVM is unusable here ({err}): retrying with TCG (software emulation)")
                kvm_verdict_file(image).touch()
        return run_guest(image, control, shares, "tcg", args.timeout)
    except TimeoutError as err:
        log(f"FAILED: {err}")
        return EXIT_TIMED_OUT
    except (VMError, OSError, subprocess.CalledProcessError) as err:
        log(f"FAILED: {err}")
        return EXIT_VM_FAILED
    except KeyboardInterrupt:
        log("interrupted: QEMU stopped")
        return 130
    finally:
        with contextlib.suppress(OSError):
            keep_logs(control)
        shutil.rmtree(control, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
