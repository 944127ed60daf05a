"""The fallback core (baton.fallback.core): the chain walk, the shared cooldown, the per-failure decision.

Both deciders use it — the session policy and the task scheduler — so these pin the one set of
rules they share: equivalent spellings avoided, cooling models skipped (while cooldowns are on),
unconnected providers skipped, the attempt budget, and what each kind of failure calls for.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from baton.actions import SaveCooldown
from baton.cooldowns import Cooldowns
from baton.fallback.core import Choice, FallbackCore, NoCandidate, Verdict, on_connected_provider
from baton.fallback.reset_times import ResetSource, ResetTime
from baton.models import same_model
from baton.settings import RuntimeFallbackConfig

NOW = 1_800_000_000.0
CHAIN = ("prov/a", "prov/b", "mid/c", "other/d")
RATE_LIMIT = {"name": "APIError", "data": {"message": "Rate limit exceeded", "statusCode": 429}}
BAD_REQUEST = {"name": "APIError", "data": {"message": "Bad request", "statusCode": 400}}
ABORTED = {"name": "MessageAbortedError", "data": {"message": "Aborted"}}


def core(cooldowns: Cooldowns | None = None, **rules: Any) -> FallbackCore:
    return FallbackCore(RuntimeFallbackConfig.model_validate(rules), cooldowns or Cooldowns())


def text_reset(at: float) -> ResetTime:
    return ResetTime(at, ResetSource.PROVIDER_TEXT, "")


# ---------------------------------------------------------------------- the chain walk


def test_the_next_model_is_the_first_entry_after_the_one_in_use() -> None:
    assert core().next_model(CHAIN, after=-1, attempts=0, avoid=(), now=NOW) == Choice(0, "prov/a")
    assert core().next_model(CHAIN, after=1, attempts=0, avoid=(), now=NOW) == Choice(2, "mid/c")


def test_the_failing_and_current_models_are_avoided_in_any_spelling() -> None:
    """``Prov/A`` and ``prov/b`` spelled ``PROV/B`` are the same models (case, ``.`` vs ``-``)."""
    chain = ("prov/a", "prov/b-1", "prov/c")
    found = core().next_model(chain, after=-1, attempts=0, avoid=("Prov/A", "PROV/B.1", None), now=NOW)
    assert found == Choice(2, "prov/c")


def test_a_cooling_model_is_skipped_until_it_cools() -> None:
    cooldowns = Cooldowns([("prov/b", NOW + 10)])
    assert core(cooldowns).next_model(CHAIN, after=0, attempts=0, avoid=(), now=NOW) == Choice(2, "mid/c")
    assert core(cooldowns).next_model(CHAIN, after=0, attempts=0, avoid=(), now=NOW + 10) == Choice(1, "prov/b")


def test_cooldowns_count_only_while_they_are_on() -> None:
    """``cooldown_seconds: 0`` turns cooldowns off: a stored one no longer makes a model unusable."""
    cooldowns = Cooldowns([("prov/b", NOW + 10)])
    off = core(cooldowns, cooldown_seconds=0)
    assert off.next_model(CHAIN, after=0, attempts=0, avoid=(), now=NOW) == Choice(1, "prov/b")
    assert off.start_model(CHAIN, 1, NOW, None) == 1


def test_providers_opencode_has_not_connected_are_skipped() -> None:
    connected = frozenset({"prov", "other"})
    assert core().next_model(CHAIN, after=1, attempts=0, avoid=(), now=NOW, connected=connected) == Choice(
        3, "other/d")
    assert core().next_model(CHAIN, after=1, attempts=0, avoid=(), now=NOW, connected=None) == Choice(2, "mid/c")
    assert on_connected_provider("Mid/c", frozenset({"mid"}))
    assert not on_connected_provider("mid/c", frozenset())


def test_the_attempt_budget_and_the_switch_bound_the_walk() -> None:
    assert core(max_fallback_attempts=2).next_model(CHAIN, after=0, attempts=2, avoid=(), now=NOW) is (
        NoCandidate.MAX_ATTEMPTS)
    assert core(enabled=False).next_model(CHAIN, after=0, attempts=0, avoid=(), now=NOW) is NoCandidate.DISABLED
    assert core().next_model(CHAIN, after=3, attempts=0, avoid=(), now=NOW) is NoCandidate.NO_CANDIDATE
    assert core().next_model((), after=-1, attempts=0, avoid=(), now=NOW) is NoCandidate.NO_CANDIDATE
    assert NoCandidate.MAX_ATTEMPTS.text == "the fallback attempts are used up"


chains = st.lists(st.sampled_from(["p/a", "P/A", "p/b", "q/c", "q/c.1", "r/d", "r/D-1"]), max_size=6)


@given(
    chain=chains,
    after=st.integers(-1, 6),
    cooling=st.sets(st.sampled_from(["p/a", "p/b", "q/c", "r/d-1"])),
    avoid=st.lists(st.sampled_from(["p/a", "q/c-1", "r/d"]), max_size=2),
    connected=st.none() | st.sets(st.sampled_from(["p", "q", "r"])).map(frozenset),
)
def test_the_walk_takes_the_first_usable_entry_or_says_there_is_none(
    chain: list[str], after: int, cooling: set[str], avoid: list[str], connected: frozenset[str] | None
) -> None:
    cooldowns = Cooldowns((model, NOW + 60) for model in cooling)
    found = core(cooldowns).next_model(chain, after=after, attempts=0, avoid=avoid, now=NOW, connected=connected)
    usable = [
        i for i in range(max(after + 1, 0), len(chain))
        if not any(same_model(chain[i], a) for a in avoid) and not cooldowns.is_cooling(chain[i], NOW)
        and (connected is None or chain[i].lower().partition("/")[0] in connected)
    ]
    assert found == (Choice(usable[0], chain[usable[0]]) if usable else NoCandidate.NO_CANDIDATE)


def test_a_launch_starts_on_the_first_usable_entry_and_always_somewhere() -> None:
    cooldowns = Cooldowns([("prov/a", NOW + 30), ("prov/b", NOW + 10), ("mid/c", NOW + 20), ("other/d", NOW + 40)])
    assert core().start_model(CHAIN, 0, NOW, None) == 0
    assert core().start_model(CHAIN, 0, NOW, frozenset({"mid"})) == 2
    assert core(cooldowns).start_model(CHAIN, 0, NOW, None) == 1  # all cooling: the soonest to cool
    assert core(cooldowns).start_model(CHAIN, 0, NOW, frozenset({"prov"})) == 1
    assert core().start_model(CHAIN, 1, NOW, frozenset({"elsewhere"})) == 1  # none connected: where asked


# ---------------------------------------------------------------------- the shared cooldown


def test_a_failure_enters_the_shared_cooldown_and_only_extends_it() -> None:
    cooldowns = Cooldowns()
    c = core(cooldowns, cooldown_seconds=60)
    assert c.record_failure("prov/a", NOW, why="rate limit") == SaveCooldown("prov/a", NOW + 60, "rate limit")
    assert c.record_failure("Prov/A", NOW + 1, why="again", reset=text_reset(NOW + 30)) is None  # never earlier
    assert c.record_failure("prov/a", NOW, why="x" * 300, reset=text_reset(NOW + 90)) == SaveCooldown(
        "prov/a", NOW + 90, "x" * 200, "provider text")
    assert cooldowns.until("prov/a") == NOW + 90
    assert core(Cooldowns(), cooldown_seconds=0).record_failure("prov/a", NOW, why="off") is None


def test_a_cooldown_one_decider_learned_makes_the_other_skip_the_model() -> None:
    """A task's failure cools the model for a session's walk, and the reverse: one table."""
    shared = Cooldowns()
    task_side, session_side = core(shared), core(shared)
    task_side.decide(RATE_LIMIT, "prov/b", NOW, chain=("prov/b", "mid/c"), after=0, attempts=0)
    assert session_side.next_model(CHAIN, after=0, attempts=0, avoid=("prov/a",), now=NOW) == Choice(2, "mid/c")


# ---------------------------------------------------------------------- the decision


def test_a_retryable_failure_cools_the_model_and_switches_past_it() -> None:
    decision = core().decide(RATE_LIMIT, "prov/a", NOW, chain=CHAIN, after=-1, attempts=0)
    assert decision.verdict is Verdict.SWITCH and decision.retryable
    assert decision.choice == Choice(1, "prov/b") and decision.next == Choice(1, "prov/b")
    assert decision.cooldown == SaveCooldown("prov/a", NOW + 60, "rate limit exceeded")


def test_the_providers_retry_time_sets_the_cooldown() -> None:
    """The error's Retry-After header (the provider's own word) wins over ``provider_until`` (a retry
    status's time, often only opencode's backoff); that time applies when the provider said nothing."""
    with_header = {"name": "APIError", "data": {"message": "Too many requests", "statusCode": 429,
                                                "responseHeaders": {"retry-after": "120"}}}
    decision = core().decide(with_header, "prov/a", NOW, chain=CHAIN, after=0, attempts=0)
    assert decision.cooldown is not None and decision.cooldown.until == NOW + 120
    decision = core().decide(with_header, "prov/a", NOW, chain=CHAIN, after=0, attempts=0, provider_until=NOW + 5)
    assert decision.cooldown is not None and decision.cooldown.until == NOW + 120
    decision = core().decide(RATE_LIMIT, "prov/a", NOW, chain=CHAIN, after=0, attempts=0, provider_until=NOW + 5)
    assert decision.cooldown is not None and decision.cooldown.until == NOW + 5


def test_a_failure_with_no_usable_model_stays_and_says_why() -> None:
    decision = core(max_fallback_attempts=1).decide(RATE_LIMIT, "prov/b", NOW, chain=CHAIN, after=1, attempts=1)
    assert decision.verdict is Verdict.STAY and decision.reason is NoCandidate.MAX_ATTEMPTS
    assert decision.next is NoCandidate.MAX_ATTEMPTS and decision.cooldown is not None
    decision = core().decide(RATE_LIMIT, "other/d", NOW, chain=CHAIN, after=3, attempts=0)
    assert decision.verdict is Verdict.STAY and decision.reason is NoCandidate.NO_CANDIDATE


def test_the_walk_after_a_failure_skips_unconnected_providers_and_the_avoided() -> None:
    decision = core().decide(RATE_LIMIT, "prov/a", NOW, chain=CHAIN, after=-1, attempts=0, avoid=("prov/b",),
                             connected=frozenset({"prov", "other"}))
    assert decision.choice == Choice(3, "other/d")


def test_a_stop_and_a_non_retryable_error_neither_cool_nor_switch() -> None:
    stop = core().decide(ABORTED, "prov/a", NOW, chain=CHAIN, after=-1, attempts=0)
    assert stop.verdict is Verdict.STOP and stop.cooldown is None and stop.choice is None
    bad = core().decide(BAD_REQUEST, "prov/a", NOW, chain=CHAIN, after=-1, attempts=0)
    assert bad.verdict is Verdict.NOT_RETRYABLE and bad.cooldown is None and bad.info.status_code == 400


def test_a_signal_retryable_by_definition_switches() -> None:
    """Auto-retry text is retryable as such (§4.4 rule 3), even when its phrase is in no class."""
    text = "Some provider hiccup [retrying in 3s]"
    assert core().decide(text, "prov/a", NOW, chain=CHAIN, after=0, attempts=0).verdict is Verdict.NOT_RETRYABLE
    decision = core().decide(text, "prov/a", NOW, chain=CHAIN, after=0, attempts=0, assume_retryable=True)
    assert decision.verdict is Verdict.SWITCH and decision.choice == Choice(1, "prov/b")


def test_an_unknown_failing_model_cools_nothing_but_still_decides() -> None:
    cooldowns = Cooldowns()
    decision = core(cooldowns).decide(RATE_LIMIT, None, NOW, chain=CHAIN, after=-1, attempts=0)
    assert decision.cooldown is None and list(cooldowns.active(NOW)) == []
    assert decision.choice == Choice(0, "prov/a")
