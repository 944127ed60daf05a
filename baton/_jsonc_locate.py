"""JSONC config files: read them, point into them, and report problems by file, line and column.

json5 reports line and column for syntax errors, but a wrong *value* is found later, by
pydantic, which only knows the key path. To name the line and column of that value we walk
the source text again with a small scanner that understands what json5 accepts: ``//`` and
``/* */`` comments, single- or double-quoted strings with escapes, unquoted keys and
trailing commas. It never builds values; it only skips over them.

Nothing here knows baton's keys: :mod:`baton.config` passes its models in.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import json5
from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

__all__ = [
    "ConfigError",
    "JsoncFile",
    "JsoncSyntaxError",
    "Range",
    "Segment",
    "drop_nulls",
    "key_path",
    "load_jsonc",
    "locate",
    "number_text",
    "parse_jsonc",
    "place",
    "unknown_keys",
    "validate",
]

Segment = str | int
"""One step of a key path: an object key or a list index."""

_Model = TypeVar("_Model", bound=BaseModel)

# json5 words its errors as "<string>:LINE MESSAGE at column COL".
_JSON5_ERROR = re.compile(r"^<string>:(?P<line>\d+) (?P<reason>.*) at column (?P<column>\d+)$", re.DOTALL)
_SCALAR_END = frozenset(",:]}[{\"'/")
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$-]*")


class ConfigError(Exception):
    """A config file that baton refuses to guess about; ``str()`` is one line for the terminal."""

    def __init__(
        self, path: Path | None, line: int | None, column: int | None, key: str | None, reason: str
    ) -> None:
        self.path, self.line, self.column, self.key, self.reason = path, line, column, key, reason
        super().__init__(place(path, line, column, key) + reason)


def place(
    path: Path | None, line: int | None = None, column: int | None = None, key: str | None = None
) -> str:
    """``file:line:column: key: `` with whatever parts are known (empty when none are)."""
    where = str(path) if path is not None else ""
    if where and line is not None:
        where += f":{line}" + (f":{column}" if column is not None else "")
    return "".join(f"{part}: " for part in (where, key) if part)


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
    """``60`` rather than ``60.0``: numbers as a user writes them."""
    return str(int(value)) if float(value).is_integer() else str(value)


class JsoncSyntaxError(ValueError):
    """The text is not JSONC; line and column are 1-based when json5 could tell them."""

    def __init__(self, line: int | None, column: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.column = column
        self.reason = reason


def parse_jsonc(text: str) -> object:
    """Parse JSONC text, turning json5's error wording into line, column and a short reason."""
    try:
        return json5.loads(text)
    except ValueError as exc:
        found = _JSON5_ERROR.match(str(exc))
        if found is None:
            raise JsoncSyntaxError(None, None, _lower_first(str(exc))) from None
        reason = _lower_first(found["reason"]).replace('"\n"', "end of line")
        raise JsoncSyntaxError(int(found["line"]), int(found["column"]), reason) from None


def load_jsonc(path: Path) -> tuple[str, dict[str, Any]]:
    """The text of a JSONC file and its top-level object; any problem is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(path, None, None, None, "not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(path, None, None, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        data = parse_jsonc(text)
    except JsoncSyntaxError as exc:
        raise ConfigError(path, exc.line, exc.column, None, f"syntax error: {exc.reason}") from None
    if not isinstance(data, dict):
        raise JsoncFile(path, text, (), {}).error((), "the top level must be an object")
    return text, data


def drop_nulls(value: Any) -> Any:
    """Remove ``null`` object members, recursively: in a config file null means "not set"."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return value


@dataclass(frozen=True)
class JsoncFile:
    """One file's settings (found under ``prefix`` in ``text``), able to point into its text."""

    path: Path
    text: str
    prefix: tuple[Segment, ...]
    settings: dict[str, Any]

    def where(self, keys: Sequence[Segment], *, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column of the value at ``keys`` (or of its key), if it can be found."""
        found = locate(self.text, (*self.prefix, *keys), key=key)
        return found if found is not None else (None, None)

    def error(self, keys: Sequence[Segment], reason: str, *, key: bool = False) -> ConfigError:
        return ConfigError(self.path, *self.where(keys, key=key), key_path(keys) or None, reason)

    def warning(self, keys: Sequence[Segment], message: str) -> str:
        return place(self.path, *self.where(keys, key=True), key_path(keys) or None) + message


@dataclass(frozen=True)
class Range:
    """Bounds for a number, with a message that names both ends ("between 1 and 20")."""

    low: float
    high: float | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        result = handler(schema)
        result["minimum"] = self.low
        if self.high is not None:
            result["maximum"] = self.high
        return result

    def _check(self, value: float) -> float:
        if not math.isfinite(value):
            raise PydanticCustomError("out_of_range", "must be a finite number")
        if value < self.low or (self.high is not None and value > self.high):
            low = number_text(self.low)
            bounds = f"at least {low}" if self.high is None else f"between {low} and {number_text(self.high)}"
            raise PydanticCustomError("out_of_range", "must be {bounds} (got {got})",
                                      {"bounds": bounds, "got": number_text(value)})
        return value


_REASONS = {
    "int_type": "must be an integer", "int_from_float": "must be an integer",
    "int_parsing": "must be an integer", "bool_type": "must be true or false",
    "bool_parsing": "must be true or false", "string_type": "must be a string",
    "float_type": "must be a number", "float_parsing": "must be a number",
    "dict_type": "must be an object", "model_type": "must be an object",
    "model_attributes_type": "must be an object", "tuple_type": "must be a list",
    "list_type": "must be a list", "string_too_short": "must not be empty",
}


def validate(model: type[_Model], data: object, file: JsoncFile | None) -> _Model:
    """``model.model_validate(data)``; a failure becomes the ConfigError that comes first in the file.

    Custom errors (``PydanticCustomError``) carry their own wording, which is used as it is.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found: list[tuple[tuple[int, int], ConfigError]] = []
        for err in exc.errors(include_url=False):
            keys = list(err["loc"])
            at_key = bool(keys) and keys[-1] == "[key]"  # a map key, not its value, is wrong
            if at_key:
                keys.pop()
            if err["type"] in _REASONS:
                reason = f"{_REASONS[err['type']]} (got {_show(err.get('input'))})"
            else:
                reason = _lower_first(err["msg"])
            error = file.error(keys, reason, key=at_key) if file else ConfigError(
                None, None, None, key_path(keys), reason)
            found.append(((error.line or 0, error.column or 0), error))
        raise min(found, key=lambda item: item[0])[1] from None


def _show(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def unknown_keys(data: object, model: type[BaseModel], path: tuple[Segment, ...] = ()
                 ) -> list[tuple[tuple[Segment, ...], str]]:
    """(key path, message) for each key ``model`` does not read, below ``path``.

    A model may list keys it tolerates in a ``_ignored`` class variable (key -> None to stay
    silent, or a message to give instead of "unknown"), and fields that are not file keys in
    ``_internal``. Nested models and maps of models are walked too.
    """
    out: list[tuple[tuple[Segment, ...], str]] = []
    if not isinstance(data, dict):
        return out
    ignored: dict[str, str | None] = getattr(model, "_ignored", {})
    internal: frozenset[str] = getattr(model, "_internal", frozenset())
    fields = {info.alias or name: info for name, info in model.model_fields.items() if name not in internal}
    for key, value in data.items():
        info = fields.get(key)
        if info is None:
            note = ignored.get(key, "unknown key, ignored")
            out += [((*path, key), note)] if note is not None else []
            continue
        nested, is_map = _nested_model(info.annotation)
        if nested is not None and is_map and isinstance(value, dict):
            for name, item in value.items():
                out += unknown_keys(item, nested, (*path, key, name))
        elif nested is not None:
            out += unknown_keys(value, nested, (*path, key))
    return out


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds, and whether it holds a map of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    args: tuple[Any, ...] = getattr(annotation, "__args__", ())
    if getattr(annotation, "__origin__", None) is dict and len(args) == 2:
        value = args[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            return value, True
    return None, False


def locate(text: str, path: Sequence[Segment], *, key: bool = False) -> tuple[int, int] | None:
    """1-based (line, column) of the value at ``path``, or of its key when ``key`` is true.

    A repeated key resolves to its last occurrence, as json5 keeps the last value.
    Returns None when the path is not in the text (or the text is not JSONC).
    """
    scanner = _Scanner(text)
    try:
        offset = scanner.find(scanner.skip_space(0), tuple(path), key)
    except (IndexError, ValueError):
        return None
    if offset is None:
        return None
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


class _Scanner:
    """Skips over JSONC tokens by offset; raises IndexError/ValueError on text it cannot read."""

    def __init__(self, text: str) -> None:
        self.text = text

    def skip_space(self, i: int) -> int:
        """First offset at or after ``i`` that is neither whitespace nor inside a comment."""
        text = self.text
        while i < len(text):
            char = text[i]
            if char.isspace() or char == "\ufeff":
                i += 1
            elif text.startswith("//", i):
                end = text.find("\n", i)
                i = len(text) if end < 0 else end + 1
            elif text.startswith("/*", i):
                end = text.find("*/", i + 2)
                if end < 0:
                    raise ValueError("unterminated comment")
                i = end + 2
            else:
                break
        return i

    def skip_string(self, i: int) -> int:
        """Offset just past the string that opens at ``i``."""
        quote, text = self.text[i], self.text
        i += 1
        while text[i] != quote:
            i += 2 if text[i] == "\\" else 1
        return i + 1

    def skip_value(self, i: int) -> int:
        """Offset just past the value that starts at ``i``."""
        char = self.text[i]
        if char == "{":
            return self._members(i, None)[0]
        if char == "[":
            return self._elements(i, None)[0]
        if char in "\"'":
            return self.skip_string(i)
        start = i
        while i < len(self.text) and not self.text[i].isspace() and self.text[i] not in _SCALAR_END:
            i += 1
        if i == start:
            raise ValueError("expected a value")
        return i

    def find(self, i: int, path: tuple[Segment, ...], key: bool) -> int | None:
        """Offset of the value (or key) at ``path`` below the value starting at ``i``."""
        if not path:
            return i
        head, rest = path[0], path[1:]
        char = self.text[i]
        if isinstance(head, str) and char == "{":
            hit = self._members(i, head)[1]
        elif isinstance(head, int) and char == "[":
            hit = self._elements(i, head)[1]
        else:
            return None
        if hit is None:
            return None
        key_at, value_at = hit
        if key and not rest:
            return key_at
        return self.find(value_at, rest, key)

    def _members(self, i: int, wanted: str | None) -> tuple[int, tuple[int, int] | None]:
        """Skip the object at ``i``; also return (key, value) offsets of the last ``wanted`` key."""
        hit: tuple[int, int] | None = None
        i = self.skip_space(i + 1)
        while self.text[i] != "}":
            key_at = i
            if self.text[i] in "\"'":
                i = self.skip_string(i)
                name = json5.loads(self.text[key_at:i])
            else:
                i = self.skip_value(i)
                name = self.text[key_at:i]
            i = self.skip_space(i)
            if self.text[i] != ":":
                raise ValueError("expected ':'")
            value_at = self.skip_space(i + 1)
            if name == wanted:
                hit = (key_at, value_at)
            i = self._after_item(self.skip_value(value_at), "}")
        return i + 1, hit

    def _elements(self, i: int, wanted: int | None) -> tuple[int, tuple[int, int] | None]:
        """Skip the list at ``i``; also return the offset of element ``wanted`` (twice)."""
        hit: tuple[int, int] | None = None
        i = self.skip_space(i + 1)
        index = 0
        while self.text[i] != "]":
            if index == wanted:
                hit = (i, i)
            i = self._after_item(self.skip_value(i), "]")
            index += 1
        return i + 1, hit

    def _after_item(self, i: int, closing: str) -> int:
        """Step over the separator after an item; returns the offset of the next item or ``closing``."""
        i = self.skip_space(i)
        if self.text[i] == ",":
            return self.skip_space(i + 1)
        if self.text[i] != closing:
            raise ValueError(f"expected ',' or {closing!r}")
        return i
