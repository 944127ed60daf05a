"""What opencode knows about each model: price, context window, and which providers it can call.

Built from the body of opencode's ``GET /provider`` (:func:`catalog_from_providers`), which in
1.18.33 reads::

    {"all": [{"id": "anthropic", "models": {"claude-x": {"id": "claude-x",
              "cost": {"input": 3, "output": 15, "cache": {...}},
              "limit": {"context": 200000, "output": 64000}, ...}, ...}, ...}, ...],
     "default": {"anthropic": "claude-x"},
     "connected": ["anthropic"]}

Costs are USD per million tokens. A model a config defines without a price or limit is listed
with cost 0 and context 0 (measured with the fake provider): a context of 0 is read as unknown;
a cost of 0 is kept, and :meth:`Catalog.cost_ratio` never divides by it.

Pure: no I/O, no clock. The deciders (:mod:`baton.fallback`, :mod:`baton.tasks`) take a
:class:`Catalog` as a value; :data:`EMPTY_CATALOG` knows nothing and so never blocks anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from baton.models import model_key, split_model

__all__ = ["EMPTY_CATALOG", "Catalog", "ModelInfo", "catalog_from_providers"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model as opencode lists it; None where opencode gives nothing usable."""

    model: str
    """``provider/model`` as opencode spells it."""
    input_cost: float | None = None
    """USD per million input tokens."""
    output_cost: float | None = None
    """USD per million output tokens."""
    context: int | None = None
    """Context window, in tokens."""


@dataclass(frozen=True)
class Catalog:
    """The models opencode lists, looked up by any spelling :func:`baton.models.same_model` accepts."""

    models: Mapping[str, ModelInfo] = field(default_factory=dict)
    """By :func:`baton.models.model_key` of ``provider/model``."""
    connected: frozenset[str] | None = None
    """Providers opencode can call (``GET /provider``'s ``connected``); None: unknown."""

    def info(self, model: str) -> ModelInfo | None:
        """The model's entry, or None when opencode does not list it (or the catalog is empty)."""
        return self.models.get(model_key(model))

    def knows(self, model: str) -> bool:
        return self.info(model) is not None

    def context(self, model: str) -> int | None:
        """The model's context window in tokens; None when unknown."""
        info = self.info(model)
        return info.context if info is not None else None

    def is_connected(self, model: str) -> bool | None:
        """Whether opencode can call the model's provider; None when the catalog does not say."""
        if self.connected is None:
            return None
        provider = model_key(split_model(model)[0])
        return any(model_key(p) == provider for p in self.connected)

    def cost_ratio(self, candidate: str, reference: str) -> float | None:
        """How many times pricier ``candidate`` is than ``reference``: the larger of the input and
        output price ratios, over the prices known on both sides.

        Choices: both prices 0 is a ratio of 1 (as pricey). A reference price of 0 against a
        candidate price above 0 is left out rather than called infinite: 0 is also what opencode
        lists for a model whose config names no price, so it says nothing reliable. None when no
        pair is left (a model unknown, no prices): an unknown ratio never blocks a fallback.
        """
        cand, ref = self.info(candidate), self.info(reference)
        if cand is None or ref is None:
            return None
        ratios = [r for r in (_ratio(cand.input_cost, ref.input_cost), _ratio(cand.output_cost, ref.output_cost))
                  if r is not None]
        return max(ratios) if ratios else None

    @property
    def model_names(self) -> tuple[str, ...]:
        """Every listed ``provider/model``, as opencode spells it, in listing order."""
        return tuple(info.model for info in self.models.values())


def _ratio(candidate: float | None, reference: float | None) -> float | None:
    if candidate is None or reference is None:
        return None
    if reference == 0:
        return 1.0 if candidate == 0 else None
    return candidate / reference


EMPTY_CATALOG = Catalog()
"""Knows no model and no provider: every lookup says unknown, so nothing is blocked."""


def catalog_from_providers(data: object) -> Catalog:
    """Parse ``GET /provider``'s body. Never raises: an odd or missing field stays unknown."""
    if not isinstance(data, Mapping):
        return EMPTY_CATALOG
    models: dict[str, ModelInfo] = {}
    providers = data.get("all")
    for provider in providers if isinstance(providers, list) else ():
        if not isinstance(provider, Mapping):
            continue
        provider_id = provider.get("id")
        listed = provider.get("models")
        if not isinstance(provider_id, str) or not provider_id.strip() or not isinstance(listed, Mapping):
            continue
        for model_id, entry in listed.items():
            if not isinstance(model_id, str) or not model_id.strip():
                continue
            info = _model_info(f"{provider_id}/{model_id}", entry)
            models.setdefault(model_key(info.model), info)
    connected = data.get("connected")
    names = frozenset(p for p in connected if isinstance(p, str)) if isinstance(connected, list) else None
    return Catalog(models, names)


def _model_info(model: str, entry: object) -> ModelInfo:
    entry = entry if isinstance(entry, Mapping) else {}
    cost = entry.get("cost")
    cost = cost if isinstance(cost, Mapping) else {}
    limit = entry.get("limit")
    limit = limit if isinstance(limit, Mapping) else {}
    context = _number(limit.get("context"))
    return ModelInfo(
        model=model,
        input_cost=_number(cost.get("input")),
        output_cost=_number(cost.get("output")),
        # 0 is what opencode lists when nothing gives a window: no model has one that small.
        context=int(context) if context is not None and context >= 1 else None,
    )


def _number(value: object) -> float | None:
    """A finite, non-negative number (a bool is not one); else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None
