"""Which fallback chain applies: agent names to config keys, and chain resolution (spec §2.4, §2.5).

Kept apart from loading (:mod:`baton.config`): these run on the engine's path for every new
turn, so the agent-name index is built once per config and cached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from baton.settings import AgentConfig, Config, key_path, number_text

__all__ = [
    "NamedChain", "ResolvedChain", "agent_key_for", "agent_primary_model", "configured_chains", "describe",
    "resolve_chain",
]

_AGENT_CACHE_LIMIT = 1024


@dataclass
class _AgentMemo:
    """Name index and lookups for one config's ``agents`` map, built on first use."""

    agents: Mapping[str, AgentConfig]
    by_lower: dict[str, str]
    pattern: re.Pattern[str] | None
    cache: dict[str, str | None]


def agent_key_for(config: Config, raw_agent: str | None) -> str | None:
    """The ``agents`` key a raw agent name maps to (spec §2.5 rule 2); cached per config."""
    if raw_agent is None:
        return None
    memo: _AgentMemo | None = config._agent_memo
    if memo is None:  # a copy (dataclasses.replace) starts without one: init=False fields are not copied
        memo = _index_agents(config.agents)
        object.__setattr__(config, "_agent_memo", memo)  # a cache on a frozen Config, not a setting
    if raw_agent not in memo.cache:
        if len(memo.cache) >= _AGENT_CACHE_LIMIT:
            memo.cache.clear()
        memo.cache[raw_agent] = _match_agent(memo, raw_agent)
    return memo.cache[raw_agent]


def _index_agents(agents: Mapping[str, AgentConfig]) -> _AgentMemo:
    by_lower: dict[str, str] = {}
    for name in sorted(agents):
        by_lower.setdefault(name.strip().lower(), name)
    names = sorted((n for n in by_lower if n), key=len, reverse=True)
    # Lookarounds give \b semantics ("-" separates words, "_" does not) and also behave for
    # names that begin or end with a non-word character. At one position the regex takes the
    # first alternative that matches, hence longest names first.
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)") if names else None
    return _AgentMemo(agents, by_lower, pattern, {})


def _match_agent(memo: _AgentMemo, raw: str) -> str | None:
    """Exact key, else trimmed lower-case equality, else the leftmost word-bounded name."""
    if raw in memo.agents:
        return raw
    lowered = raw.strip().lower()
    if not lowered:
        return None
    if lowered in memo.by_lower:
        return memo.by_lower[lowered]
    found = memo.pattern.search(lowered) if memo.pattern is not None else None
    return memo.by_lower[found.group(0)] if found else None


@dataclass(frozen=True, slots=True)
class ResolvedChain:
    """A session's fallback chain and the config key it came from (for the journal and CLI)."""

    models: tuple[str, ...]
    source: str


def _category_chain(config: Config, name: str | None) -> ResolvedChain | None:
    """A disabled category is unknown (background-tasks §3.2), so it lends no chain."""
    category = config.categories.get(name) if name is not None else None
    if name is None or category is None or category.disable or (chain := category.chain) is None:
        return None
    return ResolvedChain(chain[0], key_path(("categories", name, chain[1])))


def resolve_chain(
    config: Config, *, agent_key: str | None, category: str | None, model: str | None
) -> ResolvedChain:
    """The first rule of spec §2.4 that yields a list wins; ``[]`` is a list (an opt-out)."""
    if found := _category_chain(config, category):
        return found
    agent = config.agents.get(agent_key) if agent_key is not None else None
    if agent is not None and agent_key is not None:
        if (chain := agent.chain) is not None:
            return ResolvedChain(chain[0], key_path(("agents", agent_key, chain[1])))
        if found := _category_chain(config, agent.category):
            via = key_path(("agents", agent_key, "category"))
            return ResolvedChain(found.models, f"{found.source} via {via}")
    if model is not None and (per_model := config.baton.model_fallbacks.get(model)) is not None:
        return ResolvedChain(per_model, key_path(("baton", "model_fallbacks", model)))
    if config.baton.fallback_models is not None:
        return ResolvedChain(config.baton.fallback_models, "baton.fallback_models")
    return ResolvedChain((), "none")


def agent_primary_model(config: Config, agent_key: str | None) -> str | None:
    """The agent's configured model (``model`` or ``models[0]``), else its category's."""
    agent = config.agents.get(agent_key) if agent_key is not None else None
    if agent is None:
        return None
    category = config.categories.get(agent.category) if agent.category is not None else None
    return agent.primary_model or (category.primary_model if category is not None else None)



# Reporting


@dataclass(frozen=True, slots=True)
class NamedChain:
    """One owner's chain as it applies, for checks that look at every model a config names."""

    owner: str
    """Who it is for: ``agents.build``, ``categories.quick``, ``baton.fallback_models``, ..."""
    primary: str | None
    """The model it falls back from (the agent's or category's model, the ``model_fallbacks`` key);
    None when the config names none (``baton.fallback_models`` covers any model)."""
    fallbacks: tuple[str, ...]
    """The models after the primary, in order."""
    named: tuple[str, ...] = ()
    """The models written under ``owner`` itself (its model and its own chain), in order."""
    inherited: str | None = None
    """Where ``fallbacks`` are written when not under ``owner`` (``baton.fallback_models``, ...)."""
    max_cost_ratio: float | None = None
    """The spend guard that applies (an agent's own, else ``baton.max_cost_ratio``); None: off."""
    cost_ratio_key: str = "baton.max_cost_ratio"
    """Where that guard is set, or would be."""


def configured_chains(config: Config) -> list[NamedChain]:
    """Every chain the config names, in config order: agents and enabled categories that name a
    model or a chain, ``baton.model_fallbacks``, then ``baton.fallback_models``. An agent or
    category with a model but no chain of its own carries the chain it resolves to (spec §2.4)."""
    guard = config.baton.max_cost_ratio
    chains: list[NamedChain] = []
    for name, agent in config.agents.items():
        if agent.chain is None and agent.primary_model is None:
            continue  # names no model: what it uses is its category's entry
        owner = key_path(("agents", name))
        primary = agent_primary_model(config, name)
        resolved = resolve_chain(config, agent_key=name, category=None, model=primary)
        inherited = _inherited(resolved, owner)
        own = agent.max_cost_ratio is not None
        chains.append(NamedChain(
            owner, primary, resolved.models, _named(agent.primary_model, resolved, inherited), inherited,
            config.max_cost_ratio_for(name), f"{owner}.max_cost_ratio" if own else "baton.max_cost_ratio"))
    for name, category in config.categories.items():
        if category.disable or (category.chain is None and category.primary_model is None):
            continue
        owner = key_path(("categories", name))
        # A category task runs as baton.category_agent, so that agent's chain is its second choice.
        resolved = resolve_chain(config, agent_key=config.baton.category_agent, category=name,
                                 model=category.primary_model)
        inherited = _inherited(resolved, owner)
        chains.append(NamedChain(owner, category.primary_model, resolved.models,
                                 _named(category.primary_model, resolved, inherited), inherited, guard))
    for model, fallbacks in config.baton.model_fallbacks.items():
        chain = fallbacks or ()
        chains.append(NamedChain(key_path(("baton", "model_fallbacks", model)), model, chain, (model, *chain),
                                 max_cost_ratio=guard))
    if config.baton.fallback_models is not None:
        chain = config.baton.fallback_models
        chains.append(NamedChain("baton.fallback_models", None, chain, chain, max_cost_ratio=guard))
    return chains


def _named(primary: str | None, resolved: ResolvedChain, inherited: str | None) -> tuple[str, ...]:
    own = () if inherited is not None else resolved.models
    return (primary, *own) if primary is not None else own


def _inherited(resolved: ResolvedChain, owner: str) -> str | None:
    """None when the chain is written under ``owner`` itself, else where it is written."""
    if resolved.source == "none" or resolved.source.startswith(owner + "."):
        return None
    return resolved.source


def describe(config: Config) -> list[str]:
    """Lines for ``baton config check``: sources, warnings, settings and every resolved chain."""
    lines = [f"source: {path}" for path in config.sources] or ["source: none (built-in defaults)"]
    lines += [f"warning: {warning}" for warning in config.warnings]
    rf = config.runtime_fallback
    lines.append(
        f"runtime_fallback: enabled={_flag(rf.enabled)} retry_on_errors={list(rf.retry_on_errors)} "
        f"max_fallback_attempts={rf.max_fallback_attempts} "
        f"cooldown_seconds={number_text(rf.cooldown_seconds)} "
        f"timeout_seconds={number_text(rf.timeout_seconds)} notify_on_fallback={_flag(rf.notify_on_fallback)}"
    )
    if rf.timeout_seconds == 0:
        lines.append("warning: runtime_fallback.timeout_seconds is 0: no watchdog after a re-send, and retry "
                     "statuses are not acted on, so a failure opencode retries waits until it gives up")
    rows = [(key_path(("agents", name)), resolve_chain(
        config, agent_key=name, category=None, model=agent_primary_model(config, name)))
        for name in config.agents]
    # A category task runs as baton.category_agent, so that agent's chain is its second choice.
    rows += [(key_path(("categories", name)), resolve_chain(
        config, agent_key=config.baton.category_agent, category=name, model=category.primary_model))
        for name, category in config.categories.items() if not category.disable]
    rows += [(f"model {model}", resolve_chain(config, agent_key=None, category=None, model=model))
             for model in config.baton.model_fallbacks]
    rows.append(("default", resolve_chain(config, agent_key=None, category=None, model=None)))
    return lines + [f"chain {label}: {_chain_text(chain)}" for label, chain in rows]


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _chain_text(chain: ResolvedChain) -> str:
    if chain.models:
        return " -> ".join(chain.models) + f" (from {chain.source})"
    return "no fallback" + ("" if chain.source == "none" else f" (empty list at {chain.source})")
