"""runtime.cli.templates: the --format templates of ps and images."""

import json

import pytest

from runtime.cli import templates
from runtime.errors import UsageError

FIELDS = ["ID", "Names", "Status"]
ROW = {"ID": "abc", "Names": "web", "Status": "Up 3 seconds"}


def test_fields_tabs_and_newlines():
    assert templates.render("{{.Names}}\\t{{ .Status }}\\n{{.ID}}", ROW) == "web\tUp 3 seconds\nabc"


def test_json_of_the_whole_row():
    assert json.loads(templates.render("{{json .}}", ROW)) == ROW
    assert templates.render("{{ json . }}", ROW) == json.dumps(ROW)


def test_render_value_stays_text():
    row = {**ROW, "Names": "{{.ID}}"}
    assert templates.render("{{.Names}}", row) == "{{.ID}}"


def test_table_fields_in_order():
    assert templates.table_fields("table {{.Status}}\\t{{.ID}}") == ["Status", "ID"]


@pytest.mark.parametrize("template", ["{{.Names}}", "table {{.ID}}\\t{{.Names}}", "{{json .}}", "plain text"])
def test_check_accepts(template):
    templates.check(template, FIELDS)


@pytest.mark.parametrize("template, message", [
    ("{{.Colour}}", "there is no field 'Colour'"),
    ("{{.Names", "a {{ has no matching }}"),
    ("{{.Names}} }}", "a {{ has no matching }}"),
    ("{{if .Names}}x{{end}}", "{{if .Names}} is not supported"),
])
def test_check_rejects(template, message):
    with pytest.raises(UsageError) as caught:
        templates.check(template, FIELDS)
    assert message in str(caught.value)
    assert repr(template) in str(caught.value)


def test_table_splits_rows_at_tabs():
    rows = [{"Repository": "busybox", "Tag": "latest", "Size": "2MB"}]
    table = templates.table("table {{.Repository}}:{{.Tag}}\\t{{.Size}}", rows, {"Repository": "REPOSITORY"})
    assert table == [["REPOSITORY:TAG", "SIZE"], ["busybox:latest", "2MB"]]


@pytest.mark.parametrize("template", ["", "table", "table ", "  table"])
def test_bare_table_is_the_default_table(template):
    assert templates.is_default_table(template)


def test_table_with_fields_not_default():
    assert not templates.is_default_table("table {{.ID}}")
