"""A context overflow with ``baton.on_context_overflow: "larger-model"`` (runtime-fallback §6.10 rule 7).

The session moves to the next chain model (after its place in the chain) whose context window is
larger than the failing model's and than the session, that is not cooling, whose provider opencode
has connected and that the spend guard allows; the failing model does not cool. With none, the
journal says so (``no_fallback``). Written against the mutants mutation testing left alive in
``Signals._larger_model`` (``scripts/mutation.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_sim import T0, Sim, make_config, notes, resends

from baton.actions import Action, SaveIntent
from baton.catalog import Catalog, ModelInfo
from baton.cooldowns import Cooldowns
from baton.events import AssistantMessage, CatalogSeen, SessionCreated
from baton.models import model_key

S = "ses_1"
PRIMARY, BACKUP, THIRD, FOURTH = "fake/primary", "fake/backup", "fake/third", "fake/fourth"
OVERFLOW = "prompt is too long: 140000 tokens > 128000 maximum"
LARGER = {"on_context_overflow": "larger-model"}


def sim(tmp_path: Path, chain: list[str], baton: dict[str, Any] | None = None,
        cooldowns: Cooldowns | None = None) -> Sim:
    settings = {"agents": {"build": {"fallback_models": chain}}, "baton": {**LARGER, **(baton or {})}}
    s = Sim(make_config(tmp_path, settings), cooldowns)
    s.feed(SessionCreated(S, None, "/work/project"))
    return s


def window(model: str, tokens: int, price: float = 1.0) -> ModelInfo:
    return ModelInfo(model, price, 4 * price, tokens)


def catalog(s: Sim, *models: ModelInfo, connected: tuple[str, ...] | None = None) -> None:
    s.feed(CatalogSeen(Catalog({model_key(m.model): m for m in models},
                               frozenset(connected) if connected is not None else None)))


def overflow(s: Sim, model: str = PRIMARY) -> list[Action]:
    s.start_turn(S, model=model)
    return s.error(S, OVERFLOW, 400)


def chosen(out: list[Action]) -> list[str]:
    return [r.model for r in resends(out)]


def test_the_first_chain_model_with_a_larger_window_is_taken_and_the_switch_says_why(tmp_path: Path) -> None:
    s = sim(tmp_path, [BACKUP, THIRD])
    catalog(s, window(PRIMARY, 128_000), window(BACKUP, 200_000), window(THIRD, 400_000))
    out = overflow(s)
    assert chosen(out) == [BACKUP]
    (switch,) = notes(out, "switch")
    assert switch.text == (f"{PRIMARY} failed (context overflow (128,000 tokens); {BACKUP} holds 200,000); "
                           f"switching to {BACKUP}")
    assert notes(out, "not_retryable") == [] and notes(out, "no_fallback") == []
    (save,) = [a for a in out if isinstance(a, SaveIntent)]
    assert save.intent.index == 0  # the backup's place in the chain, as a restart would resume it
    s.result(S, resends(out)[0].token)
    fb = s.policy.sessions[S].fb
    assert fb is not None and (fb.current, fb.index, fb.attempts) == (BACKUP, 0, 1)
    assert not s.policy.cooldowns.is_cooling(PRIMARY, s.now)


def test_the_window_must_hold_the_session_not_only_beat_the_failing_model(tmp_path: Path) -> None:
    """A session already larger than the failing model's window needs a window larger than itself."""
    s = sim(tmp_path, [BACKUP, THIRD])
    catalog(s, window(PRIMARY, 128_000), window(BACKUP, 200_000), window(THIRD, 400_000))
    s.start_turn(S, model=PRIMARY)
    s.feed(AssistantMessage(S, "msg_u1_a1", "msg_u1", PRIMARY, "build", tokens=250_000))
    assert chosen(s.error(S, OVERFLOW, 400)) == [THIRD]


def test_a_larger_model_that_is_cooling_is_passed_over(tmp_path: Path) -> None:
    s = sim(tmp_path, [BACKUP, THIRD], cooldowns=Cooldowns([(BACKUP, T0 + 600)]))
    catalog(s, window(PRIMARY, 128_000), window(BACKUP, 200_000), window(THIRD, 400_000))
    assert chosen(overflow(s)) == [THIRD]


def test_a_larger_model_opencode_has_not_connected_is_passed_over(tmp_path: Path) -> None:
    s = sim(tmp_path, ["other/backup", THIRD])
    catalog(s, window(PRIMARY, 128_000), window("other/backup", 1_000_000), window(THIRD, 400_000),
            connected=("fake",))
    assert chosen(overflow(s)) == [THIRD]


def test_a_larger_model_the_spend_guard_refuses_is_passed_over(tmp_path: Path) -> None:
    """The price is compared with the failing model's: five times the primary is above a ratio of 2."""
    s = sim(tmp_path, [BACKUP, THIRD], {"max_cost_ratio": 2.0})
    catalog(s, window(PRIMARY, 128_000), window(BACKUP, 1_000_000, price=5.0), window(THIRD, 400_000))
    assert chosen(overflow(s)) == [THIRD]


def test_the_search_starts_after_the_session_s_place_in_the_chain(tmp_path: Path) -> None:
    """On the third model (index 1), an overflow looks at the fourth only: the backup, earlier in
    the chain, is not gone back to even with the largest window and its cooldown over."""
    s = sim(tmp_path, [BACKUP, THIRD, FOURTH], cooldowns=Cooldowns([(BACKUP, T0 + 30)]))
    catalog(s, window(PRIMARY, 128_000), window(BACKUP, 1_000_000), window(THIRD, 200_000),
            window(FOURTH, 400_000))
    s.start_turn(S, model=PRIMARY)
    (first,) = resends(s.error(S, "Too many requests", 429))
    assert first.model == THIRD
    s.result(S, first.token)
    s.advance(61)
    s.assistant(S, "msg_t1", "msg_u1", THIRD)
    out = s.error(S, "prompt is too long: 210000 tokens > 200000 maximum", 400)
    assert chosen(out) == [FOURTH]


def test_with_no_larger_window_in_the_chain_the_journal_says_so(tmp_path: Path) -> None:
    s = sim(tmp_path, [BACKUP, THIRD])
    catalog(s, window(PRIMARY, 128_000), window(BACKUP, 128_000), window(THIRD, 64_000))
    out = overflow(s)
    assert resends(out) == [] and notes(out, "not_retryable") == []
    (note,) = notes(out, "no_fallback")
    assert (note.session_id, note.text, note.data) == (
        S, f"{PRIMARY} overflowed its context and no chain model has a larger window", {"model": PRIMARY})


def test_an_overflow_of_a_model_whose_window_is_unknown_is_not_retryable(tmp_path: Path) -> None:
    """Without the failing model's window nothing says which model is larger: as with the option off."""
    s = sim(tmp_path, [BACKUP, THIRD])
    catalog(s, window(BACKUP, 200_000), window(THIRD, 400_000))
    out = overflow(s)
    assert resends(out) == [] and notes(out, "not_retryable")
