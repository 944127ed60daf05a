"""``baton config check``'s account of the chains (baton/chains.py), in the words the user reads."""

from __future__ import annotations

from pathlib import Path

from policy_sim import make_config

from baton.chains import NamedChain, configured_chains, describe


def test_timeout_zero_is_explained_in_full(tmp_path: Path) -> None:
    """runtime-fallback §9: timeout_seconds 0 turns off the watchdog and retry statuses; the warning
    says both and what it means for a failure opencode retries."""
    lines = describe(make_config(tmp_path, {"runtime_fallback": {"timeout_seconds": 0}}))
    assert ("warning: runtime_fallback.timeout_seconds is 0: no watchdog after a re-send, and retry statuses "
            "are not acted on, so a failure opencode retries waits until it gives up") in lines


def test_every_configured_chain_is_listed_as_it_applies(tmp_path: Path) -> None:
    """``baton config check`` and ``baton doctor`` look at every chain a config names (§2.4): an agent
    that names no model is passed over (its category's entry covers it) and the ones after it still
    count; an agent or category with a model but no chain of its own carries the chain it resolves
    to (its model's ``model_fallbacks``, the category agent's chain); a category that names nothing
    is passed over; every chain carries the spend guard that applies."""
    cfg = make_config(tmp_path, {
        "agents": {"plain": {"category": "quick"}, "build": {"model": "a/m"}, "general": {"fallback_models": ["a/g"]}},
        "categories": {"empty": {}, "quick": {"model": "a/q"}, "deep": {"model": "a/m"}},
        "baton": {"model_fallbacks": {"a/m": ["a/n"]}, "fallback_models": ["a/d"], "max_cost_ratio": 2.0},
    })
    assert configured_chains(cfg) == [
        NamedChain("agents.build", "a/m", ("a/n",), ("a/m",), 'baton.model_fallbacks["a/m"]', 2.0),
        NamedChain("agents.general", None, ("a/g",), ("a/g",), None, 2.0),
        NamedChain("categories.quick", "a/q", ("a/g",), ("a/q",), "agents.general.fallback_models", 2.0),
        NamedChain("categories.deep", "a/m", ("a/g",), ("a/m",), "agents.general.fallback_models", 2.0),
        NamedChain('baton.model_fallbacks["a/m"]', "a/m", ("a/n",), ("a/m", "a/n"), max_cost_ratio=2.0),
        NamedChain("baton.fallback_models", None, ("a/d",), ("a/d",), max_cost_ratio=2.0),
    ]


def test_a_model_with_no_chain_anywhere_inherits_nothing(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, {"agents": {"build": {"model": "a/m"}}})
    assert configured_chains(cfg) == [NamedChain("agents.build", "a/m", (), ("a/m",), None)]


def test_a_category_model_s_own_fallbacks_apply_when_its_agent_has_no_chain(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, {"categories": {"deep": {"model": "a/m"}},
                                 "baton": {"model_fallbacks": {"a/m": ["a/n"]}}})
    assert configured_chains(cfg)[0] == NamedChain("categories.deep", "a/m", ("a/n",), ("a/m",),
                                                   'baton.model_fallbacks["a/m"]')
