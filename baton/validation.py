"""Validation of plain JSON data into frozen dataclasses: the few value kinds baton's settings need.

Why not pydantic: its import, its Rust core and the compiled schemas of baton's models were
~9 MB of an idle ``baton serve`` (target ≤ 50 MB), for a dozen rules. Here each value kind is a
:class:`Kind`: a check (value in, converted value out, or :class:`Invalid` with every problem
found below it) plus the JSON Schema fragment that documents it, so that the checks and
``baton config schema`` come from one description and cannot drift apart.

The rules are strict where a config file is easy to get wrong (an integer is an ``int``, not
``2.5`` or ``true``; a boolean is ``true``/``false``), and every problem is an :class:`Issue`
with its key path and the reason as a user reads it ("must be an integer (got 2.5)"); the
loader turns the path into file:line:col. A model is a frozen dataclass deriving from
:class:`Model` whose fields say their kind with :func:`setting`; unknown keys are ignored here
(the loader warns about them).

Also here, because the messages need them: :class:`Range` (number bounds with a message
naming both ends) and how a key path or a value is shown to the user. Of baton, only its errors
are imported: :mod:`baton.settings`, which the deciders import, must stay standalone.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, NoReturn, TypeVar, cast

from baton.errors import BatonError

__all__ = [
    "BOOL",
    "STR",
    "Invalid",
    "Issue",
    "Kind",
    "Model",
    "Range",
    "SchemaDef",
    "Segment",
    "after",
    "before",
    "dict_of",
    "fail",
    "file_fields",
    "got",
    "integer",
    "json_schema",
    "key_path",
    "model",
    "nullable",
    "number",
    "number_text",
    "one_of",
    "setting",
    "show_value",
    "tuple_of",
]

Segment = str | int
"""One step of a key path: an object key or a list index."""

_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$-]*")
_M = TypeVar("_M", bound="Model")
_F = TypeVar("_F", bound=Callable[..., Any])
Check = Callable[[Any], Any]

# ---------------------------------------------------------------------------------------------
# Showing keys and values


def key_path(keys: Sequence[Segment]) -> str:
    """``agents.build.fallback_models[0]``; odd names quoted: ``baton.model_fallbacks["p/m"]``."""
    out = ""
    for seg in keys:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif _IDENTIFIER.fullmatch(seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{json.dumps(seg)}]"
    return out


def number_text(value: float) -> str:
    """``60`` rather than ``60.0``: numbers as a user writes them (an integer exactly)."""
    if isinstance(value, int):
        return str(value)
    return str(int(value)) if float(value).is_integer() else str(value)


def show_value(value: object) -> str:
    """A value as a user wrote it, cut to 40 characters: "an object", "a list", ``"text"``, ``12``."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):  # not JSON data, or an integer past Python's digit limit
        text = repr(value) if not isinstance(value, int) else "a number with thousands of digits"
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------
# Problems


class Issue(NamedTuple):
    """One wrong value: where (key path below the value checked), why, and whether the key itself is wrong."""

    loc: tuple[Segment, ...]
    reason: str
    at_key: bool = False


class Invalid(BatonError, ValueError):
    """Every problem found in a value; the loader reports the one that comes first in the file."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        first = issues[0]
        more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
        super().__init__(f"{key_path(first.loc) or 'value'}: {first.reason}{more}")


def fail(reason: str) -> NoReturn:
    """Refuse the value being checked, for ``reason``."""
    raise Invalid([Issue((), reason)])


def got(reason: str, value: object) -> str:
    """``must be an integer (got 2.5)``: the reason, and the value as the user wrote it."""
    return f"{reason} (got {show_value(value)})"


def _under(seg: Segment, exc: Invalid, *, at_key: bool = False) -> list[Issue]:
    """``exc``'s issues moved one step down, below ``seg`` (at ``seg`` itself when the key is wrong)."""
    return [Issue((seg, *issue.loc), issue.reason, at_key or issue.at_key) for issue in exc.issues]


# ---------------------------------------------------------------------------------------------
# Value kinds


class SchemaDef(NamedTuple):
    """A JSON Schema definition a kind refers to that is not a model (``$defs`` entry)."""

    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Kind:
    """A value kind: its check, its JSON Schema, and what the unknown-key walk needs to know."""

    check: Check
    schema: Mapping[str, Any]
    model: type[Model] | None = None
    """The model this kind holds (directly, or as the values of a map when ``is_map``)."""
    is_map: bool = False
    refs: tuple[type[Model] | SchemaDef, ...] = ()
    """Definitions the schema refers to."""

    @property
    def titled(self) -> bool:
        """Whether a property of this kind gets a title in the schema (a model reference does not)."""
        return self.model is None or self.is_map


@dataclass(frozen=True)
class Range:
    """Bounds for a number, with a message that names both ends ("between 1 and 20")."""

    low: float
    high: float | None = None

    def check(self, value: float) -> None:
        """Refuse a value out of bounds, or one that is not finite (an integer past 1e308 counts as not)."""
        try:
            finite = math.isfinite(value)
        except OverflowError:  # what a duration in ms of 400 digits would become at its first use
            finite = False
        if not finite:
            fail("must be a finite number")
        if value < self.low or (self.high is not None and value > self.high):
            low = number_text(self.low)
            bounds = f"at least {low}" if self.high is None else f"between {low} and {number_text(self.high)}"
            fail(f"must be {bounds} (got {number_text(value)})")

    def schema(self) -> dict[str, float]:
        """The bounds as JSON Schema says them."""
        return {"minimum": self.low} if self.high is None else {"maximum": self.high, "minimum": self.low}


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    fail(got("must be true or false", value))


def _str(value: object) -> str:
    if type(value) is str:
        return value
    fail(got("must be a string", value))


BOOL = Kind(_bool, {"type": "boolean"})
"""``true`` or ``false``, nothing else (not 1, not "yes")."""
STR = Kind(_str, {"type": "string"})
"""A string, nothing else (not a number)."""


def integer(low: int, high: int | None = None) -> Kind:
    """An integer within bounds: not a float (``2.0`` neither), not a boolean."""
    bounds = Range(low, high)

    def check(value: object) -> int:
        if type(value) is not int:
            fail(got("must be an integer", value))
        bounds.check(value)
        return value

    return Kind(check, {**bounds.schema(), "type": "integer"})


def number(low: float, high: float | None = None) -> Kind:
    """A finite number within bounds, as a float; an integer is taken, a boolean or a string is not."""
    bounds = Range(low, high)

    def check(value: object) -> float:
        if type(value) is float:
            result = value
        elif type(value) is int:
            try:
                result = float(value)
            except OverflowError:  # past 1e308: pydantic's wording kept
                fail(got("must be a number", value))
        else:
            fail(got("must be a number", value))
        bounds.check(result)
        return result

    return Kind(check, {**bounds.schema(), "type": "number"})


def one_of(*choices: str) -> Kind:
    """One of a few strings."""
    shown = [f"'{choice}'" for choice in choices]
    reason = "input should be " + (f"{', '.join(shown[:-1])} or {shown[-1]}" if len(shown) > 1 else shown[0])

    def check(value: object) -> str:
        if type(value) is str and value in choices:
            return value
        fail(reason)

    return Kind(check, {"enum": list(choices), "type": "string"})


def nullable(kind: Kind) -> Kind:
    """``kind``, or null."""
    inner = kind.check
    return dataclasses.replace(kind, check=lambda value: None if value is None else inner(value),
                               schema={"anyOf": [kind.schema, {"type": "null"}]})


def before(shape: Callable[[Any], Any], kind: Kind, *, schema: Mapping[str, Any] | None = None,
           refs: tuple[type[Model] | SchemaDef, ...] = ()) -> Kind:
    """``kind`` of what ``shape`` makes of the value (a shorthand a user may write); ``schema``
    documents the input when it differs from ``kind``'s."""
    inner = kind.check
    return dataclasses.replace(kind, check=lambda value: inner(shape(value)),
                               schema=kind.schema if schema is None else schema, refs=kind.refs + refs)


def after(kind: Kind, then: Callable[[Any], Any]) -> Kind:
    """``kind``, then ``then`` on the checked value (a further rule, or a normal form)."""
    inner = kind.check
    return dataclasses.replace(kind, check=lambda value: then(inner(value)))


def tuple_of(item: Kind) -> Kind:
    """A list of ``item``, kept as a tuple; every wrong entry is reported."""
    check_item = item.check

    def check(value: object) -> tuple[Any, ...]:
        if type(value) is not list and type(value) is not tuple:
            fail(got("must be a list", value))
        out: list[Any] = []
        issues: list[Issue] = []
        for index, entry in enumerate(value):
            try:
                out.append(check_item(entry))
            except Invalid as exc:
                issues += _under(index, exc)
        if issues:
            raise Invalid(issues)
        return tuple(out)

    return Kind(check, {"items": item.schema, "type": "array"}, refs=item.refs)


def dict_of(value_kind: Kind, key: Kind | None = None) -> Kind:
    """An object of ``value_kind`` (keys checked by ``key`` if given; a wrong key is reported at the key)."""
    check_value, check_key = value_kind.check, key.check if key is not None else None

    def check(data: object) -> dict[str, Any]:
        if type(data) is not dict:
            fail(got("must be an object", data))
        out: dict[str, Any] = {}
        issues: list[Issue] = []
        for name, entry in data.items():
            checked_name = name
            if check_key is not None:
                try:
                    checked_name = check_key(name)
                except Invalid as exc:
                    issues += _under(name, exc, at_key=True)
            try:
                out[checked_name] = check_value(entry)
            except Invalid as exc:
                issues += _under(name, exc)
        if issues:
            raise Invalid(issues)
        return out

    is_map = value_kind.model is not None and not value_kind.is_map
    return Kind(check, {"additionalProperties": value_kind.schema, "type": "object"},
                model=value_kind.model if is_map else None, is_map=is_map, refs=value_kind.refs)


def model(cls: type[Model]) -> Kind:
    """A nested model, written as an object."""
    return Kind(_model_check(cls), {"$ref": f"#/$defs/{cls.__name__}"}, model=cls, refs=(cls,))


# ---------------------------------------------------------------------------------------------
# Models


class Model:
    """Base of the settings dataclasses: validation from plain data, and copies with changes.

    The method names are pydantic's, which the settings were written with, so that the code and
    tests that build settings read the same.
    """

    __slots__ = ()
    _ignored: ClassVar[Mapping[str, str | None]] = {}
    """Keys read and ignored: None = silently (upstream knows them), else the warning to give."""

    @classmethod
    def model_validate(cls: type[_M], data: object) -> _M:
        """The model ``data`` describes (unknown keys ignored); :class:`Invalid` lists every problem."""
        result: _M = _model_check(cls)(data)
        return result

    def model_copy(self: _M, *, update: Mapping[str, Any] | None = None) -> _M:
        """A copy with ``update``'s fields replaced (not validated)."""
        this: Any = self
        result: _M = dataclasses.replace(this, **(update or {}))
        return result


def setting(kind: Kind, default: Any = dataclasses.MISSING, *, alias: str | None = None,
            factory: Callable[[], Any] | None = None) -> Any:
    """A model field a file sets: its kind, its default (or ``factory``), and its file key if not its name."""
    metadata = {"kind": kind, "key": alias}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _settings(cls: type[Model]) -> list[tuple[str, dataclasses.Field[Any], Kind]]:
    """(file key, field, kind) of each field a file may set, in the order they are declared."""
    fields: tuple[dataclasses.Field[Any], ...] = dataclasses.fields(cls)  # type: ignore[arg-type]
    return [(f.metadata["key"] or f.name, f, f.metadata["kind"]) for f in fields if "kind" in f.metadata]


def _per_model(fn: _F) -> _F:
    """``functools.cache``, keeping ``fn``'s signature (to mypy a class is not ``Hashable``)."""
    return cast(_F, functools.cache(fn))


@_per_model
def _model_check(cls: type[Model]) -> Check:
    """The check of a model (built once per model): an object whose known keys are each checked.

    Every problem is reported.
    """
    by_key = {key: (field.name, kind.check, order) for order, (key, field, kind) in enumerate(_settings(cls))}

    def check(data: object) -> Model:
        if isinstance(data, cls):
            return data
        if type(data) is not dict:
            fail(got("must be an object", data))
        values: dict[str, Any] = {}
        found: list[tuple[int, list[Issue]]] = []
        for key, value in data.items():
            entry = by_key.get(key)
            if entry is None:
                continue
            try:
                values[entry[0]] = entry[1](value)
            except Invalid as exc:
                found.append((entry[2], _under(key, exc)))
        if found:  # in the order the fields are declared (what decides a tie of places in the file)
            raise Invalid([issue for _, issues in sorted(found, key=lambda item: item[0]) for issue in issues])
        return cls(**values)

    return check


@_per_model
def file_fields(cls: type[Model]) -> dict[str, tuple[type[Model] | None, bool]]:
    """File key -> (the model it holds, whether a map of them) for each field a file may set."""
    return {key: (kind.model, kind.is_map) for key, _, kind in _settings(cls)}


# ---------------------------------------------------------------------------------------------
# JSON Schema


def json_schema(cls: type[Model]) -> dict[str, Any]:
    """JSON Schema (2020-12) of the keys ``cls`` reads, its nested models under ``$defs``."""
    defs: dict[str, Any] = {}
    pending: list[type[Model] | SchemaDef] = [cls]
    while pending:
        item = pending.pop()
        name = item.name if isinstance(item, SchemaDef) else item.__name__
        if name in defs:
            continue
        if isinstance(item, SchemaDef):
            defs[name] = dict(item.schema)
            continue
        defs[name] = _model_schema(item)
        pending += [ref for _, _, kind in _settings(item) for ref in kind.refs]
    top = defs.pop(cls.__name__)
    schema: dict[str, Any] = _sorted({"$defs": dict(sorted(defs.items())), **top} if defs else top)
    return schema


def _model_schema(cls: type[Model]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for key, field, kind in _settings(cls):
        prop = dict(kind.schema)
        if kind.titled:
            prop["title"] = key.replace("_", " ").title()
        if field.default is not dataclasses.MISSING:
            prop["default"] = _plain(field.default)
        properties[key] = prop
    schema: dict[str, Any] = {"properties": properties, "title": cls.__name__, "type": "object"}
    if cls.__doc__:
        schema["description"] = inspect.cleandoc(cls.__doc__)
    return schema


def _plain(value: object) -> object:
    """A default as JSON data: a model as its object (by file key), a tuple as a list."""
    if isinstance(value, Model):
        return {key: _plain(getattr(value, field.name)) for key, field, _ in _settings(type(value))}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _sorted(schema: Any, *, keep: bool = False) -> Any:
    """Keys sorted, as JSON Schema tools print them; a model's properties and defaults keep their order."""
    if isinstance(schema, dict):
        items = schema.items() if keep else sorted(schema.items())
        return {key: _sorted(value, keep=key in ("properties", "default") and not keep) for key, value in items}
    if isinstance(schema, list):
        return [_sorted(item) for item in schema]
    return schema
