"""`pyrun explain TOPIC`: a short lesson, shown on this host.

The global `--explain` flag (narrating a command's steps) is handled in
runtime/cli/__init__.py; this module adds the lessons.
"""

from __future__ import annotations

import sys

from runtime.cli.parser import Namespace, Subcommands


# Kept here, not imported from runtime.teaching.lessons, so that building the
# parser imports only the standard library.
TOPICS = ["namespaces", "overlay", "cgroups", "network", "capabilities", "image"]


def register(subparsers: Subcommands) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="print a short lesson on a container topic, using this host",
        description="Print a short lesson on one topic, with what this host has now: "
        "its namespaces, cgroup layout, interfaces, capabilities, or an image in the store. "
        "To narrate a command instead, put --explain before it: pyrun --explain run ...",
    )
    parser.add_argument("topic", nargs="?", choices=TOPICS, metavar="TOPIC",
                        help=f"one of: {', '.join(TOPICS)}; without it, list the topics")
    parser.add_argument("image", nargs="?", metavar="IMAGE",
                        help="for the image topic: the image to show, e.g. busybox")
    parser.set_defaults(handler=explain_topic)


def explain_topic(args: Namespace) -> int:
    from runtime.errors import UsageError
    from runtime.teaching import lessons

    if args.topic is None:
        print("Topics: " + ", ".join(TOPICS))
        print("Show one with: pyrun explain TOPIC (e.g. pyrun explain namespaces)")
        return 0
    if args.image is not None and args.topic != "image":
        raise UsageError(f"pyrun explain {args.topic} takes no image argument; got {args.image!r}",
                         hint="only 'pyrun explain image IMAGE' names an image")
    sys.stdout.write(lessons.lesson(args.topic, store_root=args.root, image=args.image))
    return 0
