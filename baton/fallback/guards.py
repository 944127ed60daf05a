"""The spend and context guards: chain models a fallback must not take (runtime-fallback §6.10 rule 6).

A fallback that quietly moves a session to a pricier model, or to one whose context window
cannot hold the conversation, costs the user money or the turn. opencode's provider list gives
each model's cost per million tokens and its context window (:mod:`baton.catalog`); the
session's newest assistant message gives its size in tokens. A chain model is refused when:

* its cost is more than ``max_cost_ratio`` times the failing model's (``baton.max_cost_ratio``,
  or the agent's own ``max_cost_ratio``; off by default);
* its context window is smaller than the session already is.

Unknown costs and unknown windows never refuse: a guard only acts on what opencode said.
"""

from __future__ import annotations

from dataclasses import dataclass

from baton.catalog import EMPTY_CATALOG, Catalog

__all__ = ["NO_GUARD", "Guard", "Refusal"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a guard refused a model: ``text`` for the journal, ``brief`` for a toast."""

    model: str
    text: str
    brief: str


@dataclass(frozen=True, slots=True)
class Guard:
    """What a chain walk checks each candidate against, besides cooldowns and connected providers."""

    catalog: Catalog = EMPTY_CATALOG
    max_cost_ratio: float | None = None
    reference: str | None = None
    """The model a candidate's cost is compared with: the one failing."""
    context_tokens: int | None = None
    """The session's size now, in tokens; None: unknown."""

    def refusal(self, model: str) -> Refusal | None:
        """Why ``model`` may not be taken; None when it may."""
        if self.max_cost_ratio is not None and self.reference is not None:
            ratio = self.catalog.cost_ratio(model, self.reference)
            if ratio is not None and ratio > self.max_cost_ratio:
                return Refusal(model, f"{model} costs {ratio:.2g}x {self.reference}, above max_cost_ratio "
                               f"{self.max_cost_ratio:g}", "pricier")
        if self.context_tokens:
            window = self.catalog.context(model)
            if window is not None and window < self.context_tokens:
                return Refusal(model, f"{model}'s context window ({window:,} tokens) cannot hold the session "
                               f"({self.context_tokens:,} tokens)", "window too small")
        return None


NO_GUARD = Guard()
"""Refuses nothing."""
