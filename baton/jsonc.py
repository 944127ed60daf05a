"""JSONC files: read them safely, parse them fast, and point into them by key path.

oh-my-opencode's files are JSONC: JSON plus ``//`` and ``/* */`` comments and trailing commas.
Parsing is the C ``json`` decoder; comments and trailing commas are first blanked out by one
linear regular-expression pass that keeps every other character where it was, so that an
offset in the blanked text is the same line and column in the user's file.

Everything a user can put in a file ends as a :class:`JsoncError` with a line and column where
there is one: not UTF-8, NUL bytes (UTF-16), nesting deeper than :data:`MAX_DEPTH`, lone
surrogates, integers too long for Python, a directory or a FIFO instead of a file. Nothing
here recurses in Python over the user's data, and nothing is worse than linear in its size.

Lenient on purpose: control characters other than line breaks inside strings (json5, used
before, accepted tabs there), ``NaN``/``Infinity``, and duplicate keys (the last one wins).
"""

from __future__ import annotations

import bisect
import json
import os
import re
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from baton.errors import BatonError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "JsoncError", "TextIndex", "clean", "decode", "parse", "place", "read_text"]

MAX_DEPTH = 100
"""Deepest nesting of objects and lists accepted (a real config nests about 6 deep)."""
MAX_BYTES = 64 * 1024 * 1024
"""Largest config file read: far beyond any real one, it keeps a stray huge file from eating memory."""

_BOM = b"\xef\xbb\xbf"
_EMPTY = "the file is empty (a config with no settings is {})"
_STRING = r'"[^"\\\n\r]*(?:\\.[^"\\\n\r]*)*"'
# Atomic: a comment never gives back what it matched (a "}" inside one is no closing bracket), and
# an unterminated one runs to the end of the text, so that it is scanned once.
_COMMENT = r"(?>//[^\n]*|/\*(?:[\s\S]*?\*/|[\s\S]*))"
# Each pattern below is one regular-expression run over the text, possessive (``*+``) so that
# nothing is tried twice: the cost is linear, and Python steps in only per comment or per match.
# Comments: a run of text that stays (strings included, so that "//" in a string is kept), then
# a comment, a quote that opens no string on its line, or the end of the text.
_COMMENTS = re.compile(rf'(?:[^"/]+|{_STRING}|/(?![/*]))*+(?:(?P<comment>{_COMMENT})|(?P<quote>")|\Z)')
_QUOTES_OK = re.compile(rf'(?:[^"]+|{_STRING})*+')
_TO_CLOSING = r"[ \t\r\n]*[\]}]"
# A trailing comma: before a closing bracket, after a value (a comma right after "[", "{" or ","
# stays, to be reported). Replaced by a space at C speed when no string holds a look-alike ...
_TRAILING = re.compile(rf",(?<=[^\[{{,],)(?={_TO_CLOSING})")
_NO_LOOKALIKE = re.compile(rf'(?:[^"]+|"(?:[^"\\\n\r,]+|\\.|,(?!{_TO_CLOSING}))*+")*+')
# ... else found one by one, strings skipped.
_TRAILING_SLOW = re.compile(rf'(?:[^",]+|{_STRING}|,(?<=[\[{{,],)|,(?!{_TO_CLOSING}))*+(?:(?P<comma>,)|\Z)')
_MAYBE_COMMENT = re.compile(r"/[/*]")
_MAYBE_TRAILING = re.compile(rf",{_TO_CLOSING}")
_NOT_NEWLINE = re.compile(r"[^\n]")
_STRINGS = re.compile(_STRING)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_WS = re.compile(r"[ \t\n\r]*")
_BRACKETS = re.compile(rf"{_STRING}|[\[\]{{}}]")
_NUMBERS = re.compile(rf"{_STRING}|(?P<int>-?\d+)(?P<frac>[.eE])?")
_SURROGATE_HINT = re.compile(r"\\u[dD][89a-fA-F]")
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)")
_SINGLE_QUOTED = re.compile(r"'((?:[^'\\\n]|\\.)*)'")
_BARE_KEY = re.compile(r"[A-Za-z_$][\w$]*")
_STRICT = json.JSONDecoder(strict=True)
_LENIENT = json.JSONDecoder(strict=False)
_FILE_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
               (stat.S_ISSOCK, "socket"))


class JsoncError(BatonError, ValueError):
    """A file that is not readable JSONC; line and column are 1-based, when there is a place to name."""

    def __init__(self, line: int | None, column: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.column = column
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Reading


def read_text(path: Path) -> str:
    """The text of a regular UTF-8 file (a UTF-8 byte order mark is dropped); never blocks on a FIFO."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise JsoncError(None, None, "no such file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise JsoncError(None, None, f"cannot read: {_os_reason(exc)}") from None
    _require_regular(info)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise JsoncError(None, None, f"cannot read: {_os_reason(exc)}") from None
    with os.fdopen(fd, "rb") as handle:
        _require_regular(os.fstat(handle.fileno()))  # replaced since the stat: check what was opened
        try:
            data = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            raise JsoncError(None, None, f"cannot read: {_os_reason(exc)}") from None
    if len(data) > MAX_BYTES:
        raise JsoncError(None, None, f"too large (more than {MAX_BYTES // (1024 * 1024)} MB)")
    return decode(data)


def _os_reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _require_regular(info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise JsoncError(None, None, "is a directory")
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "special file")
        raise JsoncError(None, None, f"is not a regular file ({kind})")
    if info.st_size > MAX_BYTES:
        raise JsoncError(None, None, f"too large ({info.st_size // (1024 * 1024)} MB; "
                                     f"the limit is {MAX_BYTES // (1024 * 1024)} MB)")


def decode(data: bytes) -> str:
    """UTF-8 bytes to text; anything else is a JsoncError at the first byte that is wrong."""
    for boms, name in (((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"), "UTF-32"), ((b"\xff\xfe", b"\xfe\xff"), "UTF-16")):
        if data.startswith(boms):
            raise JsoncError(1, 1, f"the file is {name} text (it starts with a {name} byte order mark); "
                                   "save it as UTF-8")
    body = data[len(_BOM):] if data.startswith(_BOM) else data
    if not body:
        raise JsoncError(None, None, _EMPTY)
    nul = body.find(b"\x00")
    if nul >= 0:
        line, column = _byte_place(body, nul)
        raise JsoncError(line, column, "NUL byte: the file looks like UTF-16 or binary, not UTF-8 text")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _byte_place(body, exc.start)
        raise JsoncError(line, column, f"not UTF-8 text (byte 0x{body[exc.start]:02x})") from None


def _byte_place(data: bytes, offset: int) -> tuple[int, int]:
    """Line and column (in characters) of a byte offset; the bytes before it decode cleanly."""
    start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, len(data[start:offset].decode("utf-8", "replace")) + 1


# ---------------------------------------------------------------------------------------------
# Parsing


def clean(text: str) -> str:
    """``text`` with comments and trailing commas blanked to spaces (line breaks kept): JSON, if it was JSONC.

    A quote that opens no string on its line raises :class:`JsoncError`: JSON strings cannot
    span lines, and a missing closing quote is best reported where the string starts.
    """
    if _MAYBE_COMMENT.search(text):
        text = _blank_comments(text)
    else:
        end = _QUOTES_OK.match(text)
        if end is not None and end.end() < len(text):
            raise _unterminated_string(text, end.end())
    if _MAYBE_TRAILING.search(text) is None:
        return text
    safe = _NO_LOOKALIKE.match(text)
    if safe is not None and safe.end() == len(text):
        return _TRAILING.sub(" ", text)
    parts: list[str] = []
    done = 0
    for match in _TRAILING_SLOW.finditer(text):
        if match.lastgroup is None:  # the end of the text
            break
        parts += (text[done:match.start("comma")], " ")
        done = match.end()
    return "".join(parts) + text[done:]


def _blank_comments(text: str) -> str:
    parts: list[str] = []
    done = 0
    for match in _COMMENTS.finditer(text):
        kind = match.lastgroup
        if kind is None:  # the end of the text
            break
        at = match.start(kind)
        if kind == "quote":
            raise _unterminated_string(text, at)
        comment = match.group(kind)
        if comment[1] == "*" and (len(comment) < 4 or not comment.endswith("*/")):
            raise JsoncError(*place(text, at), "syntax error: unterminated comment")
        blank = _NOT_NEWLINE.sub(" ", comment) if "\n" in comment else " " * len(comment)
        parts += (text[done:at], blank)
        done = match.end()
    return "".join(parts) + text[done:]


def _unterminated_string(text: str, at: int) -> JsoncError:
    return JsoncError(*place(text, at), "syntax error: unterminated string (a string must end on its line)")


def parse(text: str) -> tuple[str, object]:
    """The JSON text ``text`` stands for (same offsets) and its value; a problem is a JsoncError."""
    cleaned, data = text, None
    plain = not (_MAYBE_COMMENT.search(text) or _MAYBE_TRAILING.search(text))
    if plain:  # a plain JSON file needs no blanking
        try:
            data = _STRICT.decode(text)
        except (ValueError, RecursionError):  # read again below: for the error, or for a tab in a string
            plain = False
    if not plain:
        cleaned = clean(text)
        data = _decode(cleaned)
    if _too_deep(cleaned):
        raise _depth_error(cleaned)
    if _SURROGATE_HINT.search(cleaned):
        _check_surrogates(cleaned)
    return cleaned, data


def _decode(cleaned: str) -> object:
    if not cleaned.strip(" \t\r\n"):
        raise JsoncError(None, None, _EMPTY)
    try:
        return _LENIENT.decode(cleaned)
    except json.JSONDecodeError as exc:
        raise _syntax_error(cleaned, exc) from None
    except RecursionError:
        raise _depth_error(cleaned) from None
    except ValueError as exc:  # an integer with more digits than Python converts
        raise _number_error(cleaned, exc) from None


def place(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of ``offset``."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _show(char: str) -> str:
    return json.dumps(char)


def _syntax_error(text: str, exc: json.JSONDecodeError) -> JsoncError:
    pos, message = exc.pos, exc.msg
    char = text[pos] if pos < len(text) else ""
    if not char or text[pos:].strip(" \t\r\n") == "":
        reason = "unexpected end of file"
    elif text.startswith("/*", pos):
        reason = "unterminated comment"
    elif char == "'":
        reason = "strings and keys need double quotes (JSONC, not JSON5)"
    elif message.startswith("Expecting property name"):
        hint = " (JSONC, not JSON5)" if _BARE_KEY.match(char) else ""
        reason = f"expected a key in double quotes, found {_show(char)}{hint}"
    elif message.startswith("Expecting ':'"):
        reason = f'expected ":" after the key, found {_show(char)}'
    elif message.startswith("Expecting ','"):
        reason = f'unexpected {_show(char)} (a "," missing before it?)'
    elif message.startswith("Extra data"):
        reason = f"unexpected {_show(char)} after the end of the top-level value"
    elif message.startswith("Invalid control character"):
        reason = f"control character U+{ord(char):04X} in a string"
    elif message.startswith(("Invalid \\escape", "Invalid \\uXXXX")):
        reason = f"invalid escape {_show(text[pos:pos + 2])} in a string"
    elif message.startswith("Unterminated string"):
        reason = "unterminated string"
    elif message.startswith("Expecting value"):
        reason = f"unexpected {_show(char)}"
    else:
        reason = message[:1].lower() + message[1:]
    return JsoncError(*place(text, pos), f"syntax error: {reason}")


def _too_deep(cleaned: str) -> bool:
    """Whether the JSON text ``cleaned`` (known to parse) nests deeper than MAX_DEPTH.

    On its brackets alone (strings dropped), each round removes the innermost pairs; what is
    left after MAX_DEPTH rounds is deeper than that. A round is a C-speed ``replace``: this
    costs no Python step per value, unlike walking the parsed data.
    """
    if cleaned.count("[") + cleaned.count("{") <= MAX_DEPTH:
        return False
    brackets = _STRINGS.sub("", cleaned).encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"").replace(b"{}", b"")
    return bool(brackets)


def _depth_error(cleaned: str) -> JsoncError:
    """The error for nesting deeper than MAX_DEPTH, at the bracket that goes one level too deep."""
    depth = 0
    for match in _BRACKETS.finditer(cleaned):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return JsoncError(*place(cleaned, match.start()), f"nested more than {MAX_DEPTH} levels deep")
        elif char in "]}":
            depth -= 1
    return JsoncError(None, None, f"nested more than {MAX_DEPTH} levels deep")


def _number_error(cleaned: str, exc: ValueError) -> JsoncError:
    limit = sys.get_int_max_str_digits()
    for match in _NUMBERS.finditer(cleaned):
        digits = match.group("int")
        if digits and not match.group("frac") and len(digits.lstrip("-")) > limit:
            return JsoncError(*place(cleaned, match.start()),
                              f"an integer with {len(digits.lstrip('-'))} digits (at most {limit} are read)")
    return JsoncError(None, None, f"syntax error: {exc}")


def _check_surrogates(cleaned: str) -> None:
    """A ``\\uD800``-``\\uDFFF`` escape that is not half of an adjacent pair is an error: it is no character."""
    for string in re.finditer(_STRING, cleaned):
        high: re.Match[str] | None = None  # a high surrogate waiting for its low half
        for escape in _ESCAPE.finditer(cleaned, string.start(), string.end()):
            code = int(escape.group(1), 16) if escape.group(1) else -1
            if high is not None:
                if 0xDC00 <= code <= 0xDFFF and escape.start() == high.end():
                    high = None
                    continue
                break
            if 0xD800 <= code <= 0xDBFF:
                high = escape
            elif 0xDC00 <= code <= 0xDFFF:
                high = escape
                break
        if high is not None:
            raise JsoncError(*place(cleaned, high.start()),
                             f"syntax error: {high.group()} is half of a surrogate pair, not a character")


# ---------------------------------------------------------------------------------------------
# Locating


class TextIndex:
    """Finds the offset of the value (or key) at a key path in JSON text, without recursion.

    Each object or list on a path is read once, its members' offsets kept: finding a thousand
    paths costs one read of the text, not a thousand. Values off the path are skipped by the
    C decoder. Keys may also be single-quoted or bare (JSON5), for text not read by :func:`parse`.
    Raises ValueError, IndexError or RecursionError on text it cannot read.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._objects: dict[int, dict[str, tuple[int, int]]] = {}
        self._arrays: dict[int, list[int]] = {}
        self._lines: list[int] | None = None

    def find(self, path: Sequence[str | int], *, key: bool = False) -> int | None:
        """Offset of the value at ``path`` (of its key with ``key``); None when it is not there."""
        at = self._space(0)
        key_at = at
        for segment in path:
            char = self.text[at]
            if isinstance(segment, str) and char == "{":
                hit = self._members(at).get(segment)
                if hit is None:
                    return None
                key_at, at = hit
            elif isinstance(segment, int) and char == "[":
                items = self._elements(at)
                if not 0 <= segment < len(items):
                    return None
                key_at = at = items[segment]
            else:
                return None
        return key_at if key else at

    def place(self, offset: int) -> tuple[int, int]:
        """1-based line and column of ``offset``, by bisection in a table built once."""
        if self._lines is None:
            self._lines = [match.end() for match in re.finditer("\n", self.text)]
        line = bisect.bisect_right(self._lines, offset)
        return line + 1, offset - (self._lines[line - 1] if line else 0) + 1

    def _space(self, at: int) -> int:
        match = _WS.match(self.text, at)
        assert match is not None
        return match.end()

    def _skip(self, at: int) -> int:
        return _LENIENT.raw_decode(self.text, at)[1]

    def _members(self, start: int) -> dict[str, tuple[int, int]]:
        found = self._objects.get(start)
        if found is not None:
            return found
        found, text = {}, self.text
        at = self._space(start + 1)
        while text[at] != "}":
            name, after = self._key(at)
            colon = self._space(after)
            if text[colon] != ":":
                raise ValueError("expected ':'")
            value_at = self._space(colon + 1)
            found[name] = (at, value_at)  # a repeated key: the last one counts, as in the parsed value
            at = self._after_item(self._skip(value_at), "}")
        self._objects[start] = found
        return found

    def _key(self, at: int) -> tuple[str, int]:
        char = self.text[at]
        if char == '"':
            name, end = json.decoder.scanstring(self.text, at + 1, False)  # type: ignore[attr-defined]
            return str(name), int(end)
        match = (_SINGLE_QUOTED if char == "'" else _BARE_KEY).match(self.text, at)
        if match is None:
            raise ValueError("expected a key")
        if char != "'":
            return match.group(), match.end()
        inner = match.group(1).replace("\\'", "'").replace('"', '\\"')
        return str(json.loads(f'"{inner}"')), match.end()

    def _elements(self, start: int) -> list[int]:
        found = self._arrays.get(start)
        if found is not None:
            return found
        found = []
        at = self._space(start + 1)
        while self.text[at] != "]":
            found.append(at)
            at = self._after_item(self._skip(at), "]")
        self._arrays[start] = found
        return found

    def _after_item(self, at: int, closing: str) -> int:
        at = self._space(at)
        if self.text[at] == ",":
            return self._space(at + 1)
        if self.text[at] != closing:
            raise ValueError(f"expected ',' or {closing!r}")
        return at
