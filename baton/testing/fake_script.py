"""The fake provider's script: the steps a model can be told to take, and their JSON form.

Plain data with no server attached, so a script can be built, parsed from a file or
compared in a test without starting anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

__all__ = ["Answer", "Drop", "Hang", "Refuse", "Step", "ToolCall", "load_script", "script_from_json", "step_from_json"]


@dataclass(frozen=True, slots=True)
class Answer:
    """Stream `text` back in word-sized chunks after `delay` s, `chunk_delay` s between chunks.

    A large `chunk_delay` doubles as a slow provider.
    """

    text: str
    delay: float = 0
    chunk_delay: float = 0


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer with an HTTP error in OpenAI's shape `{"error": {"message", "type", "code"}}`.

    `retry_after` (seconds) adds a `Retry-After` header; `code` defaults to the status.
    """

    status: int
    message: str
    retry_after: float | None = None
    error_type: str | None = None
    code: str | int | None = None


@dataclass(frozen=True, slots=True)
class Hang:
    """Accept the request and never finish it until the client disconnects or the server stops.

    With `partial`, the 200 headers and those chunks are streamed first: a stream
    that stalls midway instead of a provider that never answers.
    """

    partial: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """Stream one call of tool `name` with `arguments`, optionally after some `text`.

    The finish reason is `tool_calls`, so the client runs the tool and asks again:
    script the follow-up answer as the next step.
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""
    delay: float = 0


@dataclass(frozen=True, slots=True)
class Drop:
    """Send the 200 headers and `partial`, then cut the connection without finishing the body."""

    partial: str = ""


Step: TypeAlias = Answer | Refuse | Hang | ToolCall | Drop


# -- JSON scripts ----------------------------------------------------------------------------------


def step_from_json(obj: object) -> Step:
    """Parse one step of a JSON script.

    Forms: `"text"` or `{"answer": "text", "delay": s, "chunk_delay": s}`,
    `{"refuse": 429, "message": "...", "retry_after": s, "error_type": "...", "code": ...}`,
    `{"hang": true, "partial": "..."}`, `{"tool_call": "name", "arguments": {...}, "text": "..."}`,
    `{"drop": true, "partial": "..."}`.
    """
    if isinstance(obj, str):
        return Answer(obj)
    if not isinstance(obj, dict):
        raise ValueError(f"a script step must be a string or an object, got {obj!r}")
    d = dict(obj)

    def take(allowed: Iterable[str]) -> dict[str, Any]:
        extra = set(d) - set(allowed)
        if extra:
            raise ValueError(f"unknown key(s) {sorted(extra)} in script step {obj!r}")
        return d

    if "answer" in d:
        take(("answer", "delay", "chunk_delay"))
        return Answer(str(d["answer"]), float(d.get("delay", 0)), float(d.get("chunk_delay", 0)))
    if "refuse" in d:
        take(("refuse", "message", "retry_after", "error_type", "code"))
        retry_after = d.get("retry_after")
        return Refuse(
            int(d["refuse"]),
            str(d.get("message", "refused by fake provider")),
            None if retry_after is None else float(retry_after),
            d.get("error_type"),
            d.get("code"),
        )
    if "hang" in d:
        take(("hang", "partial"))
        return Hang(str(d.get("partial", "")))
    if "tool_call" in d:
        take(("tool_call", "arguments", "text", "delay"))
        args = dict(d.get("arguments", {}))
        return ToolCall(str(d["tool_call"]), args, str(d.get("text", "")), float(d.get("delay", 0)))
    if "drop" in d:
        take(("drop", "partial"))
        return Drop(str(d.get("partial", "")))
    raise ValueError(f"script step {obj!r} has none of answer/refuse/hang/tool_call/drop")


def script_from_json(obj: object) -> dict[str, list[Step]]:
    """Parse a whole JSON script: `{"model": [step, ...], ...}`."""
    if not isinstance(obj, dict):
        raise ValueError("a script must be a JSON object mapping model ids to lists of steps")
    script: dict[str, list[Step]] = {}
    for model, steps in obj.items():
        if not isinstance(steps, list) or not steps:
            raise ValueError(f"script for model {model!r} must be a non-empty list of steps")
        script[str(model)] = [step_from_json(s) for s in steps]
    return script


def load_script(path: Path) -> dict[str, list[Step]]:
    """Read and parse a JSON script file."""
    return script_from_json(json.loads(path.read_text(encoding="utf-8")))
