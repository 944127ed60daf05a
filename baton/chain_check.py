"""Chain checks before they matter: every model a fallback chain names, against opencode's catalog.

A chain is only tried when its primary fails, which is the worst moment to learn that a model
name has a typo, its provider has no credentials, its window is smaller than the primary's or it
costs several times more. :func:`check_chains` says so up front: at each attach (logged, and in
``/healthz``), in ``baton doctor`` and in ``baton config check --opencode-url``.

Pure: the config and a :class:`~baton.catalog.Catalog` in, findings out. An empty catalog
(opencode not asked) finds nothing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum

from baton.catalog import Catalog
from baton.chains import NamedChain, configured_chains
from baton.models import model_key, same_model, split_model
from baton.settings import Config, number_text

__all__ = ["Finding", "FindingKind", "check_chains", "checked_models"]


class FindingKind(StrEnum):
    UNKNOWN_MODEL = "unknown-model"
    """opencode does not list the model: a typo, or a provider opencode was not configured with."""
    NOT_CONNECTED = "not-connected"
    """opencode lists the model but has no credentials for its provider."""
    SMALLER_CONTEXT = "smaller-context"
    """A fallback with a smaller context window than the chain's primary."""
    PRICIER = "pricier"
    """A fallback that costs more per token than the chain's primary."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem with one model of one chain; ``text`` is one line that says what to do."""

    owner: str
    model: str
    kind: FindingKind
    text: str


def checked_models(config: Config) -> tuple[str, ...]:
    """Every model the config's chains name (primaries included), once each, in config order."""
    seen: dict[str, str] = {}
    for chain in configured_chains(config):
        for model in chain.named:
            seen.setdefault(model_key(model), model)
    return tuple(seen.values())


def check_chains(config: Config, catalog: Catalog) -> list[Finding]:
    """The findings for every chain of ``config``, in config order (chain, then model, then kind).

    The models written under an owner are checked for existence and a connected provider; the
    fallbacks it uses (its own or inherited) are compared with its primary's window and price.
    """
    kinds = list(FindingKind)
    findings: list[Finding] = []
    for chain in configured_chains(config):
        order: dict[str, int] = {}
        for model in (*chain.named, *chain.fallbacks):
            order.setdefault(model_key(model), len(order))
        found: dict[tuple[str, FindingKind], Finding] = {}
        for finding in [*_existence(chain, catalog), *_comparisons(chain, catalog)]:
            found.setdefault((model_key(finding.model), finding.kind), finding)
        findings += sorted(found.values(), key=lambda f: (order[model_key(f.model)], kinds.index(f.kind)))
    return findings


def _existence(chain: NamedChain, catalog: Catalog) -> list[Finding]:
    findings = []
    for model in chain.named:
        if catalog.models and not catalog.knows(model):
            findings.append(Finding(chain.owner, model, FindingKind.UNKNOWN_MODEL,
                                    _unknown_text(chain.owner, model, catalog)))
        elif catalog.knows(model) and catalog.is_connected(model) is False:
            provider = split_model(model)[0]
            findings.append(Finding(
                chain.owner, model, FindingKind.NOT_CONNECTED,
                f"{chain.owner}: {model}: opencode has no credentials for provider {provider}; run "
                f"`opencode auth login` and pick {provider}, or drop the model from the chain"))
    return findings


def _unknown_text(owner: str, model: str, catalog: Catalog) -> str:
    provider = split_model(model)[0]
    names = {model_key(name): name for name in catalog.model_names}
    close = difflib.get_close_matches(model_key(model), list(names), n=1, cutoff=0.75)
    hint = f" (did you mean {names[close[0]]}?)" if close else ""
    providers = {model_key(split_model(name)[0]) for name in catalog.model_names}
    if model_key(provider) not in providers:
        return (f"{owner}: {model} is not a model opencode knows: it lists no provider {provider}{hint}; "
                "fix the name, or configure the provider in opencode")
    return (f"{owner}: {model} is not a model opencode knows{hint}; fix the name "
            f"(`opencode models {provider}` lists the provider's models)")


def _comparisons(chain: NamedChain, catalog: Catalog) -> list[Finding]:
    primary = chain.primary
    if primary is None or not catalog.knows(primary):
        return []
    via = f" (chain from {chain.inherited})" if chain.inherited else ""
    findings = []
    primary_context = catalog.context(primary)
    for model in chain.fallbacks:
        if same_model(model, primary):
            continue
        context = catalog.context(model)
        if context is not None and primary_context is not None and context < primary_context:
            findings.append(Finding(
                chain.owner, model, FindingKind.SMALLER_CONTEXT,
                f"{chain.owner}: {model} has a {context:,}-token context window, smaller than {primary}'s "
                f"{primary_context:,}{via}: a long session moved to it can overflow; put it later in the "
                "chain or choose a model with a larger window"))
        ratio = catalog.cost_ratio(model, primary)
        if ratio is not None and ratio > 1:
            findings.append(Finding(chain.owner, model, FindingKind.PRICIER,
                                    _pricier_text(chain, model, primary, ratio, via)))
    return findings


def _pricier_text(chain: NamedChain, model: str, primary: str, ratio: float, via: str) -> str:
    head = f"{chain.owner}: {model} costs {ratio:.3g}x what {primary} costs per token{via}"
    guard, key = chain.max_cost_ratio, chain.cost_ratio_key
    if guard is None:
        return f"{head}; set {key} to skip fallbacks pricier than a ratio you choose, or accept the cost"
    if ratio > guard:
        return f"{head}; the spend guard ({key} = {number_text(guard)}) will skip it: raise it to allow it"
    return f"{head}; {key} = {number_text(guard)} allows it: lower it to skip this model"
