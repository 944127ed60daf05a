"""Config problems by file, line and column: the error type, key paths, validation, unknown keys.

Reading and parsing JSONC is :mod:`baton.jsonc`. A wrong *value* is found later, by
:mod:`baton.validation`, which only knows the key path: :class:`JsoncFile` turns that path back
into a line and column with the file's :class:`~baton.jsonc.TextIndex`, which reads each object
on the way once, so that reporting a thousand keys costs one pass over the text.

Nothing here knows baton's keys: :mod:`baton.config` passes its models in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from baton.errors import BatonError
from baton.jsonc import JsoncError, TextIndex, clean, parse, read_text
from baton.settings import Range, Segment, key_path, number_text, show_value
from baton.validation import Invalid, Model, file_fields

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
    "printable",
    "show_value",
    "unknown_keys",
    "validate",
]

_Model = TypeVar("_Model", bound=Model)


class ConfigError(BatonError):
    """A config file that baton refuses to guess about; ``str()`` is one line for the terminal."""

    exit_code = 2

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


_UNPRINTABLE = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
                for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F),
                             *range(0x2066, 0x206A), *range(0xD800, 0xE000)) if code != 0x09}


def printable(text: str) -> str:
    """``text`` with control characters (tabs aside), bidi overrides and surrogates written as escapes.

    For text that came from a user's file or command line and goes to a terminal: an escape
    sequence or a line break in a key cannot restyle the terminal or fake another line, and a
    file name that is not UTF-8 (surrogate-escaped by Python) cannot fail the write.
    """
    return text.translate(_UNPRINTABLE)


JsoncSyntaxError = JsoncError
"""The text is not JSONC (kept under its old name)."""


def parse_jsonc(text: str) -> object:
    """The value of JSONC ``text``; a problem is a :class:`JsoncError` with line and column."""
    return parse(text)[1]


def load_jsonc(path: Path) -> tuple[TextIndex, dict[str, Any]]:
    """An index into a JSONC file's text, and its top-level object; any problem is a ConfigError."""
    try:
        text = read_text(path)
        cleaned, data = parse(text)
    except JsoncError as exc:
        raise ConfigError(path, exc.line, exc.column, None, exc.reason) from None
    source = TextIndex(cleaned)
    if not isinstance(data, dict):
        raise JsoncFile(path, source, (), {}).error((), "the top level must be an object")
    return source, data


def drop_nulls(value: Any) -> Any:
    """Remove ``null`` object members, recursively: in a config file null means "not set"."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    return value


@dataclass(frozen=True)
class JsoncFile:
    """One file's settings (found under ``prefix`` in ``text``), able to point into its text."""

    path: Path
    source: TextIndex
    prefix: tuple[Segment, ...]
    settings: dict[str, Any]

    def where(self, keys: Sequence[Segment], *, key: bool = False) -> tuple[int | None, int | None]:
        """Line and column of the value at ``keys`` (or of its key), if it can be found."""
        try:
            offset = self.source.find((*self.prefix, *keys), key=key)
        except (IndexError, ValueError, RecursionError):
            return None, None
        return (None, None) if offset is None else self.source.place(offset)

    def error(self, keys: Sequence[Segment], reason: str, *, key: bool = False) -> ConfigError:
        return ConfigError(self.path, *self.where(keys, key=key), key_path(keys) or None, reason)

    def warning(self, keys: Sequence[Segment], message: str) -> str:
        return place(self.path, *self.where(keys, key=True), key_path(keys) or None) + message


def validate(model: type[_Model], data: object, file: JsoncFile | None) -> _Model:
    """``model.model_validate(data)``; a failure becomes the ConfigError that comes first in the file."""
    try:
        return model.model_validate(data)
    except Invalid as exc:
        found: list[tuple[tuple[int, int], ConfigError]] = []
        for issue in exc.issues:
            error = file.error(issue.loc, issue.reason, key=issue.at_key) if file else ConfigError(
                None, None, None, key_path(issue.loc), issue.reason)
            found.append(((error.line or 0, error.column or 0), error))
        raise min(found, key=lambda item: item[0])[1] from None


def unknown_keys(data: object, model: type[Model], path: tuple[Segment, ...] = ()
                 ) -> list[tuple[tuple[Segment, ...], str]]:
    """(key path, message) for each key ``model`` does not read, below ``path``.

    A model may list keys it tolerates in its ``_ignored`` class variable (key -> None to stay
    silent, or a message to give instead of "unknown"). Nested models and maps of models are
    walked too.
    """
    out: list[tuple[tuple[Segment, ...], str]] = []
    if not isinstance(data, dict):
        return out
    ignored = model._ignored
    fields = file_fields(model)
    for key, value in data.items():
        if key not in fields:
            note = ignored.get(key, "unknown key, ignored")
            if note is not None:
                out.append(((*path, key), note))
            continue
        nested, is_map = fields[key]
        if nested is not None and is_map and isinstance(value, dict):
            for name, item in value.items():
                out += unknown_keys(item, nested, (*path, key, name))
        elif nested is not None:
            out += unknown_keys(value, nested, (*path, key))
    return out


def locate(text: str, path: Sequence[Segment], *, key: bool = False) -> tuple[int, int] | None:
    """1-based (line, column) of the value at ``path`` in JSONC ``text``, or of its key when ``key``.

    A repeated key resolves to its last occurrence, as the parsed value keeps the last one.
    Returns None when the path is not in the text (or the text is not JSONC).
    """
    try:
        index = TextIndex(clean(text))
        offset = index.find(path, key=key)
    except (IndexError, ValueError, RecursionError):
        return None
    return None if offset is None else index.place(offset)
