"""OpenAI's wire format as the fake provider speaks it: completion objects, SSE frames, error bodies.

Kept apart from the server so the shapes opencode parses can be read in one place,
without the threading and lifecycle around them.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from baton.testing.fake_script import Answer, ToolCall

__all__ = ["Completion", "default_error_type", "error_response", "read_json", "split_chunks", "sse"]

_WORDS = re.compile(r"\s*\S+\s*|\s+")


def split_chunks(text: str) -> list[str]:
    """Split `text` into word-sized stream chunks that concatenate back to `text`."""
    return _WORDS.findall(text)


def default_error_type(status: int) -> str:
    """The OpenAI error `type` a provider would send with HTTP `status`."""
    if status == 429:
        return "rate_limit_exceeded"
    if status in (401, 403):
        return "authentication_error"
    if status == 404:
        return "not_found_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


class Completion:
    """Builds the OpenAI response objects of one chat completion."""

    def __init__(self, cid: str, model: str, body: dict[str, Any]) -> None:
        self.id = cid
        self.model = model
        self.body = body
        self.created = int(time.time())
        self.completion_tokens = 0
        messages = body.get("messages", [])
        self.prompt_tokens = max(1, len(json.dumps(messages)) // 4)

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def usage_chunk(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": self.usage(),
        }

    def whole(self, step: Answer | ToolCall) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": step.text or None}
        finish = "stop"
        self.completion_tokens = max(1, len(split_chunks(step.text)))
        if isinstance(step, ToolCall):
            finish = "tool_calls"
            message["tool_calls"] = [
                {
                    "id": f"call_{self.id}",
                    "type": "function",
                    "function": {"name": step.name, "arguments": json.dumps(dict(step.arguments))},
                }
            ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": self.usage(),
        }


def sse(obj: dict[str, Any]) -> bytes:
    """One server-sent-events frame carrying `obj` as compact JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def error_response(
    status: int, message: str, error_type: str, code: str | int | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An HTTP error in OpenAI's shape `{"error": {"message", "type", "code"}}`."""
    body = {"error": {"message": message, "type": error_type, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; anything else is kept under `_raw` or `_json`, never refused."""
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {"_raw": raw.decode("utf-8", "replace")}
    return body if isinstance(body, dict) else {"_json": body}
