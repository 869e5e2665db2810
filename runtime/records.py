"""Record classes without the dataclasses module, for pyrun's start-up path.

Every `pyrun` command starts a new interpreter, so every import is paid on
every start. Importing dataclasses costs about 6 ms on the development VM
(it imports inspect, and with it ast, dis and tokenize), and each class
about 0.3 ms more, because dataclasses compiles the methods of each class
with exec(). `record` reads the fields from the class's annotations and
gives the class the same methods with neither:

    @record(frozen=True)
    class PortMapping:
        container_port: int
        protocol: str = "tcp"
        tags: list[str] = factory(list)    # a new list for each record

A record has an __init__ taking the fields in order (positional or by
name), an __eq__ comparing the fields of two records of the same class and
a __repr__ listing them. A frozen record's fields cannot be set after
__init__, and it can be hashed. That is all pyrun needs.

The layer unpacker (runtime.layers) keeps dataclasses: it runs only with
a pull, which imports far more, and it makes one object per tar entry,
where the __init__ that dataclasses generates is faster than this one.
"""

from __future__ import annotations


class factory:
    """A field default made anew for each record: `factory(list)` gives each record its own list."""

    __slots__ = ("make",)

    def __init__(self, make) -> None:
        self.make = make


def record(cls=None, *, frozen: bool = False):
    """Make `cls` a record; use as `@record` or `@record(frozen=True)`."""
    if cls is None:
        return lambda cls: _make_record(cls, frozen)
    return _make_record(cls, frozen)


def _make_record(cls, frozen: bool):
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {name: cls.__dict__[name] for name in names if name in cls.__dict__}
    for name, default in defaults.items():
        if isinstance(default, factory):
            # The class attribute would be a factory object, not a value.
            delattr(cls, name)
    class_name = cls.__name__

    def __init__(self, *args, **kwargs):
        if len(args) > len(names):
            raise TypeError(f"{class_name}() takes {len(names)} arguments but {len(args)} were given")
        unknown = set(kwargs).difference(names)
        if unknown:
            raise TypeError(f"{class_name}() got an unexpected argument {sorted(unknown)[0]!r}")
        for position, name in enumerate(names):
            if position < len(args):
                if name in kwargs:
                    raise TypeError(f"{class_name}() got two values for argument {name!r}")
                value = args[position]
            elif name in kwargs:
                value = kwargs[name]
            elif name in defaults:
                value = defaults[name]
                if isinstance(value, factory):
                    value = value.make()
            else:
                raise TypeError(f"{class_name}() is missing the argument {name!r}")
            object.__setattr__(self, name, value)

    def fields(self) -> tuple:
        return tuple(getattr(self, name) for name in names)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return fields(self) == fields(other)

    def __repr__(self):
        listed = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{cls.__qualname__}({listed})"

    cls.__init__ = __init__
    cls.__eq__ = __eq__
    cls.__repr__ = __repr__
    if frozen:
        cls.__setattr__ = _reject_change
        cls.__delattr__ = _reject_change
        cls.__hash__ = lambda self: hash(fields(self))
    else:
        # Equal records must hash equal, and a changeable one cannot: as with
        # dataclasses, a record that is not frozen cannot be hashed.
        cls.__hash__ = None
    return cls


def _reject_change(self, name, *value):
    raise AttributeError(f"cannot change field {name!r} of a frozen {type(self).__name__}")
