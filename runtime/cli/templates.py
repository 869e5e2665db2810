"""The small part of Go's text/template that `ps --format` and `images --format` accept.

    {{.Names}}\t{{.Status}}     one line per row; \t and \n become a tab and a newline
    table {{.ID}}\t{{.Names}}   a table with Docker's column headers
    {{json .}}  or  json        the whole row as one JSON object per line

Anything else (another action, a field the row does not have, braces left
open) is an error that names the template, where Docker prints its template
parser's error.
"""

from __future__ import annotations

import json
import re

from runtime.errors import UsageError

FIELD = re.compile(r"{{\s*\.(\w+)\s*}}")
WHOLE_ROW = re.compile(r"{{\s*json\s+\.\s*}}")
ACTION = re.compile(r"{{.*?}}")


def from_flag(value: str) -> str:
    """Return the template for a --format value, where `json` is short for {{json .}}."""
    return "{{json .}}" if value == "json" else value


def _unescape(text: str) -> str:
    """Turn the two characters backslash-t and backslash-n into a tab and a newline, as Docker does."""
    return text.replace("\\t", "\t").replace("\\n", "\n")


def check(template: str, fields: list[str]) -> None:
    """Raise UsageError unless every action in `template` is {{.Field}} with a known field, or {{json .}}."""
    body = template.removeprefix("table")
    for action in ACTION.findall(body):
        if WHOLE_ROW.fullmatch(action):
            continue
        field = FIELD.fullmatch(action)
        if field is None:
            raise UsageError(f"invalid --format {template!r}: {action} is not supported",
                             hint="use {{.Field}} or {{json .}}")
        if field.group(1) not in fields:
            raise UsageError(f"invalid --format {template!r}: there is no field {field.group(1)!r}",
                             hint=f"use one of {', '.join(fields)}")
    outside_actions = ACTION.sub("", body)
    if "{{" in outside_actions or "}}" in outside_actions:
        raise UsageError(f"invalid --format {template!r}: a {{{{ has no matching }}}}")


def render(template: str, row: dict) -> str:
    """Fill one line of `template` from `row`, in one pass, so no value is read as an action."""

    def fill(match: re.Match) -> str:
        if WHOLE_ROW.fullmatch(match.group(0)):
            return json.dumps(row)
        field = FIELD.fullmatch(match.group(0))
        return str(row.get(field.group(1), "")) if field else match.group(0)

    return ACTION.sub(fill, _unescape(template))


def table_fields(template: str) -> list[str]:
    """Return the fields a `table ...` template shows, in order."""
    return FIELD.findall(template)


def is_default_table(template: str) -> bool:
    """True for no template, or a bare `table`: both print the command's own columns."""
    return template.strip() in ("", "table")


def table(template: str, rows: list[dict], headers: dict[str, str]) -> list[list[str]]:
    """Render a `table ...` template as Docker does: each row whole, split into cells at tabs.

    The header line is the same template with each field replaced by its
    column header (`headers`, else the field in capitals).
    """
    body = template.strip().removeprefix("table").strip()

    def header(match: re.Match) -> str:
        field = FIELD.fullmatch(match.group(0))
        return headers.get(field.group(1), field.group(1).upper()) if field else ""

    header_line = ACTION.sub(header, _unescape(body))
    return [header_line.split("\t")] + [render(body, row).split("\t") for row in rows]
