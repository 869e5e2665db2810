"""runtime.jsonio against the json package: same values, same text, same errors."""

from __future__ import annotations

import io
import json
import math

import pytest

from runtime import jsonio

VALUES = [
    None, True, False, 0, -1, 2**64, -(10**40), 0.1, -2.5e-300, 1e308, 3.0,
    "", "plain", "quote \" backslash \\ slash /", "tab\tnewline\ncontrol\x01", "é ü 中文 🐳", "\u2028",
    [], {}, [1, [2, [3, []]]], {"a": {"b": {"c": {}}}},
    {"id": "a" * 64, "pid": 0, "exit_code": None, "env": ["PATH=/bin", "LANG=C.UTF-8"], "ratio": 0.5},
    {"z": 1, "a": [True, None, "x"], "m": {"k": [{}, []]}},
    (1, 2, ("three",)),
]

TEXTS = [
    "null", "true", " 1 ", "\n\t[1, 2]\r\n", "-0", "1E400", "-1e-400", "123456789012345678901234567890",
    '"\\u00e9\\ud83d\\udc33"', '{"a": 1, "a": 2}', '{"nested": [{"x": [1.5, -2]}]}', '"é"',
]

INVALID = [
    "", " ", "nul", "[1,]", "{'a': 1}", '{"a" 1}', "[1 2]", "1 2", '"unterminated', '"bad \\x escape"',
    '"control \x01 character"', "\ufeff{}", "{} x", "[", "01", "+1", ".5", "tru",
]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_matches_json(value):
    assert jsonio.dumps(value) == json.dumps(value)


@pytest.mark.parametrize("value", VALUES)
def test_dumps_indented_matches_json(value):
    assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)
    assert jsonio.dumps(value, indent=0) == json.dumps(value, indent=0)
    assert jsonio.dumps(value, indent="\t") == json.dumps(value, indent="\t")


@pytest.mark.parametrize("value", VALUES)
def test_dumps_options_match_json(value):
    compact = (",", ":")
    assert jsonio.dumps(value, separators=compact) == json.dumps(value, separators=compact)
    assert jsonio.dumps(value, sort_keys=True) == json.dumps(value, sort_keys=True)
    assert jsonio.dumps(value, indent=2, sort_keys=True) == json.dumps(value, indent=2, sort_keys=True)


@pytest.mark.parametrize("value", VALUES)
def test_round_trip(value):
    expected = json.loads(json.dumps(value))
    assert jsonio.loads(jsonio.dumps(value)) == expected
    assert jsonio.loads(jsonio.dumps(value, indent=2)) == expected


def test_dumps_non_string_keys_like_json():
    value = {1: "int", 2.5: "float", True: "bool", None: "null"}
    assert jsonio.dumps(value) == json.dumps(value)
    assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_dumps_nan_and_infinity_like_json():
    value = [math.nan, math.inf, -math.inf, {"x": math.nan}]
    assert jsonio.dumps(value) == json.dumps(value)
    assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)


def test_dumps_unknown_type_raises_type_error():
    for indent in (None, 2):
        with pytest.raises(TypeError, match="not JSON serializable"):
            jsonio.dumps({"a": {1, 2}}, indent=indent)


def test_dumps_circular_raises_value_error():
    looped: list = []
    looped.append(looped)
    for indent in (None, 2):
        with pytest.raises(ValueError, match="Circular reference"):
            jsonio.dumps(looped, indent=indent)


def test_dumps_same_list_twice_is_no_cycle():
    shared = [1]
    value = {"a": shared, "b": shared}
    assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)


@pytest.mark.parametrize("text", TEXTS)
def test_loads_matches_json(text):
    assert jsonio.loads(text) == json.loads(text)


def test_loads_constants_like_json():
    assert math.isnan(jsonio.loads("NaN"))
    assert jsonio.loads("[Infinity, -Infinity]") == [math.inf, -math.inf]


def test_loads_bytes():
    assert jsonio.loads('{"é": 1}'.encode()) == {"é": 1}
    assert jsonio.loads(b"\xef\xbb\xbf[1]") == [1]


def test_loads_two_byte_order_marks():
    text = b"\xef\xbb\xbf\xef\xbb\xbf[1]"
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(jsonio.JSONDecodeError) as raised:
        jsonio.loads(text)
    assert str(raised.value) == str(expected.value)


def test_loads_big_int_and_float_types():
    assert type(jsonio.loads("1.0")) is float
    assert jsonio.loads("123456789012345678901234567890") == 123456789012345678901234567890


@pytest.mark.parametrize("text", INVALID)
def test_loads_invalid_like_json(text):
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(jsonio.JSONDecodeError) as raised:
        jsonio.loads(text)
    assert str(raised.value) == str(expected.value)
    assert raised.value.pos == expected.value.pos


def test_decode_error_is_value_error():
    with pytest.raises(ValueError):
        jsonio.loads("{")


def test_load_and_dump_files():
    stream = io.StringIO()
    jsonio.dump({"a": [1, 2]}, stream, indent=2)
    assert stream.getvalue() == json.dumps({"a": [1, 2]}, indent=2)
    stream.seek(0)
    assert jsonio.load(stream) == {"a": [1, 2]}


def test_module_imports_no_json(tmp_path):
    import subprocess
    import sys

    code = ("import sys, runtime.jsonio; runtime.jsonio.loads(b'\\xef\\xbb\\xbf[1]');"
            "print('json' in sys.modules, 're' in sys.modules, 'encodings.utf_8_sig' in sys.modules)")
    root = __file__.rsplit("/tests/", 1)[0]
    output = subprocess.run([sys.executable, "-IS", "-c", f"import sys; sys.path.insert(0, {root!r}); {code}"],
                            capture_output=True, text=True, check=True).stdout
    assert output.split() == ["False", "False", "False"]
