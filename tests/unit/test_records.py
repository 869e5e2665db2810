"""runtime.records: record classes built from annotations."""

import pytest

from runtime.records import factory, record


@record
class Mount:
    destination: str
    source: str = "none"
    options: list = factory(list)


@record(frozen=True)
class Port:
    number: int
    protocol: str = "tcp"


def test_record_positional_and_keyword_arguments():
    mount = Mount("/data", source="/srv")
    assert mount.destination == "/data"
    assert mount.source == "/srv"


def test_record_defaults_and_fresh_factory_values():
    first, second = Mount("/a"), Mount("/b")
    assert first.source == "none"
    assert first.options == []
    first.options.append("ro")
    assert second.options == []


def test_record_factory_leaves_no_class_attribute():
    assert not hasattr(Mount, "options")
    assert Mount.source == "none"


@pytest.mark.parametrize("call, message", [
    (lambda: Mount(), "missing the argument 'destination'"),
    (lambda: Mount("/a", bogus=1), "unexpected argument 'bogus'"),
    (lambda: Mount("/a", "/b", [], "extra"), "takes 3 arguments but 4 were given"),
    (lambda: Mount("/a", destination="/b"), "two values for argument 'destination'"),
])
def test_record_rejects_wrong_arguments(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_record_equality_by_fields():
    assert Mount("/a") == Mount("/a")
    assert Mount("/a") != Mount("/b")
    assert Port(80) != (80, "tcp")


def test_record_repr_lists_fields():
    assert repr(Port(80)) == "Port(number=80, protocol='tcp')"


def test_frozen_record_is_hashable_and_read_only():
    port = Port(80)
    assert hash(port) == hash(Port(80))
    assert {port: 1}[Port(80)] == 1
    with pytest.raises(AttributeError, match="frozen Port"):
        port.number = 81
    with pytest.raises(AttributeError):
        del port.protocol


def test_changeable_record_is_not_hashable():
    with pytest.raises(TypeError):
        hash(Mount("/a"))
