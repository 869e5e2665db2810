"""Container records: IDs, names and state.json under `<root>/containers/<id>/`.

A record is a JSON object with at least: id, name, image (the reference),
image_id, created, status, pid, exit_code, started_at, finished_at. Every
change made through `update_record` happens under an exclusive flock(2) on
the container's `lock` file and lands by rename(2). So a reader does not
see half a record, and two writers do not lose each other's fields.

Names are reserved as symlinks `<root>/names/<name> -> <id>`: symlink(2)
fails with EEXIST when the name is taken, so two `run --name web` at once
cannot both succeed, and no global lock is needed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from runtime import fileio, jsonio
from runtime.errors import ContainerNotFoundError, NotFoundError, PyrunError, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATUS_CREATED = "created"
STATUS_RUNNING = "running"
STATUS_EXITED = "exited"

# Docker's rule for names: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (ASCII only, so at least two characters).
NAME_FIRST_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
NAME_CHARACTERS = NAME_FIRST_CHARACTERS | frozenset("_.-")
# pyrun's own limit: a name is a file name under <root>/names, and file names
# are at most 255 bytes (NAME_MAX). Docker's name pattern sets no length limit.
NAME_MAX_LENGTH = 128

# Word lists for generated names such as "brave_turing", in Docker's style.
ADJECTIVES = [
    "agile", "bold", "brave", "calm", "clever", "eager", "fair", "gentle", "happy", "keen",
    "kind", "lucid", "merry", "nimble", "proud", "quick", "quiet", "sharp", "steady", "witty",
]
SCIENTISTS = [
    "babbage", "curie", "dijkstra", "euler", "hopper", "kepler", "knuth", "lamport", "liskov", "lovelace",
    "meitner", "noether", "pascal", "ritchie", "shannon", "thompson", "torvalds", "turing", "wirth", "yonath",
]


def containers_dir(root: str) -> str:
    return os.path.join(root, "containers")


def container_dir(root: str, container_id: str) -> str:
    return os.path.join(root, "containers", container_id)


def new_container_id() -> str:
    """Return a random 64-hex-digit ID, like Docker's."""
    return os.urandom(32).hex()


def now() -> str:
    """Return the current UTC time in RFC 3339 with nanoseconds, as Docker records times."""
    nanoseconds = time.time_ns()
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


# -- Names ---------------------------------------------------------------------


def check_name(name: str) -> None:
    """Raise UsageError unless `name` is a valid container name."""
    if len(name) > NAME_MAX_LENGTH:
        raise UsageError(
            f"invalid container name {name[:32]!r}...: it has {len(name)} characters, "
            f"more than the maximum of {NAME_MAX_LENGTH}",
            hint="choose a shorter name",
        )
    if len(name) < 2 or name[0] not in NAME_FIRST_CHARACTERS or not set(name) <= NAME_CHARACTERS:
        raise UsageError(
            f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-]+ is allowed",
            hint="use two or more letters, digits, '_', '.' and '-', starting with a letter or digit",
        )


def reserve_name(root: str, name: str, container_id: str) -> None:
    """Claim `name` for the container, raising UsageError if it is invalid or another container has it."""
    check_name(name)
    names = os.path.join(root, "names")
    os.makedirs(names, exist_ok=True)
    try:
        os.symlink(container_id, os.path.join(names, name))
    except FileExistsError:
        owner = os.readlink(os.path.join(names, name))
        raise UsageError(
            f"the container name {name!r} is already in use by container {owner[:12]}",
            hint="remove that container or choose another name",
        ) from None


def generated_name(attempt: int = 0) -> str:
    """Return a name such as "brave_turing"; from the 10th attempt on, with a number appended."""
    # os.urandom avoids importing `random` on every `run`; the slight
    # modulo bias does not matter for names.
    first, second, suffix = os.urandom(3)
    name = f"{ADJECTIVES[first % len(ADJECTIVES)]}_{SCIENTISTS[second % len(SCIENTISTS)]}"
    if attempt >= 10:
        name += str(suffix + 256 * attempt)
    return name


def reserve_generated_name(root: str, container_id: str, first: str = "") -> str:
    """Reserve `first`, or another generated name when it is taken (or not given); return the name."""
    for attempt in range(100):
        name = first if attempt == 0 and first else generated_name(attempt)
        try:
            reserve_name(root, name, container_id)
            return name
        except UsageError:
            continue
    raise PyrunError("no free container name found after 100 attempts", hint="give one with --name")


def release_name(root: str, name: str, container_id: str) -> None:
    """Remove the name link if it still belongs to `container_id`."""
    link = os.path.join(root, "names", name)
    try:
        if os.readlink(link) == container_id:
            os.unlink(link)
    except OSError as err:
        if err.errno not in (errno.ENOENT, errno.EINVAL):
            raise


def id_for_name(root: str, name: str) -> str | None:
    try:
        return os.readlink(os.path.join(root, "names", name))
    except OSError:
        return None


# -- Records -------------------------------------------------------------------


def create_record(root: str, container_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Create the container directory and its first state.json."""
    directory = container_dir(root, container_id)
    os.makedirs(directory)
    record = {
        "id": container_id,
        "name": "",
        "image": "",
        "image_id": "",
        "created": now(),
        "status": STATUS_CREATED,
        "pid": 0,
        "exit_code": None,
        "started_at": None,
        "finished_at": None,
    }
    record.update(fields)
    with _RecordLock(directory, create=True):
        _write(directory, record)
    return record


def load_record(root: str, container_id: str) -> dict[str, Any]:
    path = os.path.join(container_dir(root, container_id), "state.json")
    try:
        return jsonio.loads(fileio.read_bytes(path))
    except FileNotFoundError:
        raise ContainerNotFoundError(f"no such container: {container_id}") from None


def update_record(root: str, container_id: str, **changes: Any) -> dict[str, Any]:
    """Apply `changes` to the record under its lock and return the new record."""
    directory = container_dir(root, container_id)
    with _RecordLock(directory):
        record = load_record(root, container_id)
        record.update(changes)
        _write(directory, record)
    return record


def list_records(root: str) -> list[dict[str, Any]]:
    """Return every container's record, oldest first, skipping directories without one."""
    records = []
    try:
        entries = os.listdir(containers_dir(root))
    except FileNotFoundError:
        return []
    for entry in entries:
        try:
            records.append(load_record(root, entry))
        except (NotFoundError, ValueError):
            continue
    return sorted(records, key=lambda record: record.get("created", ""))


def find_container(root: str, reference: str) -> str:
    """Return the ID for a name, a full ID or a unique ID prefix."""
    if not reference:
        raise UsageError("an empty string is not a container name or ID (list containers with pyrun ps -a)")
    by_name = id_for_name(root, reference)
    if by_name:
        return by_name
    try:
        matches = [entry for entry in os.listdir(containers_dir(root)) if entry.startswith(reference)]
    except FileNotFoundError:
        matches = []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(f"container ID prefix {reference!r} is ambiguous: it matches {len(matches)} containers")
    raise ContainerNotFoundError(f"no such container: {reference}")


def remove_container(root: str, container_id: str) -> None:
    """Delete the container's directory and release its name.

    The directory goes under the record's lock, so an update that waits for
    the lock (a `ps` that records an exit) finds the record gone and writes
    nothing into the directory being removed.
    """
    try:
        name = load_record(root, container_id).get("name", "")
    except (NotFoundError, ValueError):
        name = ""
    if name:
        release_name(root, name, container_id)
    directory = container_dir(root, container_id)
    try:
        with _RecordLock(directory):
            remove_tree(directory)
    except ContainerNotFoundError:
        remove_tree(directory)  # no lock file: a directory that a killed create or rm left


def remove_tree(path: str) -> None:
    """Delete the directory `path` and everything in it, skipping what cannot be removed.

    This does what shutil.rmtree(path, ignore_errors=True) does, without
    importing shutil (with bz2, lzma and fnmatch), which `run --rm` would
    otherwise pay for. Like rmtree, it never follows a symbolic link: each
    directory is opened with O_NOFOLLOW relative to its parent's descriptor,
    so a link swapped in while it runs cannot redirect it outside `path`.
    """
    try:
        directory_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        _empty_directory(directory_fd)
    finally:
        os.close(directory_fd)
    try:
        os.rmdir(path)
    except OSError:
        pass


def _empty_directory(directory_fd: int) -> None:
    """Remove what the open directory `directory_fd` contains, depth first."""
    try:
        with os.scandir(directory_fd) as entries:
            names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    except OSError:
        return
    for name, is_directory in names:
        if is_directory:
            try:
                child_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                   dir_fd=directory_fd)
            except OSError:
                continue
            try:
                _empty_directory(child_fd)
            finally:
                os.close(child_fd)
            try:
                os.rmdir(name, dir_fd=directory_fd)
            except OSError:
                pass
        else:
            try:
                os.unlink(name, dir_fd=directory_fd)
            except OSError:
                pass


class _RecordLock:
    """An exclusive flock(2) on the container's `lock` file, held for a `with` block.

    Only `create` makes the file. Otherwise a missing file, or one that was
    unlinked while this process waited for the lock, means the container
    was removed: ContainerNotFoundError. Making the file again would put it
    back into a directory that remove_container is emptying.

    A class, not contextlib: see "Start-up cost" in docs/architecture.md.
    """

    def __init__(self, directory: str, *, create: bool = False) -> None:
        self.path = os.path.join(directory, "lock")
        self.flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        self.fd = -1

    def __enter__(self) -> None:
        try:
            self.fd = os.open(self.path, self.flags, 0o600)
        except FileNotFoundError:
            raise self._gone() from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            if os.fstat(self.fd).st_nlink == 0:
                raise self._gone()
        except BaseException:
            os.close(self.fd)
            raise

    def _gone(self) -> ContainerNotFoundError:
        container_id = os.path.basename(os.path.dirname(self.path))
        return ContainerNotFoundError(f"no such container: {container_id}")

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)


def _write(directory: str, record: dict[str, Any]) -> None:
    temporary = os.path.join(directory, "state.json.tmp")
    fileio.write_text(temporary, jsonio.dumps(record, indent=2) + "\n")
    os.rename(temporary, os.path.join(directory, "state.json"))
