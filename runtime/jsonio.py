"""JSON reading and writing without importing the json package.

Every `pyrun` command starts a new interpreter, and `import json` costs
about 15 ms there on the development VM (json imports re, and re imports
enum). The parsing and encoding themselves are done by `_json`, the C
accelerator that json uses too, and `_json` imports nothing. This module
calls it directly and mirrors the part of json's interface that pyrun needs:

    loads(text)  load(file)  dumps(value, indent=2)  dump(value, file)

The results are the same as json's with its defaults: NaN and Infinity
are accepted and written, non-ASCII characters are written as \\u escapes,
and `indent` gives the same layout as json's. Invalid text raises
JSONDecodeError, a ValueError. When `_json` is missing (an interpreter
built without it), the functions fall back to the json package.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython builds _json by default
    _json = None

WHITESPACE = " \t\n\r"  # the four characters JSON allows between tokens (RFC 8259)
CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class JSONDecodeError(ValueError):
    """Invalid JSON text, with the same attributes as json.JSONDecodeError."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        lineno = doc.count("\n", 0, pos) + 1
        colno = pos - doc.rfind("\n", 0, pos)
        super().__init__(f"{msg}: line {lineno} column {colno} (char {pos})")
        self.msg = msg
        self.doc = doc
        self.pos = pos
        self.lineno = lineno
        self.colno = colno

    def __reduce__(self):
        return self.__class__, (self.msg, self.doc, self.pos)


class _ScannerContext:
    """The settings `_json.make_scanner` reads, set as json.loads sets them by default."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = CONSTANTS.__getitem__


def _make_encoder(item_separator: str, key_separator: str, sort_keys: bool) -> Any:
    """Return `_json`'s encoder for one-line output, with json's defaults otherwise."""
    return _json.make_encoder(
        {},  # markers: the ids of the containers being encoded, to detect a cycle
        _reject_unknown_type,
        _json.encode_basestring_ascii,
        None,  # indent: the C encoder of Python 3.11 cannot indent
        key_separator,
        item_separator,
        sort_keys,
        False,  # skipkeys
        True,  # allow_nan
    )


def _reject_unknown_type(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


if _json is not None:
    _scan_once = _json.make_scanner(_ScannerContext())


def loads(text: str | bytes) -> Any:
    """Parse one JSON value; raise JSONDecodeError when `text` is not exactly one."""
    if _json is None:  # pragma: no cover
        return _loads_with_json(text)
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")  # NOTE: json also reads UTF-16 and UTF-32 bytes
        # json decodes bytes with the "utf-8-sig" codec, which drops one byte
        # order mark. That codec is a module of its own (an estimated 0.4 ms
        # to import here), so the mark is dropped by hand.
        if text.startswith("\ufeff"):
            text = text[1:]
    elif text.startswith("\ufeff"):
        raise JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    start = len(text) - len(text.lstrip(WHITESPACE))
    try:
        value, end = _scan_once(text, start)
    except StopIteration as err:
        raise JSONDecodeError("Expecting value", text, err.value) from None
    except ValueError as err:
        # `_json` raises json.JSONDecodeError for some errors (it imports
        # json.decoder to do so). It has `msg` and `pos`; other ValueErrors
        # (an integer with too many digits) go up as they are, as from json.
        if not hasattr(err, "pos"):
            raise
        raise JSONDecodeError(err.msg, text, err.pos) from None
    rest = text[end:].lstrip(WHITESPACE)
    if rest:
        raise JSONDecodeError("Extra data", text, len(text) - len(rest))
    return value


def load(file: IO[str]) -> Any:
    """Parse the JSON value that fills the open file `file`."""
    return loads(file.read())


def dumps(value: Any, *, indent: int | str | None = None, separators: tuple[str, str] | None = None,
          sort_keys: bool = False) -> str:
    """Return `value` as JSON text, laid out as json.dumps lays it out with the same arguments."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(value, indent=indent, separators=separators, sort_keys=sort_keys)
    if separators is None:
        separators = (",", ": ") if indent is not None else (", ", ": ")
    item_separator, key_separator = separators
    if indent is None:
        return "".join(_make_encoder(item_separator, key_separator, sort_keys)(value, 0))
    # Containers are laid out here, one item per line; the C encoder writes the rest.
    leaf_encoder = _make_encoder(item_separator, key_separator, sort_keys)
    parts: list[str] = []
    step = indent if isinstance(indent, str) else " " * indent
    _write_indented(value, parts, leaf_encoder, step, "\n", item_separator, key_separator,
                    sort_keys, set())
    return "".join(parts)


def dump(value: Any, file: IO[str], **options: Any) -> None:
    """Write `value` to the open file `file` as JSON text; `options` are those of dumps."""
    file.write(dumps(value, **options))


def _write_indented(value: Any, parts: list[str], leaf_encoder: Any, step: str, newline: str,
                    item_separator: str, key_separator: str, sort_keys: bool, open_ids: set[int]) -> None:
    """Append `value` to `parts`, each item of a dict or list on a line of its own.

    `newline` is the line break followed by the current indentation, and
    `open_ids` contains the ids of the containers that enclose `value`, so a
    container that contains itself raises ValueError, as in json.
    """
    if isinstance(value, dict):
        opening, closing = "{", "}"
        items = list(value.items())
        if sort_keys:
            items.sort(key=lambda item: item[0])
    elif isinstance(value, (list, tuple)):
        opening, closing = "[", "]"
        items = [(None, item) for item in value]
    else:
        parts.extend(leaf_encoder(value, 0))
        return
    if not items:
        parts.append(opening + closing)
        return
    if id(value) in open_ids:
        raise ValueError("Circular reference detected")
    open_ids.add(id(value))
    inner = newline + step
    parts.append(opening)
    quote = _json.encode_basestring_ascii
    for position, (key, item) in enumerate(items):
        parts.append(inner if position == 0 else item_separator + inner)
        if opening == "{":
            parts.append(quote(_key_text(key)))
            parts.append(key_separator)
        if type(item) is str:
            # Strings, most of the leaves, are quoted here without a call down.
            parts.append(quote(item))
        else:
            _write_indented(item, parts, leaf_encoder, step, inner, item_separator, key_separator,
                            sort_keys, open_ids)
    parts.append(newline + closing)
    open_ids.discard(id(value))


def _key_text(key: Any) -> str:
    """Return a dict key as the string json writes for it: JSON object keys are strings."""
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, float):
        return "".join(_make_encoder(", ", ": ", False)(key, 0))
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _loads_with_json(text: str | bytes) -> Any:  # pragma: no cover - only without _json
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise JSONDecodeError(err.msg, err.doc, err.pos) from None
