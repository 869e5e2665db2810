"""Network clean-up in a short-lived process of its own.

    python -m runtime.network.cleanup CONTAINER_DIR   # one container, after it stopped
    python -m runtime.network.cleanup --dead          # every container whose process is gone

The per-container monitor stays small by running this instead of importing
pyroute2 itself. CONTAINER_DIR contains the `network.json` that `attach` wrote;
its state_dir is used, so the helper needs no environment. Exit status 0
means nothing of the container's network is left; 1 means a step failed
(the error is printed on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys

from runtime.errors import PyrunError
from runtime import log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.network.cleanup",
                                     description="Remove a stopped container's network.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("container_dir", nargs="?", help="the container's directory (with network.json)")
    target.add_argument("--dead", action="store_true", help="clean up every container whose process is gone")
    args = parser.parse_args(argv)
    log.configure("warning", "pyrun network clean-up: %(message)s")

    import runtime.network as network

    try:
        if args.dead:
            network.cleanup_dead()
            return 0
        try:
            record = network.read_settings_file(args.container_dir)
        except FileNotFoundError:
            return 0  # attach never ran, so there is nothing to remove
        os.environ["PYRUN_NETWORK_DIR"] = record["state_dir"]
        network.detach(record["container_id"], record.get("settings"))
    except PyrunError as err:
        print(f"pyrun network clean-up: {err}: {err.__cause__ or ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
