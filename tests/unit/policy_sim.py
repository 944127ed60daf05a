"""A tiny driver for the pure fallback policy: build events, advance a fake clock, collect actions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from baton.actions import Action, CancelTimer, Note, Resend, SaveCooldown, Schedule, Toast
from baton.config import Config, load_config
from baton.cooldowns import Cooldowns
from baton.events import (
    AssistantMessage,
    Event,
    PartDelta,
    PartUpdated,
    ResendOutcome,
    ResendResult,
    SessionDeleted,
    SessionError,
    SessionIdle,
    SessionStatus,
    StatusType,
    TimerFired,
    UserMessage,
)
from baton.fallback.policy import FallbackPolicy

T0 = 1_800_000_000.0
COOLDOWN_TEXT = "All credentials for model primary are cooling down [retrying in 2s attempt #1]"


def make_config(tmp: Path, settings: dict[str, Any]) -> Config:
    path = tmp / "baton-test.json"
    path.write_text(json.dumps(settings))
    return load_config(None, explicit=path, env={}, home=tmp)


class Sim:
    """One policy, a fake clock, and helpers named after what opencode emits."""

    def __init__(self, config: Config, cooldowns: Cooldowns | None = None) -> None:
        self.now = T0
        self.policy = FallbackPolicy(config, cooldowns or Cooldowns())
        self.log: list[Action] = []
        self._n = 0

    def feed(self, event: Event) -> list[Action]:
        actions = list(self.policy.handle(event, self.now))  # handle's result is read-only (often shared)
        self.log.extend(actions)
        return actions

    def advance(self, seconds: float) -> None:
        self.now += seconds

    # --- opencode events ---------------------------------------------------------------

    def user(self, sid: str, mid: str, model: str, agent: str = "build", text: str = "hello") -> list[Action]:
        out = self.feed(UserMessage(sid, mid, model, agent))
        part = {"id": f"prt_{mid}", "sessionID": sid, "messageID": mid, "type": "text", "text": text}
        out += self.feed(PartUpdated(sid, mid, part["id"], "text", text, part))
        return out

    def busy(self, sid: str) -> list[Action]:
        return self.feed(SessionStatus(sid, StatusType.BUSY))

    def assistant(self, sid: str, mid: str, parent: str, model: str, **kw: Any) -> list[Action]:
        return self.feed(AssistantMessage(sid, mid, parent, model, kw.pop("agent", "build"), **kw))

    def retry(
        self, sid: str, attempt: int = 1, message: str = COOLDOWN_TEXT, next_ms: int | None = None
    ) -> list[Action]:
        if next_ms is None:
            next_ms = int((self.now + 2 * 2 ** (attempt - 1)) * 1000)
        return self.feed(SessionStatus(sid, StatusType.RETRY, attempt, message, next_ms))

    def error(self, sid: str, message: str, status: int | None = None, name: str = "APIError") -> list[Action]:
        data: dict[str, Any] = {"message": message}
        if status is not None:
            data["statusCode"] = status
        return self.feed(SessionError(sid, {"name": name, "data": data}))

    def idle(self, sid: str) -> list[Action]:
        return self.feed(SessionStatus(sid, StatusType.IDLE)) + self.feed(SessionIdle(sid))

    def text(self, sid: str, mid: str, delta: str = "Hi") -> list[Action]:
        self._n += 1
        part = {"id": f"prt_a{self._n}", "sessionID": sid, "messageID": mid, "type": "text", "text": ""}
        out = self.feed(PartUpdated(sid, mid, part["id"], "text", "", part))
        return out + self.feed(PartDelta(sid, mid, part["id"], "text", delta))

    def result(self, sid: str, token: int, outcome: ResendOutcome = ResendOutcome.ACCEPTED) -> list[Action]:
        return self.feed(ResendResult(sid, token, outcome, aborted=True))

    def fire(self, key: str) -> list[Action]:
        return self.feed(TimerFired(key))

    def delete(self, sid: str) -> list[Action]:
        return self.feed(SessionDeleted(sid))

    def start_turn(self, sid: str, mid: str = "msg_u1", model: str = "fake/primary", agent: str = "build") -> None:
        """A user prompt that opencode has started running on ``model``."""
        self.user(sid, mid, model, agent)
        self.busy(sid)
        self.assistant(sid, f"{mid}_a1", mid, model)


def resends(actions: list[Action]) -> list[Resend]:
    return [a for a in actions if isinstance(a, Resend)]


def notes(actions: list[Action], kind: str | None = None) -> list[Note]:
    return [a for a in actions if isinstance(a, Note) and (kind is None or a.kind == kind)]


def toasts(actions: list[Action]) -> list[Toast]:
    return [a for a in actions if isinstance(a, Toast)]


def schedules(actions: list[Action]) -> list[Schedule]:
    return [a for a in actions if isinstance(a, Schedule)]


def cancels(actions: list[Action]) -> list[CancelTimer]:
    return [a for a in actions if isinstance(a, CancelTimer)]


def cooldowns_saved(actions: list[Action]) -> list[SaveCooldown]:
    return [a for a in actions if isinstance(a, SaveCooldown)]
