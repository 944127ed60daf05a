"""Random event sequences against the fallback policy: its safety rules hold whatever opencode sends.

The machine also keeps what the store would hold of the re-send intents (``SaveIntent`` /
``ClearIntent``) and can restart baton: a fresh policy sees a resync of each session's latest
message (on the model opencode shows it with) and then the intents left behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from policy_sim import Sim, make_config

from baton.actions import ClearIntent, Resend, ResendIntent, SaveIntent
from baton.events import RecoveredResend, ResendOutcome, SessionStatus, StatusType, UserMessage
from baton.fallback.switching import RESEND_TRIES, resend_retry_key
from baton.models import same_model

SESSIONS = ("ses_a", "ses_b")
MODELS = ("fake/primary", "fake/backup", "fake/third", "fake/fourth")
MAX_ATTEMPTS = 2
RETRYABLE = ("All credentials for model primary are cooling down", "Rate limit exceeded", "Service Unavailable")
TERMINAL = ("invalid request: bad parameter", "Too many requests", "You have exhausted your capacity",
            "All fibers interrupted without error")


class PolicyMachine(RuleBasedStateMachine):
    """Drives two sessions through prompts, failures, answers, re-send outcomes, timers and time."""

    def __init__(self) -> None:
        super().__init__()
        tmp = Path(tempfile.mkdtemp())
        chain = {"fallback_models": list(MODELS[1:])}
        config = make_config(tmp, {"agents": {"build": chain},
                                   "runtime_fallback": {"max_fallback_attempts": MAX_ATTEMPTS}})
        self.sim = Sim(config)
        self.in_flight: dict[str, Resend] = {}
        # What the store holds (session -> intent) and what opencode shows: latest message, its model.
        self.store: dict[str, ResendIntent] = {}
        self.opencode: dict[str, tuple[str, str]] = {}
        self.turns = 0
        self.assistants = 0

    def _check(self, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, SaveIntent):
                self.store[action.intent.session_id] = action.intent
            elif isinstance(action, ClearIntent):
                self.store.pop(action.session_id, None)
            if not isinstance(action, Resend):
                continue
            sid = action.session_id
            assert sid not in self.in_flight, "a second switch started while one was in flight"
            state = self.sim.policy.sessions[sid].fb
            assert state is not None and state.in_flight is not None
            if state.in_flight.retry:  # the same message again on the same model, bounded
                assert same_model(action.model, state.current) and 2 <= state.in_flight.retry <= RESEND_TRIES
            else:
                assert not same_model(action.model, state.in_flight.failing), "switched to the failing model"
            cooling = self.sim.policy.cooldowns.is_cooling(action.model, self.sim.now)
            # A recovered re-send goes to a cooling model only when the chain has no other left.
            assert not cooling or state.in_flight.recovered, "switched to a cooling model"
            assert self.store.get(sid) is not None, "a re-send without a recorded intent"
            assert action.model in state.chain
            self.in_flight[sid] = action

    @rule(sid=st.sampled_from(SESSIONS), model=st.sampled_from(MODELS))
    def prompt(self, sid: str, model: str) -> None:
        self.turns += 1
        self.opencode[sid] = (f"msg_u{self.turns}", model)
        self._check(self.sim.user(sid, f"msg_u{self.turns}", model))
        self._check(self.sim.busy(sid))

    @rule(sid=st.sampled_from(SESSIONS))
    def assistant_starts(self, sid: str) -> None:
        session = self.sim.policy.sessions.get(sid)
        if session is None or session.turn is None or session.fb is None:
            return
        self.assistants += 1
        model = session.fb.current
        self._check(self.sim.assistant(sid, f"msg_a{self.assistants}", session.turn.user_id, model))

    @rule(sid=st.sampled_from(SESSIONS), attempt=st.integers(1, 4), message=st.sampled_from(RETRYABLE))
    def retry_status(self, sid: str, attempt: int, message: str) -> None:
        self._check(self.sim.retry(sid, attempt, message))

    @rule(sid=st.sampled_from(SESSIONS), message=st.sampled_from(TERMINAL), status=st.sampled_from([400, 429, None]))
    def session_error(self, sid: str, message: str, status: int | None) -> None:
        self._check(self.sim.error(sid, message, status))

    @rule(sid=st.sampled_from(SESSIONS))
    def answer(self, sid: str) -> None:
        session = self.sim.policy.sessions.get(sid)
        if session is not None and session.turn is not None and session.turn.assistants:
            self._check(self.sim.text(sid, next(reversed(session.turn.assistants))))

    @rule(sid=st.sampled_from(SESSIONS))
    def idle(self, sid: str) -> None:
        self._check(self.sim.idle(sid))

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), outcome=st.sampled_from(list(ResendOutcome)))
    def resend_outcome(self, data: st.DataObject, outcome: ResendOutcome) -> None:
        sid = data.draw(st.sampled_from(sorted(self.in_flight)))
        resend = self.in_flight.pop(sid)
        shown = self.opencode.get(sid)
        if outcome is not ResendOutcome.REFUSED and shown is not None and shown[0] == resend.message_id:
            self.opencode[sid] = (shown[0], resend.model)  # the re-sent message replaced the original
        self._check(self.sim.result(sid, resend.token, outcome))

    @rule(sid=st.sampled_from(SESSIONS))
    def watchdog(self, sid: str) -> None:
        self._check(self.sim.fire(f"watchdog:{sid}"))

    @rule(sid=st.sampled_from(SESSIONS))
    def resend_retry_due(self, sid: str) -> None:
        self._check(self.sim.fire(resend_retry_key(sid)))

    @rule(sid=st.sampled_from(SESSIONS))
    def resend_dies_at_once(self, sid: str) -> None:
        """opencode fails the turn internally (as right after its restart), goes idle, and a retry comes due."""
        self._check(self.sim.error(sid, "All fibers interrupted without error", name="UnknownError"))
        self._check(self.sim.idle(sid))
        self._check(self.sim.fire(resend_retry_key(sid)))

    @rule(statuses=st.tuples(*(st.sampled_from([StatusType.IDLE, StatusType.BUSY]) for _ in SESSIONS)),
          reached=st.tuples(*(st.booleans() for _ in SESSIONS)))
    def baton_restarts(self, statuses: tuple[StatusType, ...], reached: tuple[bool, ...]) -> None:
        """kill -9 and start: the re-sends in flight never report, though opencode may have taken
        them (``reached``); the store and opencode remain."""
        for sid, took in zip(SESSIONS, reached, strict=True):
            resend, shown = self.in_flight.get(sid), self.opencode.get(sid)
            if took and resend is not None and shown is not None and shown[0] == resend.message_id:
                self.opencode[sid] = (shown[0], resend.model)
        old = self.sim
        self.sim = Sim(old.policy.config, old.policy.cooldowns)
        self.sim.now = old.now
        self.in_flight.clear()
        for sid, status in zip(SESSIONS, statuses, strict=True):
            if sid in self.opencode:
                mid, model = self.opencode[sid]
                part = {"id": f"prt_{mid}", "type": "text", "text": "hello"}
                self._check(self.sim.feed(UserMessage(sid, mid, model, "build", (part,))))
                self._check(self.sim.feed(SessionStatus(sid, status)))
        for intent in list(self.store.values()):
            self._check(self.sim.feed(RecoveredResend(intent)))

    @rule(seconds=st.sampled_from([1.0, 31.0, 61.0]))
    def time_passes(self, seconds: float) -> None:
        self.sim.advance(seconds)

    @invariant()
    def the_store_holds_an_intent_exactly_for_the_resends_in_flight(self) -> None:
        for sid in self.store:
            session = self.sim.policy.sessions.get(sid)
            fb = session.fb if session is not None else None
            assert fb is not None and fb.intent_saved, f"{sid}: an intent the policy forgot"
            assert fb.in_flight is not None and not fb.in_flight.stale, f"{sid}: an intent with no re-send running"
        for sid, session in self.sim.policy.sessions.items():
            assert not (session.fb is not None and session.fb.intent_saved) or sid in self.store

    @invariant()
    def attempts_stay_within_the_limit(self) -> None:
        for session in self.sim.policy.sessions.values():
            if session.fb is not None:
                assert session.fb.attempts <= MAX_ATTEMPTS
                assert session.fb.resend_tries <= RESEND_TRIES
                assert 0 <= session.fb.index + 1 <= len(session.fb.chain)


def _machine_settings(_: object) -> settings:
    """150 examples under the ci profile, 20 times as many under BATON_HYPOTHESIS_PROFILE=deep
    (tests/conftest.py). Under mutmut (scripts/mutation.py names the mutant in MUTANT_UNDER_TEST
    when the test runs) only the verdict counts: a failure is not shrunk, which would take tens of
    seconds per mutant and tell nothing more."""
    mutating = bool(os.environ.get("MUTANT_UNDER_TEST"))
    return settings(
        max_examples=150 * settings().max_examples // 100, stateful_step_count=40, deadline=None,
        phases=[p for p in settings().phases if not (mutating and p is Phase.shrink)],
    )


TestPolicyMachine = PolicyMachine.TestCase
TestPolicyMachine.settings = property(_machine_settings)  # type: ignore[assignment]  # read at run time
