"""Image commands: pull, images, rmi, tag, image inspect|prune, login, logout.

Each prints what Docker prints for the same command. The `image ...`
spellings (`pyrun image ls`, `image rm`, ...) run the same handlers.
"""

from __future__ import annotations

import getpass
import json
import re
import sys
import time
from datetime import datetime

from runtime.cli.parser import CommandParser, SUPPRESS
from runtime.errors import UsageError

RFC3339_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$")


def register(subparsers) -> None:
    add_pull(subparsers, "pull")
    add_images(subparsers, "images")
    add_rmi(subparsers, "rmi")
    add_tag(subparsers, "tag")
    add_login(subparsers)
    add_logout(subparsers)

    image = subparsers.add_parser("image", help="manage images")
    image.set_defaults(handler=lambda args: print_usage(image))
    verbs = image.add_subparsers(dest="image_command", metavar="COMMAND")
    add_pull(verbs, "pull")
    add_images(verbs, "ls", aliases=["list"])
    add_rmi(verbs, "rm", aliases=["remove"])
    add_tag(verbs, "tag")
    add_inspect(verbs)
    add_prune(verbs)


def print_usage(parser: CommandParser) -> int:
    """Print the help of a command that was given no sub-command; exit status 2."""
    parser.print_help(sys.stderr)
    return 2


# -- pull -----------------------------------------------------------------------

def add_pull(subparsers, name: str) -> None:
    parser = subparsers.add_parser(name, help="download an image from a registry")
    parser.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only the image reference, no progress")
    parser.add_argument("--platform", metavar="OS/ARCH[/VARIANT]",
                        help="platform to pull from a multi-platform image "
                             "(default: this machine's)")
    parser.add_argument("--registry-mirror", action="append", default=[], metavar="URL",
                        help="a Docker Hub mirror to try before the configured ones "
                             "(repeatable)")
    parser.add_argument("-a", "--all-tags", action="store_true", help=SUPPRESS)
    parser.set_defaults(handler=pull)


def pull(args) -> int:
    from runtime.cli.progress import PullProgress
    from runtime.store import ImageStore
    from runtime.store.reporter import PullReporter

    if args.all_tags:
        raise UsageError("pyrun pull does not support --all-tags: pull each tag by name")
    reporter = PullReporter() if args.quiet else PullProgress(sys.stdout)
    image = ImageStore(args.root).pull(args.name, quiet=args.quiet, platform=args.platform,
                                       reporter=reporter, mirrors=tuple(args.registry_mirror))
    print(image.reference, flush=True)
    return 0


# -- images ---------------------------------------------------------------------

def add_images(subparsers, name: str, aliases=()) -> None:
    parser = subparsers.add_parser(name, aliases=list(aliases), help="list images")
    parser.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]",
                        help="show only this repository (and tag)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only image IDs")
    parser.add_argument("-a", "--all", action="store_true",
                        help="accepted for Docker compatibility: pyrun has no "
                             "intermediate images")
    parser.add_argument("--digests", action="store_true", help="show the DIGEST column")
    parser.add_argument("--no-trunc", action="store_true", help="show full image IDs")
    parser.add_argument("--format", default="",
                        help="Go-template-like format, e.g. '{{.Repository}}:{{.Tag}}', 'table ...', or json")
    parser.set_defaults(handler=list_images)


# Docker's `images` columns: the --format field, and its header.
IMAGES_COLUMNS = {"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
                  "CreatedSince": "CREATED", "Size": "SIZE"}
IMAGES_FIELDS = [*IMAGES_COLUMNS, "CreatedAt"]


def list_images(args) -> int:
    from registry_client.reference import parse_reference
    from runtime.cli import templates
    from runtime.store import ImageStore

    template = templates.from_flag(args.format)
    templates.check(template, IMAGES_FIELDS)

    rows = []
    filter_name = filter_tag = None
    if args.repository:
        pattern = parse_reference(args.repository, default_tag=False)
        filter_name, filter_tag = pattern.familiar_name, pattern.tag
    for image in ImageStore(args.root).list_images():
        names = [parse_reference(tag) for tag in image.repo_tags] or [None]
        for reference in names:
            repository = reference.familiar_name if reference else "<none>"
            tag = reference.tag if reference else "<none>"
            if filter_name and (repository != filter_name
                                or (filter_tag and tag != filter_tag)):
                continue
            rows.append({
                "Repository": repository,
                "Tag": tag,
                "Digest": _digest_for(image, reference),
                "ID": image.id if args.no_trunc else image.id.removeprefix("sha256:")[:12],
                "CreatedSince": human_duration(image.config.get("created")),
                "CreatedAt": image.config.get("created", ""),
                "Size": human_size(image.size),
            })
    if args.quiet:
        for image_id in dict.fromkeys(row["ID"] for row in rows):
            print(image_id)
        return 0
    if templates.is_default_table(template):
        fields = [field for field in IMAGES_COLUMNS if args.digests or field != "Digest"]
        table = [[IMAGES_COLUMNS[field] for field in fields]] + [[row[field] for field in fields] for row in rows]
    elif template.startswith("table"):
        table = templates.table(template, rows, IMAGES_COLUMNS)
    else:
        for row in rows:
            print(templates.render(template, row))
        return 0
    print_table(table)
    return 0


def _digest_for(image, reference) -> str:
    if reference is None:
        return "<none>"
    prefix = f"{reference.name}@"
    for repo_digest in image.repo_digests:
        if repo_digest.startswith(prefix):
            return repo_digest[len(prefix):]
    return "<none>"


def print_table(rows: list[list[str]]) -> None:
    """Print columns padded like Docker's tabwriter: at least 3 spaces, at least 10 wide."""
    columns = max(len(row) for row in rows)
    widths = [max(max((len(row[i]) for row in rows if i < len(row)), default=0) + 3, 10) for i in range(columns)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths)] + row[-1:]
        print("".join(cells).rstrip())


def human_size(size: int) -> str:
    """Format bytes as Docker does: decimal units, 3 significant digits ("148MB")."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.3g}{unit}"
        value /= 1000
    return f"{value:.3g}TB"


def human_duration(created: str | None, now: float | None = None) -> str:
    """Format an RFC 3339 time as Docker's "2 weeks ago"."""
    when = parse_rfc3339(created or "")
    if when is None:
        return "N/A"
    seconds = (now if now is not None else time.time()) - when.timestamp()
    if seconds < 1:
        return "Less than a second ago"
    hours = seconds / 3600
    if seconds < 60:
        text = "1 second" if int(seconds) == 1 else f"{int(seconds)} seconds"
    elif seconds < 3600:
        minutes = int(seconds / 60)
        text = "About a minute" if minutes == 1 else f"{minutes} minutes"
    elif round(hours) == 1:
        text = "About an hour"
    elif hours < 48:
        text = f"{int(hours)} hours"
    elif hours < 24 * 7 * 2:
        text = f"{int(hours / 24)} days"
    elif hours < 24 * 30 * 2:
        text = f"{int(hours / 24 / 7)} weeks"
    elif hours < 24 * 365 * 2:
        text = f"{int(hours / 24 / 30)} months"
    else:
        text = f"{int(hours / 24 / 365)} years"
    return f"{text} ago"


def parse_rfc3339(text: str) -> datetime | None:
    """Parse image config times such as `2024-05-01T10:00:00.123456789Z`.

    Go writes nanoseconds, which `datetime` cannot hold, so the fraction
    is dropped.
    """
    match = RFC3339_RE.match(text)
    if not match:
        return None
    zone = "+00:00" if match.group(2) == "Z" else match.group(2)
    try:
        return datetime.fromisoformat(match.group(1) + zone)
    except ValueError:
        return None


# -- rmi, tag ---------------------------------------------------------------------

def add_rmi(subparsers, name: str, aliases=()) -> None:
    parser = subparsers.add_parser(name, aliases=list(aliases), help="remove images")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-f", "--force", action="store_true",
                        help="remove the names of an image used by a container, or "
                             "an image with several names")
    parser.add_argument("--no-prune", action="store_true", help=SUPPRESS)
    parser.set_defaults(handler=remove_images)


def remove_images(args) -> int:
    from runtime.errors import describe_error
    from runtime.errors import PyrunError
    from runtime.store import ImageStore

    if args.no_prune:
        raise UsageError("pyrun rmi does not support --no-prune")
    store = ImageStore(args.root)
    failed = False
    for name in args.images:
        try:
            steps = store.remove(name, force=args.force)
        except PyrunError as err:
            # Like Docker: report each image that failed, go on with the others.
            print(f"pyrun: {describe_error(err)}", file=sys.stderr)
            failed = True
            continue
        for action, subject in steps:
            print(f"{action}: {subject}")
    return 1 if failed else 0


def add_tag(subparsers, name: str) -> None:
    parser = subparsers.add_parser(name, help="give an image another name")
    parser.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    parser.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    parser.set_defaults(handler=tag_image)


def tag_image(args) -> int:
    from runtime.store import ImageStore

    ImageStore(args.root).tag(args.source, args.target)
    return 0


# -- image inspect, image prune -----------------------------------------------------

def add_inspect(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="show images as JSON")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-f", "--format", default="", help="print one field, e.g. '{{.Config.Cmd}}'")
    parser.set_defaults(handler=inspect_images)


def inspect_images(args) -> int:
    """Print the images found, in the order named; a missing one is an error on stderr and status 1, as in Docker."""
    from runtime.cli.lifecycle import print_documents
    from runtime.errors import NotFoundError
    from runtime.store import ImageStore

    store = ImageStore(args.root)
    documents, status = [], 0
    for name in args.images:
        try:
            documents.append(inspect_document(store, store.get(name)))
        except NotFoundError as err:
            print(f"pyrun: {err}" + (f" ({err.hint})" if err.hint else ""), file=sys.stderr)
            status = 1
    print_documents(documents, args.format)
    return status


def inspect_document(store, image) -> dict:
    """Build the JSON that Docker's `image inspect` prints, from the store's record and config."""
    from registry_client.reference import parse_reference

    config = image.config
    layers = image.layer_dirs
    return {
        "Id": image.id,
        "RepoTags": [parse_reference(tag).familiar() for tag in image.repo_tags],
        "RepoDigests": [parse_reference(d).familiar() for d in image.repo_digests],
        "Parent": "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created", ""),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": config.get("config", {}),
        "Architecture": config.get("architecture", ""),
        "Variant": config.get("variant", ""),
        "Os": config.get("os", ""),
        "Size": image.size,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {"LowerDir": ":".join(reversed(layers))},
        },
        "RootFS": {"Type": "layers", "Layers": config.get("rootfs", {}).get("diff_ids", [])},
        "Metadata": {"LastTagTime": image.record.get("pulled", "")},
    }


def add_prune(subparsers) -> None:
    parser = subparsers.add_parser("prune", help="remove images without a name")
    parser.add_argument("-f", "--force", action="store_true", help="do not ask to confirm")
    parser.add_argument("-a", "--all", action="store_true", help=SUPPRESS)
    parser.set_defaults(handler=prune_images)


def prune_images(args) -> int:
    from runtime.store import ImageStore

    if args.all:
        raise UsageError("pyrun image prune does not support --all: remove named "
                         "images with 'pyrun rmi'")
    if not args.force:
        answer = ask("WARNING! This will remove all dangling images.\n"
                     "Are you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    removed, freed = ImageStore(args.root).prune()
    if removed:
        print("Deleted Images:")
        for image_id in removed:
            print(f"deleted: {image_id}")
        print()
    print(f"Total reclaimed space: {human_size(freed)}")
    return 0


def ask(prompt: str) -> str:
    print(prompt, end="", flush=True)
    return sys.stdin.readline()


# -- login, logout --------------------------------------------------------------------

def add_login(subparsers) -> None:
    parser = subparsers.add_parser("login", help="save credentials for a registry")
    parser.add_argument("server", nargs="?", default="docker.io", metavar="SERVER",
                        help="registry host (default: Docker Hub)")
    parser.add_argument("-u", "--username")
    parser.add_argument("-p", "--password")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from standard input")
    parser.set_defaults(handler=login)


def login(args) -> int:
    from registry_client.auth import Credentials
    from registry_client.client import RegistryClient
    from registry_client.config import load_config
    from registry_client.credentials import store_credentials
    from registry_client.reference import parse_reference
    from runtime.log import standard_logging

    standard_logging()  # the registry client logs through the logging module
    registry = registry_host(args.server)
    if args.password and args.password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    if args.password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=sys.stderr)
    username = args.username or input("Username: ").strip()
    if args.password_stdin:
        if not args.username:
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.read().rstrip("\n").rstrip("\r")
    else:
        password = args.password or getpass.getpass("Password: ")
    if not username or not password:
        raise UsageError("login needs a user name and a password")

    credentials = Credentials(username, password)
    client = RegistryClient(load_config())
    try:
        endpoints = client.endpoints(parse_reference(f"{registry}/probe/login"))
        client.login(endpoints[-1], credentials)
    finally:
        client.close()
    store_credentials(registry, credentials)
    print("Login Succeeded")
    return 0


def add_logout(subparsers) -> None:
    parser = subparsers.add_parser("logout", help="remove saved credentials for a registry")
    parser.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    parser.set_defaults(handler=logout)


def logout(args) -> int:
    from registry_client.credentials import erase_credentials, server_key

    registry = registry_host(args.server)
    if erase_credentials(registry):
        print(f"Removing login credentials for {server_key(registry)}")
    else:
        print(f"Not logged in to {server_key(registry)}")
    return 0


def registry_host(server: str) -> str:
    """Reduce `https://host/v1/` or `host` to the registry host, Docker Hub as docker.io."""
    from registry_client.credentials import host_of_key

    return host_of_key(server)
