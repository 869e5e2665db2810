"""Image references: parse `httpd`, `user/app:1.0`, `host:5000/a/b@sha256:...`.

The grammar is the one of the distribution project's `reference` package
(also used by Docker):

    reference := name [ ":" tag ] [ "@" digest ]
    name      := [ domain "/" ] path
    domain    := host [ ":" port ]        e.g. localhost:5000, quay.io
    path      := component [ "/" component ]*, lowercase [a-z0-9] with
                 ".", "_", "__" or runs of "-" between alphanumerics
    host      := dns-label [ "." dns-label ]* | "[" [0-9A-Fa-f:.]+ "]"   (an IPv6 address, loosely)
    dns-label := [A-Za-z0-9], or [A-Za-z0-9] [A-Za-z0-9-]* [A-Za-z0-9]
    port      := [0-9]+
    tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest    := "sha256:" 64 lowercase hex digits

Docker's normalisation then fills in what the user left out. The first path
component is a registry host only when it contains "." or ":", is
`localhost`, or has uppercase letters. Otherwise the registry is Docker Hub
(`docker.io`). A single-component name on Docker Hub lives under `library/`,
and a reference with neither tag nor digest means the tag `latest`.

The checks below are plain string code, not regular expressions: `pyrun
run` parses a reference on every start, and importing `re` costs about
10 ms (python -X importtime, Python 3.11).
"""

from __future__ import annotations

from registry_client.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
# Older clients and config files name Docker Hub by these hosts.
DOCKER_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io"}
DEFAULT_TAG = "latest"
NAME_MAX_LENGTH = 255

TAG_MAX_LENGTH = 128

# ASCII only: str.isalnum() and str.isdigit() would accept other scripts.
DIGITS = frozenset("0123456789")
LOWERCASE_HEX = DIGITS | frozenset("abcdef")
LOWERCASE_ALPHANUMERIC = DIGITS | frozenset("abcdefghijklmnopqrstuvwxyz")
ALPHANUMERIC = LOWERCASE_ALPHANUMERIC | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DNS_LABEL_CHARACTERS = ALPHANUMERIC | {"-"}
IPV6_CHARACTERS = DIGITS | frozenset("abcdefABCDEF:.")
TAG_CHARACTERS = ALPHANUMERIC | {"_", ".", "-"}
PATH_CHARACTERS = LOWERCASE_ALPHANUMERIC | {".", "_", "-"}


class Reference:
    """A normalised image reference: registry, repository, tag and/or digest.

    `registry` is "docker.io" or "localhost:5000", `repository`
    "library/httpd" or "a/b"; `tag` and `digest` may be None. References
    are immutable and compare by their four fields. A plain class, not a
    dataclass or a named tuple: `pyrun run` parses a reference on every
    start, and importing either module costs more than the whole parse.
    """

    __slots__ = ("registry", "repository", "tag", "digest")

    def __init__(self, registry: str, repository: str, tag: str | None = None, digest: str | None = None) -> None:
        for name, value in (("registry", registry), ("repository", repository), ("tag", tag), ("digest", digest)):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Reference cannot be changed: {name}")

    def _fields(self) -> tuple:
        return (self.registry, self.repository, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple:
        # copy, deepcopy and pickle rebuild it through __init__, because __setattr__ raises.
        return (Reference, self._fields())

    def __repr__(self) -> str:
        return (f"Reference(registry={self.registry!r}, repository={self.repository!r}, "
                f"tag={self.tag!r}, digest={self.digest!r})")

    @property
    def name(self) -> str:
        """The full repository name: `docker.io/library/httpd`."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker shows it: `httpd`, `user/app`, `host:5000/a`."""
        if self.registry != DOCKER_HUB:
            return self.name
        if self.repository.startswith("library/") and self.repository.count("/") == 1:
            return self.repository[len("library/"):]
        return self.repository

    @property
    def is_docker_hub(self) -> bool:
        return self.registry == DOCKER_HUB

    def manifest_reference(self) -> str:
        """Return the digest, else the tag, for `/v2/<name>/manifests/<reference>`."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        return self._render(self.name)

    def familiar(self) -> str:
        """Render the short form Docker prints: `httpd:latest`, `user/app@sha256:...`."""
        return self._render(self.familiar_name)

    def _render(self, name: str) -> str:
        text = name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise an image reference.

    With `default_tag`, a reference with neither tag nor digest gets the
    tag `latest`, as `docker pull` does. Raises `InvalidReferenceError`
    quoting the input and naming the part that is wrong.
    """
    original = text
    if not text:
        raise InvalidReferenceError("invalid reference format: the image name is empty")
    if _is_lowercase_hex(text, 64):
        raise InvalidReferenceError(
            f"invalid repository name {original!r}: a 64-character hexadecimal "
            "string is an image ID, not a name")

    name, tag, digest = _split(text)
    registry, path = _split_domain(original, name)
    _check_path(original, path)
    if tag is not None and not is_valid_tag(tag):
        raise InvalidReferenceError(
            f"invalid reference format {original!r}: invalid tag {tag!r} "
            "(use letters, digits, '_', '.' and '-', at most 128 characters, "
            "not starting with '.' or '-')")
    if digest is not None:
        _check_digest(original, digest)
    if len(f"{registry}/{path}") > NAME_MAX_LENGTH:
        raise InvalidReferenceError(
            f"invalid reference format {original!r}: the repository name is longer "
            f"than {NAME_MAX_LENGTH} characters")

    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)


def normalize_registry_host(host: str) -> str:
    """Map Docker Hub's aliases to `docker.io`; other hosts are returned unchanged."""
    if host in DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    return host


def _split(text: str) -> tuple[str, str | None, str | None]:
    """Split `name[:tag][@digest]` into its three parts."""
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
    tag = None
    # A ":" after the last "/" separates the tag; one before it is a port.
    last_slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > last_slash:
        text, tag = text[:colon], text[colon + 1:]
    return text, tag, digest


def _split_domain(original: str, name: str) -> tuple[str, str]:
    """Split the registry host off `name`, following Docker's rule."""
    first, slash, rest = name.partition("/")
    is_domain = slash and (
        "." in first or ":" in first or first == "localhost" or first != first.lower())
    if not is_domain:
        return DOCKER_HUB, name
    if not is_valid_domain(first):
        raise InvalidReferenceError(
            f"invalid reference format {original!r}: invalid registry host {first!r}")
    return normalize_registry_host(first), rest


def _check_path(original: str, path: str) -> None:
    if not path:
        raise InvalidReferenceError(
            f"invalid reference format {original!r}: the repository name is empty")
    for component in path.split("/"):
        if is_valid_path_component(component):
            continue
        if component.lower() != component and is_valid_path_component(component.lower()):
            raise InvalidReferenceError(
                f"invalid reference format {original!r}: repository name must be lowercase")
        raise InvalidReferenceError(
            f"invalid reference format {original!r}: invalid repository name component "
            f"{component!r} (use lowercase letters and digits, separated by '.', '_', "
            "'__' or '-')")


def _check_digest(original: str, digest: str) -> None:
    if digest.startswith("sha256:") and _is_lowercase_hex(digest[len("sha256:"):], 64):
        return
    algorithm = digest.partition(":")[0]
    if ":" in digest and algorithm != "sha256":
        raise InvalidReferenceError(
            f"invalid reference format {original!r}: unsupported digest algorithm "
            f"{algorithm!r} (pyrun supports sha256)")
    raise InvalidReferenceError(
        f"invalid reference format {original!r}: invalid digest {digest!r} "
        "(expected sha256: followed by 64 lowercase hexadecimal digits)")


# -- The grammar's terminals -------------------------------------------------------


def is_valid_tag(tag: str) -> bool:
    """Tell whether `tag` matches [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}."""
    return (
        0 < len(tag) <= TAG_MAX_LENGTH
        and tag[0] not in ".-"
        and set(tag) <= TAG_CHARACTERS
    )


def is_valid_path_component(component: str) -> bool:
    """Tell whether `component` is lowercase alphanumerics joined by ".", "_", "__" or runs of "-"."""
    if not component or not set(component) <= PATH_CHARACTERS:
        return False
    separator = ""
    for character in component:
        if character not in LOWERCASE_ALPHANUMERIC:
            separator += character
            continue
        if separator and not _is_path_separator(separator):
            return False
        separator = ""
    # The component must start and end with an alphanumeric character.
    return separator == "" and component[0] in LOWERCASE_ALPHANUMERIC


def _is_path_separator(separator: str) -> bool:
    return separator in (".", "_", "__") or set(separator) == {"-"}


def is_valid_domain(domain: str) -> bool:
    """Tell whether `domain` is a host name or a bracketed IPv6 address, with an optional port."""
    if domain.startswith("["):
        # The address ends at the first "]"; what follows may only be a port.
        address, bracket, after_host = domain[1:].partition("]")
        host_valid = bracket == "]" and address != "" and set(address) <= IPV6_CHARACTERS
    else:
        host, colon, port = domain.partition(":")
        after_host = colon + port
        host_valid = all(_is_dns_label(label) for label in host.split("."))
    if not host_valid:
        return False
    if not after_host:
        return True
    return after_host[0] == ":" and len(after_host) > 1 and set(after_host[1:]) <= DIGITS


def _is_dns_label(label: str) -> bool:
    return (
        label != ""
        and set(label) <= DNS_LABEL_CHARACTERS
        and label[0] != "-"
        and label[-1] != "-"
    )


def _is_lowercase_hex(text: str, length: int) -> bool:
    return len(text) == length and set(text) <= LOWERCASE_HEX
