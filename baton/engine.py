"""The engine: feeds opencode's events to the decision core and carries out its actions.

One asyncio loop, one writer. :meth:`Engine.feed` is synchronous: it hands an event to the
policy and executes the returned actions at once — timers and journal writes inline, HTTP
calls as tasks in the engine's task group whose outcome comes back through ``feed`` as an
event. Because nothing awaits between an event and its decision, no lock is needed.

The stream loop reconnects with capped backoff, treats 30 s without a heartbeat as a dead
stream, and resyncs on every (re)connect from ``GET /session/status`` and the messages of the
sessions it tracks: the stream has no replay, so that is the only record of what was missed.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

import anyio
import structlog
from anyio.abc import TaskGroup

from baton.actions import (
    RESEND_INTENT,
    Action,
    CancelTimer,
    ClearIntent,
    Note,
    Resend,
    ResendIntent,
    SaveCooldown,
    SaveIntent,
    Schedule,
    Toast,
)
from baton.cooldowns import Cooldowns
from baton.events import (
    AssistantMessage,
    Event,
    PartDelta,
    PartUpdated,
    RecoveredResend,
    ResendOutcome,
    ResendResult,
    SessionCreated,
    SessionDeleted,
    SessionError,
    SessionIdle,
    SessionStatus,
    TimerFired,
    UserMessage,
)
from baton.fallback.policy import FallbackPolicy
from baton.opencode.client import (
    OpencodeClient,
    OpencodeError,
    OpencodeHTTPError,
    OpencodeUnavailable,
    resend_parts,
)
from baton.opencode.events import STREAM_EVENTS, message_events, parse_event, parse_status
from baton.runtime.tasks import TASK_ACTIONS, TaskRuntime
from baton.store import JournalEntry, Store
from baton.tasks.actions import TaskAction
from baton.tasks.events import Attached, Detached, HostRestarted, SchedulerEvent

__all__ = ["MCP_NAME", "MIN_HEARTBEAT_TIMEOUT_S", "Clock", "Engine", "EngineState", "EngineStats", "SystemClock"]

log = structlog.get_logger("baton")

HEARTBEAT_TIMEOUT_S = 30.0
"""Default silence (no heartbeat, no event) after which a stream counts as dead; opencode beats every 10 s."""
MIN_HEARTBEAT_TIMEOUT_S = 15.0
FIRST_EVENT_S = 2.0
"""opencode sends ``server.connected`` at once: a stream without it is not served."""
WATCH_PERIOD_S = 0.25
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 0.5
"""Reconnect attempts are cheap local calls; a short cap keeps re-attach within ~1 s of opencode answering."""
STILL_DETACHED_LOG_S = 10.0
ATTACH_CALL_S = 5.0
"""Bound on each call of the attach sequence (config, resync, MCP registration)."""
TOOLS_READY_S = 10.0
ABORT_TIMEOUT_S = 5.0
PROMPT_RETRIES = 3
RESYNC_MESSAGE_LIMIT = 30
MCP_NAME = "baton"
"""The name baton's MCP server is registered under; opencode shows its tools as ``baton_<tool>``."""
# Events from opencode's stream (or a resync), which every decider sees; timers and action
# results go only to the decider that asked for them.
CORE_EVENTS = (PartDelta, PartUpdated, AssistantMessage, UserMessage, SessionStatus, SessionIdle, SessionError,
               SessionCreated, SessionDeleted, ResendResult, RecoveredResend)


class Clock(Protocol):
    """Wall time in epoch seconds; tests pass a fake one."""

    def time(self) -> float: ...


class SystemClock:
    def time(self) -> float:
        return time.time()


class EngineState(StrEnum):
    UNOPENED = "unopened"
    ATTACHED = "attached"
    DETACHED = "detached"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A snapshot for ``/healthz`` and ``baton status``."""

    state: EngineState
    opencode_url: str
    events: int
    connects: int
    last_event_at: float | None
    sessions: list[dict[str, Any]]
    cooldowns: list[dict[str, Any]]
    fallbacks: int
    fallback: str
    tasks: list[dict[str, Any]]


class Engine:
    """Attaches to one opencode server and keeps its sessions on a working model."""

    def __init__(
        self,
        client: OpencodeClient,
        policy: FallbackPolicy,
        store: Store,
        *,
        clock: Clock | None = None,
        on_attach: Callable[[int], None] | None = None,
        tasks: TaskRuntime | None = None,
        mcp_url: str | None = None,
        mcp_headers: Mapping[str, str] | None = None,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT_S,
    ) -> None:
        self.client = client
        self.policy = policy
        self.store = store
        self.tasks = tasks
        # Where opencode reaches baton's MCP tools; None: do not register them (--no-register-mcp).
        self.mcp_url = mcp_url
        # Headers opencode sends with every MCP call (baton's bearer token).
        self.mcp_headers = dict(mcp_headers or {})
        self.heartbeat_timeout = heartbeat_timeout
        self.detached_reason: str | None = "not connected yet"
        self._tools = "pending" if mcp_url is not None else "not registered (--no-register-mcp)"
        self._deadline = 0.0
        self._detached_since: float | None = None
        self._last_detached_log = 0.0
        self.clock: Clock = clock or SystemClock()
        self.state = EngineState.UNOPENED
        self.attached = anyio.Event()
        self._on_attach = on_attach
        self._tg: TaskGroup | None = None
        self._timers: dict[str, anyio.CancelScope] = {}
        self._events = 0
        self._connects = 0
        self._fallbacks = 0
        self._last_event_at: float | None = None
        self._errors = 0
        self._last_error: str | None = None
        self._host_was_down = False
        # Re-send intents a killed baton left in the store (None: not read yet); fed to the policy
        # after the first resync that worked (spec §7 rule 8).
        self._recovering: list[ResendIntent] | None = None

    @staticmethod
    def load_cooldowns(store: Store, now: float) -> Cooldowns:
        return Cooldowns((model, until) for model, until, _ in store.cooldowns(now))

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run until cancelled: the stream loop plus whatever the actions start."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            if self.tasks is not None:
                self.tasks.bind(self.feed, self.run_actions, self._spawn)
            tg.start_soon(self._stream_loop)
        self.state = EngineState.CLOSED

    def _spawn(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        if self._tg is not None:
            self._tg.start_soon(self._guarded, fn, *args)

    async def _guarded(self, fn: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run one background job; a bug in it is logged and counted, never the daemon's end."""
        try:
            await fn(*args)
        except Exception as exc:
            self._internal_error(f"{getattr(fn, '__qualname__', fn)}", exc)

    def _internal_error(self, where: str, exc: Exception) -> None:
        self._errors += 1
        self._last_error = f"{where}: {type(exc).__name__}: {exc}"
        log.error("internal error; baton carries on", where=where, error=f"{type(exc).__name__}: {exc}",
                  exc_info=exc)

    async def _stream_loop(self) -> None:
        """Connect, consume, and on any failure reconnect at once or after a short backoff.

        Every phase is bounded: connect and response headers by the client, the first event
        and then the heartbeat by the watcher. A wait that timed out already took its time, so
        the next attempt starts at once; a refusal backs off up to ``BACKOFF_MAX_S``.
        """
        backoff = BACKOFF_FIRST_S
        while True:
            cause = "event stream closed by opencode"
            timed_out = False
            try:
                async with self.client.event_lines() as lines:
                    backoff = BACKOFF_FIRST_S
                    await self._consume_watched(lines)
            except OpencodeUnavailable as exc:
                cause, timed_out = str(exc), exc.timed_out
                if self.state is EngineState.DETACHED and not exc.timed_out:
                    # Refused while detached: the opencode process itself was gone, so children
                    # that were mid-turn lost that turn (background-tasks spec §15.5).
                    self._host_was_down = True
            except OpencodeError as exc:
                cause = str(exc)
            except TimeoutError as exc:
                cause, timed_out = str(exc) or "no event from opencode in time", True
            self._detach(cause)
            if not timed_out:
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _detach(self, cause: str) -> None:
        """Record why baton is not attached; log the change, and a reminder while it lasts."""
        now = self.clock.time()
        was_attached = self.state is EngineState.ATTACHED
        if was_attached:
            self.state = EngineState.DETACHED
            self.attached = anyio.Event()
            if self.tasks is not None:
                self.feed(Detached())
        self._tools = "unknown (detached)" if self.mcp_url is not None else self._tools
        changed = cause != self.detached_reason
        self.detached_reason = cause
        if was_attached:
            self._detached_since = now
            log.warning("detached from opencode; reconnecting", cause=cause, url=self.client.base_url)
        elif changed or now - self._last_detached_log >= STILL_DETACHED_LOG_S:
            waiting = "waiting for opencode" if self.state is EngineState.UNOPENED else "still detached from opencode"
            log.warning(waiting, cause=cause, url=self.client.base_url,
                        seconds=round(now - (self._detached_since or now), 1))
        else:
            return
        self._last_detached_log = now

    async def _consume_watched(self, lines: AsyncIterator[str]) -> None:
        """Consume the stream while a watcher ends it when opencode falls silent.

        One watcher per connection instead of a timeout around every read: a cancel scope per
        line cost 6.8 µs, more than deciding the event. The first event must come within
        ``FIRST_EVENT_S``, then a heartbeat (or any event) within ``heartbeat_timeout``. The
        watcher runs in the engine's task group, so errors of the stream itself reach the
        reconnect loop unwrapped.
        """
        self._deadline = self.clock.time() + FIRST_EVENT_S
        reading = anyio.CancelScope()
        watching = anyio.CancelScope()
        dead = anyio.Event()

        async def watch() -> None:
            with watching:
                # A periodic check: heartbeats only move the deadline, so there is no event to wait on.
                while self.clock.time() <= self._deadline:  # noqa: ASYNC110
                    await anyio.sleep(WATCH_PERIOD_S)
                dead.set()
                reading.cancel()

        self._spawn(watch)
        try:
            with reading:
                await self._consume(lines)
        finally:
            watching.cancel()
        if dead.is_set():
            if self.state is EngineState.ATTACHED:
                raise TimeoutError(f"no heartbeat from opencode for {self.heartbeat_timeout:g} s")
            raise TimeoutError(f"opencode sent no event within {FIRST_EVENT_S:g} s of answering")

    async def _consume(self, lines: AsyncIterator[str]) -> None:
        resynced = False
        async for line in lines:
            if not line.startswith("data:"):
                continue
            try:
                payload = json.loads(line[5:])
            except ValueError:
                continue
            self._deadline = self.clock.time() + self.heartbeat_timeout
            kind = payload.get("type") if isinstance(payload, dict) else None
            if kind in STREAM_EVENTS:
                if not resynced:
                    resynced = True
                    with anyio.fail_after(ATTACH_CALL_S * 4):
                        await self._attach()
                continue
            event = parse_event(payload)
            if event is not None:
                self.feed(event)

    async def _attach(self) -> None:
        """First frame of a (re)connection: resync, register the tools, then report attached."""
        self._connects += 1
        if self._recovering is None:
            self._recovering = self.store.load_pending(RESEND_INTENT, ResendIntent.from_row)
        try:
            await self._check_competing_fallback()
            await self.resync()
        except OpencodeError as exc:
            log.warning("resync failed; continuing on the stream alone", error=str(exc))
        else:
            # After the resync: the policy knows each session's latest turn and status by now.
            recovering, self._recovering = self._recovering, []
            for intent in recovering:
                self.feed(RecoveredResend(intent))
        first = self.state is EngineState.UNOPENED
        self.state = EngineState.ATTACHED
        self.detached_reason = None
        self._detached_since = None
        if self.tasks is not None:
            if first:
                self.run_actions(self.tasks.scheduler.resume(self.clock.time()))
            elif self._host_was_down:
                self.feed(HostRestarted())
            self.feed(Attached())
        self._host_was_down = False
        if self.mcp_url is not None:
            self._tools = await self._register_tools(self.mcp_url)
        self.attached.set()
        if first and self._on_attach is not None:
            self._on_attach(len(self.policy.sessions))
        elif not first:
            log.info("re-attached to opencode", url=self.client.base_url, tools=self._tools)

    async def _register_tools(self, url: str) -> str:
        """Register baton's MCP server and wait, bounded, until opencode has connected it: before
        that, a prompt reaches the model without baton's tools. Returns the tools' status."""
        try:
            status = await self.client.register_mcp(MCP_NAME, url, headers=self.mcp_headers)
            deadline = self.clock.time() + TOOLS_READY_S
            while status != "connected" and self.clock.time() < deadline:
                await anyio.sleep(0.1)
                status = await self.client.mcp_status(MCP_NAME)
        except OpencodeError as exc:
            status = f"failed: {exc}"
        if status != "connected":
            log.warning("opencode has not connected baton's MCP tools", status=status, url=url)
        return status

    async def _check_competing_fallback(self) -> None:
        """Stand down while oh-my-opencode's own fallback is loaded and on: two handlers for one
        failure mean two aborts and two prompts (spec §10.3). Checked at every (re)attach."""
        plugins = (await self.client.config()).get("plugin") or []
        names = [p[0] if isinstance(p, list) and p else p for p in plugins]
        loaded = any(isinstance(n, str) and ("oh-my-opencode" in n or "oh-my-openagent" in n) for n in names)
        config = self.policy.config
        reason = None
        if loaded and (config.runtime_fallback_explicit or config.model_fallback):
            which = "runtime_fallback" if config.runtime_fallback_explicit else "model_fallback"
            reason = (f"the oh-my-opencode plugin is loaded with its own {which} on; baton stays passive "
                      f"until one of them is turned off")
        if reason != self.policy.passive_reason:
            if reason:
                log.warning(reason)
            else:
                log.info("no competing fallback: baton's fallback is active")
        self.policy.passive_reason = reason

    async def resync(self) -> None:
        """Replay what the stream cannot: live statuses and the latest turn of each session
        baton tracks or that is busy now. Decisions are keyed, so replays decide nothing twice."""
        statuses = await self.client.session_status()
        tracked = {sid for sid, s in self.policy.sessions.items() if s.fb is not None}
        if self.tasks is not None:
            tracked |= self.tasks.resync_sessions()
        recovering = {intent.session_id: intent.directory for intent in self._recovering or ()}
        for sid in sorted(tracked | set(statuses) | set(recovering)):
            directory = self.policy.sessions[sid].directory if sid in self.policy.sessions else None
            directory = directory or recovering.get(sid)
            try:
                rows = await self.client.messages(sid, directory, limit=RESYNC_MESSAGE_LIMIT)
            except OpencodeHTTPError as exc:
                if exc.status == 404:
                    continue
                raise
            for event in _latest_turn(message_events(rows)):
                self.feed(event)
            self.feed(parse_status(sid, statuses.get(sid)))

    # ------------------------------------------------------------------ deciding

    def feed(self, event: Event | SchedulerEvent) -> None:
        """Hand one event to the deciders and execute their actions. Never awaits, never raises:
        a bug deciding one event is logged and counted, and the next event is decided as usual."""
        try:
            self._feed(event)
        except Exception as exc:
            self._internal_error(f"deciding {type(event).__name__}", exc)

    def _feed(self, event: Event | SchedulerEvent) -> None:
        now = self.clock.time()
        self._events += 1
        self._last_event_at = now
        tasks = self.tasks
        if isinstance(event, TimerFired):
            if event.key.startswith("tasks:"):
                if tasks is not None:
                    self.run_actions(tasks.scheduler.handle(event, now), now)
                return
        elif not isinstance(event, CORE_EVENTS):
            if tasks is not None:
                self.run_actions(tasks.scheduler.handle(event, now), now)
            return
        for action in self.policy.handle(event, now):
            self._execute(action, now)
        if tasks is not None:
            tasks.observe(event)
            self.run_actions(tasks.scheduler.handle(event, now), now)

    def run_actions(self, actions: list[Any], now: float | None = None) -> None:
        """Execute actions in order; a scheduler's saves are committed before later I/O starts."""
        if not actions:
            return
        now = self.clock.time() if now is None else now
        for action in actions:
            self._execute(action, now)

    def _execute(self, action: Action | TaskAction, now: float) -> None:
        if isinstance(action, TASK_ACTIONS):
            assert self.tasks is not None
            self.tasks.execute(action, now)
        elif isinstance(action, Note):
            self._journal(action, now)
        elif isinstance(action, Resend):
            self._fallbacks += 1
            self._spawn(self._resend, action)
        elif isinstance(action, Schedule):
            self._schedule(action.key, action.at)
        elif isinstance(action, CancelTimer):
            scope = self._timers.pop(action.key, None)
            if scope is not None:
                scope.cancel()
        elif isinstance(action, SaveIntent):
            # Written before the Resend that follows it is even spawned (spec §7 rule 8).
            self.store.put_pending(RESEND_INTENT, action.intent.session_id, action.intent.to_row(), now)
        elif isinstance(action, ClearIntent):
            self.store.put_pending(RESEND_INTENT, action.session_id, None, now)
        elif isinstance(action, SaveCooldown):
            self.store.save_cooldown(action.model, action.until, action.reason, now)
            log.info("model cooling down", model=action.model, seconds=round(action.until - now, 1))
        elif isinstance(action, Toast):
            self._spawn(self._toast, action)

    def _journal(self, note: Note, now: float) -> None:
        self.store.journal([JournalEntry(now, note.session_id, note.kind, note.text, note.data)])
        log.info(note.text, session=note.session_id, decision=note.kind)

    # ------------------------------------------------------------------ timers

    def _schedule(self, key: str, at: float) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        scope = anyio.CancelScope()
        self._timers[key] = scope
        self._spawn(self._timer, key, at, scope)

    async def _timer(self, key: str, at: float, scope: anyio.CancelScope) -> None:
        with scope:
            await anyio.sleep(max(0.0, at - self.clock.time()))
            if self._timers.get(key) is scope:
                del self._timers[key]
                self.feed(TimerFired(key))

    # ------------------------------------------------------------------ executing

    async def _resend(self, action: Resend) -> None:
        """Abort (if needed) and re-send; report the outcome as a ``ResendResult`` (spec §7)."""
        aborted = False
        try:
            message_id, parts = await self._message_for(action)
            if not parts:
                self._resend_done(action, ResendOutcome.REFUSED, False, "no user message to re-send")
                return
            if action.abort:
                with anyio.fail_after(ABORT_TIMEOUT_S):
                    await self.client.abort(action.session_id, action.directory)
                aborted = True
        except (OpencodeError, TimeoutError) as exc:
            self._resend_done(action, ResendOutcome.REFUSED, False, f"could not stop the turn: {exc}")
            return
        delay = 0.2
        for attempt in range(1, PROMPT_RETRIES + 1):
            try:
                await self.client.prompt_async(
                    action.session_id, parts=parts, model=action.model, agent=action.agent,
                    message_id=message_id, directory=action.directory,
                )
            except OpencodeHTTPError as exc:
                if not aborted or attempt == PROMPT_RETRIES:
                    self._resend_done(action, ResendOutcome.REFUSED, aborted, str(exc))
                    return
            except OpencodeError as exc:
                if "timed out" in str(exc):
                    self._resend_done(action, ResendOutcome.UNKNOWN, aborted, str(exc))
                    return
                if not aborted or attempt == PROMPT_RETRIES:
                    self._resend_done(action, ResendOutcome.REFUSED, aborted, str(exc))
                    return
            else:
                self._resend_done(action, ResendOutcome.ACCEPTED, aborted)
                return
            await anyio.sleep(delay)
            delay *= 2

    async def _message_for(self, action: Resend) -> tuple[str | None, list[dict[str, Any]]]:
        """The message to re-send with every part in input form; fetched if the stream lacked it."""
        raw = action.parts
        message_id = action.message_id
        if raw is None:
            rows = await self.client.messages(action.session_id, action.directory, limit=RESYNC_MESSAGE_LIMIT)
            for row in reversed(rows):
                info = row.get("info") if isinstance(row, dict) else None
                if not isinstance(info, dict) or info.get("role") != "user":
                    continue
                if message_id is None or info.get("id") == message_id:
                    message_id = info.get("id")
                    raw = tuple(p for p in row.get("parts") or () if isinstance(p, dict))
                    break
        return message_id, resend_parts(raw or ())

    def _resend_done(self, action: Resend, outcome: ResendOutcome, aborted: bool, detail: str = "") -> None:
        self.feed(ResendResult(action.session_id, action.token, outcome, aborted, detail))

    async def _toast(self, action: Toast) -> None:
        # No TUI attached, or it is busy: a toast is a courtesy (spec §7 step 5).
        with contextlib.suppress(OpencodeError):
            await self.client.show_toast(action.title, action.message, action.variant, action.directory)

    # ------------------------------------------------------------------ observing

    def health(self) -> dict[str, Any]:
        """Readiness and, when not ready, which part is missing: ``attached`` means usable —
        the stream attached and baton's tools connected in opencode (when it registers them)."""
        stream = self.state is EngineState.ATTACHED
        tools_ok = self.mcp_url is None or self._tools == "connected"
        store_problem = self.store.problem
        reason = self.detached_reason if not stream else None
        if stream and not tools_ok:
            reason = f"baton's MCP tools are not connected in opencode ({self._tools})"
        return {
            "attached": stream and tools_ok,
            "state": self.state.value,
            "reason": reason,
            "tools": self._tools,
            "store": store_problem,
            "degraded": store_problem is not None,
            "internal_errors": self._errors,
            "last_internal_error": self._last_error,
            "opencode": self.client.base_url,
            "fallback": self.fallback_mode(),
        }

    def fallback_mode(self) -> str:
        """``active``, ``disabled`` (config) or ``passive: <why>`` (a competing fallback is on)."""
        if not self.policy.settings.enabled:
            return "disabled"
        reason = self.policy.passive_reason
        return "active" if reason is None else f"passive: {reason}"

    def stats(self) -> EngineStats:
        now = self.clock.time()
        return EngineStats(
            state=self.state,
            opencode_url=self.client.base_url,
            events=self._events,
            connects=self._connects,
            last_event_at=self._last_event_at,
            sessions=[
                {
                    "id": s.session_id, "status": s.status, "agent": s.agent, "original": s.original,
                    "current": s.current, "attempts": s.attempts, "max_attempts": s.max_attempts,
                    "chain": list(s.chain), "awaiting": s.awaiting,
                }
                for s in self.policy.snapshot(now)
            ],
            cooldowns=[
                {"model": model, "until": until, "seconds_left": math.ceil(until - now)}
                for model, until in self.policy.cooldowns.active(now)
            ],
            fallbacks=self._fallbacks,
            fallback=self.fallback_mode(),
            tasks=[asdict(view) for view in self.tasks.scheduler.snapshot(now)] if self.tasks else [],
        )


def _latest_turn(events: list[Event]) -> list[Event]:
    """The newest user message and what followed it; older turns are history, not news."""
    last_user = max((i for i, e in enumerate(events) if isinstance(e, UserMessage)), default=None)
    return events if last_user is None else events[last_user:]

