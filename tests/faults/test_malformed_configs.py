"""Fault class "malformed config": over a thousand bad files through the real CLI, none may crash.

Each trial writes one config file and runs ``baton config check PATH`` in-process (the real
cyclopts app, stdout as strict UTF-8 like a pipe, stderr captured); a handful run as
subprocesses, ``baton serve --config`` among them. A trial survives when the command exits 0
or 2, prints no traceback, says ``baton: PATH[:LINE:COL]: reason`` on one line when it exits
2, and finishes within its time bound.

The trials: hypothesis mutations of a valid oh-my-opencode JSONC file (truncations, byte
flips, inserted brackets, markup, comments, odd bytes and random unicode, deleted and copied
ranges, deep nesting, random values and keys in place of real ones), then a fixed list of
nasty cases (10,000 levels of nesting, rich markup in keys, values and the path, 1e999 and
10**5000, NaN/Infinity, non-UTF-8, UTF-16 with and without a BOM, an empty file, only a BOM,
a directory, a FIFO, /dev/null, a 10 MB file, 1,000 unknown keys, …).

Hypothesis runs derandomized (the ``ci`` profile of ``tests/conftest.py``), so CI sees the same
trials every time. For a longer search, ``BATON_HYPOTHESIS_PROFILE=deep`` runs 20 times as many
examples (new ones each run).
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton.cli import app

if TYPE_CHECKING:
    from conftest import FaultTable

FAULT_CLASS = "malformed config (no traceback, exit 2)"
# The hypothesis profile (tests/conftest.py, BATON_HYPOTHESIS_PROFILE): ci runs 1,100 derandomized
# examples, deep 20 times as many, new ones each run.
DEEP = settings.get_current_profile_name() == "deep"
EXAMPLES = 1_100 * settings().max_examples // 100
TRIAL_BOUND_S = 2.0
"""A small file is checked in milliseconds of CPU time (measured as CPU time, so other load on the
machine does not count)."""
BIG_BOUND_S = 5.0
"""The 10 MB file and the 1,000 unknown keys (50 s and 68 s before the fix; about 0.5 s now)."""

BASE = """{
  "$schema": "https://example.com/oh-my-opencode.schema.json",
  // runtime fallback: move a session down its chain when a provider fails
  "runtime_fallback": {
    "enabled": true,
    "retry_on_errors": [429, 500, 502, 503, 504],
    "max_fallback_attempts": 3,
    "cooldown_seconds": 60, /* a minute */
    "timeout_seconds": 30,
  },
  "agents": {
    "build": {"model": "anthropic/claude-sonnet-4", "fallback_models": ["openai/gpt-5", "google/gemini-2.5-pro"]},
    "Sisyphus": {"models": ["anthropic/claude-opus-4", {"model": "openai/gpt-5", "variant": "high"}],
                 "temperature": 0.2, "prompt_append": "Be brief. // not a comment"},
  },
  "categories": {
    "quick": {"model": "openai/gpt-5-mini", "fallback_models": "google/gemini-2.5-flash", "description": "fast"},
  },
  "background_task": {"defaultConcurrency": 5, "providerConcurrency": {"openai": 2},
                      "circuitBreaker": {"enabled": true, "consecutiveThreshold": 20}},
  "baton": {"fallback_models": ["openai/gpt-5"], "model_fallbacks": {"anthropic/claude-opus-4": ["openai/gpt-5"]}},
  "disabled_hooks": ["comment-checker"],
  "experimental": {"aggressive_truncation": true},
}
"""
BASE_BYTES = BASE.encode()

SNIPPETS = [
    "[", "]", "{", "}", ",", ":", '"', "'", "//", "/*", "*/", "\n", "\r", "\t", " ", "\\", "\\u", "\\ud800",
    "\\udc00", "\\ud83d\\ude00", "[/x]", "[bold]", "[/]", "[link=x]", ":smile:", "\x1b[31m", "\u202e", "NaN",
    "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 5_000, "0x1F", "+1", ".5", "1.", "null", "true",
    '"[opencode]": ', '"agents": ', '"x": 1,', "\x00", "\ufeff", "\u2028", "é", "💥", "\\x41",
]
RAW_SNIPPETS = [b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]


# ---------------------------------------------------------------------------------------------
# One trial


@dataclass
class Trial:
    name: str
    code: object
    stdout: str
    stderr: str
    elapsed: float
    bound: float

    def problem(self, path: Path | str) -> str | None:
        """Why this trial did not survive, or None."""
        if self.code not in (0, 2):
            return f"exit {self.code!r}"
        if "Traceback" in self.stderr or "Traceback" in self.stdout:
            return "traceback printed"
        if self.elapsed > self.bound:
            return f"took {self.elapsed:.2f}s (bound {self.bound}s)"
        if self.code == 2 and not re.fullmatch(rf"baton: {re.escape(str(path))}(:\d+:\d+)?: \S.*\n", self.stderr):
            return f"not one clear line: {self.stderr[:300]!r}"
        return None


def check_in_process(path: Path | str, name: str, bound: float = TRIAL_BOUND_S) -> Trial:
    """``baton config check PATH`` through the real app, output captured as a terminal pipe would take it."""
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict", write_through=True)
    err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace", write_through=True)
    start = time.process_time()  # CPU time: a loaded shared machine must not fail a linear-time check
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code: object = app(["config", "check", str(path)], result_action="return_value")
    except BaseException as exc:  # the point: nothing may escape, not even SystemExit
        code = f"raised {type(exc).__name__}: {str(exc)[:200]}"
    elapsed = time.process_time() - start
    return Trial(name, code, out_bytes.getvalue().decode(), err_bytes.getvalue().decode("utf-8", "replace"),
                 elapsed, bound)


def run_cli(args: list[str], home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_STATE_HOME": str(home / "state")}
    env.pop("OPENCODE_CONFIG_DIR", None)
    return subprocess.run([sys.executable, "-m", "baton", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=home, errors="replace")


@dataclass
class Tally:
    trials: int = 0
    survived: int = 0
    failures: list[str] = field(default_factory=list)

    def add(self, trial: Trial, path: Path | str) -> None:
        self.trials += 1
        problem = trial.problem(path)
        if problem is None:
            self.survived += 1
        else:
            self.failures.append(f"{trial.name}: {problem}")

    def detail(self) -> str:
        return "; ".join(self.failures[:5])


# ---------------------------------------------------------------------------------------------
# Hypothesis mutations of BASE


def _apply_flips(flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(BASE_BYTES)
    for at, value in flips:
        data[at] = value
    return bytes(data)


def _apply_inserts(inserts: list[tuple[int, bytes]]) -> bytes:
    data = BASE_BYTES
    for at, piece in sorted(inserts, key=lambda item: -item[0]):
        data = data[:at] + piece + data[at:]
    return data


_position = st.integers(0, len(BASE_BYTES))
_piece = st.one_of(
    st.sampled_from(SNIPPETS).map(str.encode),
    st.sampled_from(RAW_SNIPPETS),
    st.text(max_size=16).map(str.encode),
    st.binary(max_size=16),
)
_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(["[/x]", "p/[bold]m", "provider/model", ":smile:", "\u001b[2J", ""]),
)
_json_value = st.recursive(
    _json_scalar, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
).map(lambda value: json.dumps(value))
_value_text = st.one_of(
    _json_value,
    st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", "1" + "0" * 5_000, "-" + "9" * 4_400, '"\\ud800"',
                     '"\\udfff\\ud800"', '"' + "x" * 100_000 + '"', "[" * 300 + "]" * 300, "{}", "[]", '""']),
)
# Places in BASE where a value starts: a random JSON-ish value (or a bad one) replaces the scalar there.
_VALUE_STARTS = [m.end() for m in re.finditer(rb": ?", BASE_BYTES)]
_SCALAR_AT = re.compile(rb'"(?:[^"\\\n]|\\.)*"|-?[\w.+]+')


def _replace_value(at: int, text: str) -> bytes:
    match = _SCALAR_AT.match(BASE_BYTES, at)
    end = match.end() if match else at
    return BASE_BYTES[:at] + text.encode("utf-8", "surrogatepass") + BASE_BYTES[end:]


def _nest(at: int, depth: int, opening: str, closed: bool) -> bytes:
    closing = {"[": "]", '{"a":': "}", '[{"k":': "}]"}[opening]
    return _apply_inserts([(at, (opening * depth + (closing * depth if closed else "")).encode())])


def _add_key(key: str, value: str) -> bytes:
    member = f"  {json.dumps(key)}: {value},\n"
    at = BASE_BYTES.index(b"\n") + 1
    return BASE_BYTES[:at] + member.encode("utf-8", "surrogatepass") + BASE_BYTES[at:]


mutations: st.SearchStrategy[tuple[str, bytes]] = st.one_of(
    _position.map(lambda n: ("truncate", BASE_BYTES[:n])),
    st.lists(st.tuples(st.integers(0, len(BASE_BYTES) - 1), st.integers(0, 255)), min_size=1, max_size=8)
    .map(lambda flips: ("flip bytes", _apply_flips(flips))),
    st.lists(st.tuples(_position, _piece), min_size=1, max_size=5)
    .map(lambda inserts: ("insert", _apply_inserts(inserts))),
    st.tuples(_position, st.integers(1, 200))
    .map(lambda cut: ("delete", BASE_BYTES[:cut[0]] + BASE_BYTES[cut[0] + cut[1]:])),
    st.tuples(_position, _position, _position)
    .map(lambda c: ("copy range", BASE_BYTES[:c[2]] + BASE_BYTES[min(c[:2]):max(c[:2])] + BASE_BYTES[c[2]:])),
    st.tuples(_position, st.integers(1, 20_000), st.sampled_from(["[", '{"a":', '[{"k":']), st.booleans())
    .map(lambda d: ("deep nesting", _nest(*d))),
    st.tuples(st.sampled_from(_VALUE_STARTS), _value_text).map(lambda r: ("random value", _replace_value(*r))),
    st.tuples(st.text(max_size=20) | st.sampled_from(["[/x]", "[bold]", ":smile:", "\x1b[31m", "a" * 10_000]),
              _value_text).map(lambda k: ("random key", _add_key(*k))),
)


@pytest.mark.timeout(3_600 if DEEP else 120)
def test_hypothesis_mutations_of_a_real_config(tmp_path: Path, fault_table: FaultTable) -> None:
    """Over a thousand mutated files: each exits 0 or 2, on time, with one clear line and no traceback."""
    path = tmp_path / "oh-my-opencode.jsonc"
    tally = Tally()

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutations)
    def trial(mutation: tuple[str, bytes]) -> None:
        name, data = mutation
        path.write_bytes(data)
        tally.add(check_in_process(path, f"{name} {data[:60]!r}"), path)

    trial()
    fault_table.record(FAULT_CLASS, tally.trials, tally.survived, tally.detail())
    assert tally.trials >= 1_000, f"only {tally.trials} hypothesis trials ran"


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    """The file the mutations start from is itself read cleanly, so the mutations are what is tested."""
    path = tmp_path / "oh-my-opencode.jsonc"
    path.write_bytes(BASE_BYTES)
    trial = check_in_process(path, "base")
    assert (trial.code, trial.stderr) == (0, "")
    assert "chain agents.build: openai/gpt-5 -> google/gemini-2.5-pro" in trial.stdout


# ---------------------------------------------------------------------------------------------
# The fixed nasty cases


def _ten_megabytes() -> bytes:
    entry = ('    "agent{i}": {{ // agent {i}\n      "model": "p/m{i}", "fallback_models": ["a/b", "c/d",],\n'
             '      "prompt_append": "' + "[/x] " * 24 + '", /* markup */\n    }},\n')
    body = "".join(entry.format(i=i) for i in range(10_000_000 // len(entry.format(i=0)) + 1))
    return ('{\n  "agents": {\n' + body + "  },\n}\n").encode()


def _write(data: bytes | str | Callable[[], bytes | str]) -> Callable[[Path], Path]:
    """A maker of the file holding ``data`` (big data is passed as a function, built when the case runs)."""
    def make(directory: Path) -> Path:
        content = data() if callable(data) else data
        path = directory / "config.jsonc"
        path.write_bytes(content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content)
        return path
    return make


def _directory(directory: Path) -> Path:
    path = directory / "a directory.jsonc"
    path.mkdir()
    return path


def _fifo(directory: Path) -> Path:
    path = directory / "config.fifo"
    os.mkfifo(path)
    return path


def _markup_path(directory: Path) -> Path:
    inner = directory / "a[" / "x]" / "[bold]"
    inner.mkdir(parents=True)
    path = inner / ":smile: [x].jsonc"
    path.write_text('{"runtime_fallback": {"enabled": "[/x]"}}')
    return path


def _symlink_loop(directory: Path) -> Path:
    path = directory / "loop.jsonc"
    path.symlink_to(path)
    return path


DEEP_10K = "[" * 10_000 + "]" * 10_000
NASTY: list[tuple[str, Callable[[Path], Path | str], float]] = [
    ("10,000 levels of lists", _write('{"x": ' + DEEP_10K + "}"), TRIAL_BOUND_S),
    ("10,000 levels of objects", _write('{"x": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}"), TRIAL_BOUND_S),
    ("10,000 unclosed levels", _write('{"x": ' + "[{" * 5_000), TRIAL_BOUND_S),
    ("10,000 levels inside agents", _write('{"agents": {"a": {"model": ' + DEEP_10K + "}}}"), TRIAL_BOUND_S),
    ("60 levels (json5's RecursionError)", _write('{"x": ' + "[" * 60 + "]" * 60 + "}"), TRIAL_BOUND_S),
    ("markup in keys", _write('{"[/x]": 1, "[bold]": {"[/]": 2}, "agents": {"[/a]": {"model": "p/m"}}}'),
     TRIAL_BOUND_S),
    ("markup in an error's key and value", _write('{"agents": {"[/x]": {"model": "[bold]no"}}}'), TRIAL_BOUND_S),
    ("markup in a category value", _write('{"categories": {"q": {"fallback_models": ["[/x]"]}}}'), TRIAL_BOUND_S),
    ("markup and emoji in the path", _markup_path, TRIAL_BOUND_S),
    ("1e999 where a number is read", _write('{"runtime_fallback": {"cooldown_seconds": 1e999}}'), TRIAL_BOUND_S),
    ("-1e999 in an unknown key", _write('{"mystery": -1e999}'), TRIAL_BOUND_S),
    ("10**5000 where an integer is read", _write('{"runtime_fallback": {"max_fallback_attempts": 1'
                                                 + "0" * 5_000 + "}}"), TRIAL_BOUND_S),
    ("10**5000 in an unknown key", _write('{"mystery": 1' + "0" * 5_000 + "}"), TRIAL_BOUND_S),
    ("a float with 100,000 digits", _write('{"runtime_fallback": {"timeout_seconds": 1.' + "3" * 100_000 + "}}"),
     TRIAL_BOUND_S),
    ("NaN", _write('{"runtime_fallback": {"timeout_seconds": NaN}}'), TRIAL_BOUND_S),
    ("Infinity", _write('{"background_task": {"maxDepth": Infinity}}'), TRIAL_BOUND_S),
    ("-Infinity in a list", _write('{"runtime_fallback": {"retry_on_errors": [-Infinity]}}'), TRIAL_BOUND_S),
    ("not UTF-8 (latin-1)", _write('{"agents": {"caf\u00e9": {}}}'.encode("latin-1")), TRIAL_BOUND_S),
    ("not UTF-8 (a lone continuation byte)", _write(b'{"a": "\x80"}'), TRIAL_BOUND_S),
    ("UTF-8 encoded surrogate", _write(b'{"a": "\xed\xa0\x80"}'), TRIAL_BOUND_S),
    ("UTF-16 LE with BOM", _write(BASE.encode("utf-16")), TRIAL_BOUND_S),
    ("UTF-16 BE with BOM", _write(b"\xfe\xff" + BASE.encode("utf-16-be")), TRIAL_BOUND_S),
    ("UTF-16 LE without BOM", _write(BASE.encode("utf-16-le")), TRIAL_BOUND_S),
    ("UTF-16 BE without BOM", _write(BASE.encode("utf-16-be")), TRIAL_BOUND_S),
    ("UTF-32", _write(BASE.encode("utf-32")), TRIAL_BOUND_S),
    ("UTF-8 BOM and a valid file", _write(b"\xef\xbb\xbf" + BASE_BYTES), TRIAL_BOUND_S),
    ("empty file", _write(b""), TRIAL_BOUND_S),
    ("only a BOM", _write(b"\xef\xbb\xbf"), TRIAL_BOUND_S),
    ("only whitespace", _write(b" \n\t\r\n"), TRIAL_BOUND_S),
    ("only a comment", _write(b"// nothing here\n/* at all */"), TRIAL_BOUND_S),
    ("a directory", _directory, TRIAL_BOUND_S),
    ("a FIFO with no writer", _fifo, TRIAL_BOUND_S),
    ("/dev/null", lambda _: "/dev/null", TRIAL_BOUND_S),
    ("a missing file", lambda directory: directory / "absent.jsonc", TRIAL_BOUND_S),
    ("a symlink loop", _symlink_loop, TRIAL_BOUND_S),
    ("a 10 MB file", _write(_ten_megabytes), BIG_BOUND_S),
    ("a 10 MB file broken at the end", _write(lambda: _ten_megabytes()[:-4] + b'"x" "y"}'), BIG_BOUND_S),
    ("a 10 MB string", _write(lambda: '{"agents": {"a": {"description": "' + "d" * 10_000_000 + '"}}}'),
     BIG_BOUND_S),
    ("a 10 MB model name", _write(lambda: '{"agents": {"a": {"model": "' + "m" * 10_000_000 + '"}}}'), BIG_BOUND_S),
    ("a 10 MB unterminated comment", _write(lambda: "{/*" + "*" * 10_000_000), BIG_BOUND_S),
    ("10 MB of trailing-comma lists", _write(lambda: '{"x": [' + "[1,]," * 2_000_000 + "]}"), BIG_BOUND_S),
    ("1,000 unknown keys", _write(json.dumps({f"unknown{i}": {"v": i} for i in range(1_000)}, indent=2)),
     BIG_BOUND_S),
    ("1,000 unknown keys in every section", _write(json.dumps({
        section: {f"unknown{i}": i for i in range(1_000)}
        for section in ("runtime_fallback", "background_task", "baton", "x")})), BIG_BOUND_S),
    ("10,000 duplicate keys", _write("{" + ", ".join(['"agents": {}'] * 10_000) + "}"), TRIAL_BOUND_S),
    ("lone high surrogate", _write('{"agents": {"a": {"description": "\\ud800"}}}'), TRIAL_BOUND_S),
    ("lone low surrogate in a key", _write('{"\\udc00": 1}'), TRIAL_BOUND_S),
    ("surrogate pair (valid)", _write('{"agents": {"\\ud83d\\ude00": {"model": "p/\\ud83d\\ude00"}}}'),
     TRIAL_BOUND_S),
    ("raw control characters in strings", _write('{"agents": {"a\x1b[31m": {"model": "p/\x07m\x08"}}}'),
     TRIAL_BOUND_S),
    ("escaped control characters", _write('{"agents": {"a\\u001b[2J": {"model": "p/\\u0000\\u202e"}}}'),
     TRIAL_BOUND_S),
    ("a control character outside strings", _write('{"a": 1,\x01 "b": 2}'), TRIAL_BOUND_S),
    ("a line break inside a string", _write('{"agents": {"a": {"model": "p/\nm"}}}'), TRIAL_BOUND_S),
    ("U+2028 in a key", _write('{"a\u2028b": 1}'), TRIAL_BOUND_S),
    ("single quotes (JSON5)", _write("{'agents': {}}"), TRIAL_BOUND_S),
    ("unquoted keys (JSON5)", _write("{agents: {}}"), TRIAL_BOUND_S),
    ("hexadecimal number (JSON5)", _write('{"x": 0x1F}'), TRIAL_BOUND_S),
    ("a top-level list", _write("[1, 2]"), TRIAL_BOUND_S),
    ("a top-level string", _write('"[/x]"'), TRIAL_BOUND_S),
    ("a top-level null", _write("null"), TRIAL_BOUND_S),
    ("[opencode] not an object", _write('{"[opencode]": "[/x]"}'), TRIAL_BOUND_S),
    ("[opencode] 10,000 deep", _write('{"[opencode]": ' + DEEP_10K + "}"), TRIAL_BOUND_S),
    ("a 1 MB key", _write('{"' + "k" * 1_000_000 + '": 1}'), TRIAL_BOUND_S),
    ("trailing commas only", _write("{,}"), TRIAL_BOUND_S),
    ("a NUL in the middle", _write(BASE_BYTES[:100] + b"\x00" + BASE_BYTES[100:]), TRIAL_BOUND_S),
]


def test_nasty_cases(tmp_path: Path, fault_table: FaultTable) -> None:
    """The fixed list: each nasty file exits 0 or 2, within its bound, with one clear line."""
    tally = Tally()
    for index, (name, make, bound) in enumerate(NASTY):
        directory = tmp_path / str(index)
        directory.mkdir()
        path = make(directory)
        tally.add(check_in_process(path, name, bound), path)
    fault_table.record(FAULT_CLASS, tally.trials, tally.survived, tally.detail())


@pytest.mark.parametrize(("name", "exit_code"), [
    ("a directory", 2), ("10,000 levels of lists", 2), ("markup in an error's key and value", 2),
    ("markup in keys", 0), ("UTF-16 LE with BOM", 2),
])
def test_nasty_cases_the_known_outcome(tmp_path: Path, name: str, exit_code: int) -> None:
    """A few of the nasty cases with the outcome they must have (not only "0 or 2")."""
    [(make, bound)] = [(make, bound) for case, make, bound in NASTY if case == name]
    path = make(tmp_path)
    trial = check_in_process(path, name, bound)
    assert trial.problem(path) is None
    assert trial.code == exit_code, trial.stderr


# ---------------------------------------------------------------------------------------------
# Subprocesses: the real entry point, end to end


@pytest.mark.timeout(60)
def test_subprocess_cases(tmp_path: Path, fault_table: FaultTable) -> None:
    """A few nasty files through ``python -m baton``: a real process exits 2, no traceback, no hang."""
    tally = Tally()
    for name in ("a FIFO with no writer", "10,000 levels of objects", "markup and emoji in the path",
                 "not UTF-8 (latin-1)"):
        [make] = [make for case, make, _ in NASTY if case == name]
        directory = tmp_path / name.replace("/", "_")
        directory.mkdir()
        path = make(directory)
        start = time.perf_counter()
        result = run_cli(["config", "check", str(path)], home=tmp_path, timeout=30)
        # A process pays for its imports (about a second here): its bound is looser than in-process.
        tally.add(Trial(name, result.returncode, result.stdout, result.stderr, time.perf_counter() - start, 20.0),
                  path)
    fault_table.record(FAULT_CLASS, tally.trials, tally.survived, tally.detail())


@pytest.mark.timeout(60)
def test_serve_with_a_malformed_config_exits_2_with_its_place(tmp_path: Path, fault_table: FaultTable) -> None:
    """``baton serve --config BAD``: exit 2 with file:line:col before any wait for opencode, no traceback."""
    path = tmp_path / "omo.jsonc"
    text = '{\n  // a bad value, then markup\n  "runtime_fallback": {"timeout_seconds": 1e999},\n  "[/x]": 1,\n}\n'
    path.write_text(text)
    column = text.index("1e999") - text.rindex("\n", 0, text.index("1e999"))
    start = time.perf_counter()
    result = run_cli(["serve", "--config", str(path), "--opencode-url", "http://127.0.0.1:9"], home=tmp_path)
    elapsed = time.perf_counter() - start
    fault_table.record(FAULT_CLASS, 1, int(result.returncode == 2 and "Traceback" not in result.stderr))
    assert result.returncode == 2, result.stderr
    assert f"{path}:3:{column}: runtime_fallback.timeout_seconds: must be a finite number" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 20.0
