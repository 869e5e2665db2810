"""runtime.log: loggers that import logging only for a message that is written."""

import subprocess
import sys

SCRIPT = """
import sys
from runtime import log
log.configure({level!r})
logger = log.get_logger("runtime.example")
logger.debug("hidden %s", 1)
logger.info("hidden too")
print("logging" in sys.modules)
logger.warning("disk %s is full", "sda")
print("logging" in sys.modules)
"""


def run_script(level):
    return subprocess.run([sys.executable, "-S", "-c", SCRIPT.format(level=level)],
                          capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": ":".join(sys.path)})


def test_log_below_level_imports_nothing():
    result = run_script("warning")
    assert result.stdout.split() == ["False", "True"]
    assert result.stderr == "WARNING: disk sda is full\n"


def test_log_debug_level_writes_everything():
    result = run_script("debug")
    assert result.stderr.splitlines() == [
        "DEBUG: hidden 1", "INFO: hidden too", "WARNING: disk sda is full"]


def test_log_passes_through_once_logging_is_imported(caplog):
    from runtime import log

    caplog.set_level("DEBUG")
    log.get_logger("runtime.example").debug("seen by %s", "caplog")
    assert caplog.records[-1].getMessage() == "seen by caplog"
    assert caplog.records[-1].name == "runtime.example"
