"""opencode's model catalog (``baton.catalog``): parsed from a real ``GET /provider`` body, looked
up by any spelling, never raising on odd input, and the cost ratio the spend guard will use."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from baton.catalog import EMPTY_CATALOG, Catalog, ModelInfo, catalog_from_providers

RECORDED = Path(__file__).parents[1] / "data" / "provider" / "get_provider.json"


def recorded() -> Any:
    return json.loads(RECORDED.read_text(encoding="utf-8"))


def catalog_of(*models: ModelInfo, connected: frozenset[str] | None = None) -> Catalog:
    return catalog_from_providers({
        "all": [{"id": m.model.split("/")[0], "models": {m.model.split("/", 1)[1]: {
            "cost": {"input": m.input_cost, "output": m.output_cost}, "limit": {"context": m.context}}}}
            for m in models],
        "connected": sorted(connected) if connected is not None else None,
    })


def test_recorded_body_gives_prices_windows_and_connected_providers() -> None:
    """The real 1.18.33 body: priced models carry their price and window, connected is the list."""
    catalog = catalog_from_providers(recorded())
    assert catalog.info("fake/backup") == ModelInfo("fake/backup", 3.0, 15.0, 200_000)
    assert catalog.info("fake/third") == ModelInfo("fake/third", 0.5, 40.0, 32_000)
    assert catalog.info("anthropic/claude-sonnet-4-6") == ModelInfo("anthropic/claude-sonnet-4-6", 3.0, 15.0, 1_000_000)
    assert catalog.connected == frozenset({"fake", "nokey"})
    assert catalog.is_connected("fake/primary") is True
    assert catalog.is_connected("anthropic/claude-sonnet-4-6") is False
    assert len(catalog.model_names) == 18 + 3 + 1


def test_a_model_without_price_or_window_keeps_cost_zero_and_an_unknown_window() -> None:
    """opencode lists 0 for both when the config gives none: a 0-token window is no window."""
    info = catalog_from_providers(recorded()).info("fake/primary")
    assert info == ModelInfo("fake/primary", 0.0, 0.0, None)


@pytest.mark.parametrize("spelling", ["fake/backup", "FAKE/Backup", " fake/backup ", "Anthropic/Claude-Sonnet-4.6"])
def test_lookup_accepts_the_spellings_same_model_accepts(spelling: str) -> None:
    catalog = catalog_from_providers(recorded())
    assert catalog.knows(spelling)
    assert catalog.context(spelling) is not None


def test_unknown_models_are_unknown() -> None:
    catalog = catalog_from_providers(recorded())
    assert not catalog.knows("fake/primray")
    assert catalog.info("nosuch/model") is None
    assert catalog.context("nosuch/model") is None
    assert catalog.cost_ratio("nosuch/model", "fake/backup") is None
    assert catalog.cost_ratio("fake/backup", "nosuch/model") is None


def test_the_empty_catalog_knows_nothing_and_blocks_nothing() -> None:
    assert not EMPTY_CATALOG.knows("fake/primary")
    assert EMPTY_CATALOG.context("fake/primary") is None
    assert EMPTY_CATALOG.cost_ratio("a/b", "c/d") is None
    assert EMPTY_CATALOG.is_connected("a/b") is None


@pytest.mark.parametrize("body", [
    None, 3, "text", [], {}, {"all": "x"}, {"all": [None, 3, "p", {"id": 5, "models": {}}, {"id": "p"}]},
    {"all": [{"id": "p", "models": {"m": None, "": {}, "n": {"cost": "x", "limit": [1]}}}]},
    {"all": [{"id": "p", "models": {"m": {"cost": {"input": True, "output": "3"}, "limit": {"context": -1}}}}]},
    {"all": [{"id": "p", "models": {"m": {"cost": {"input": math.nan, "output": math.inf},
                                          "limit": {"context": 1e400}}}}]},
    {"connected": "fake"}, {"connected": [1, None, "ok"]},
])
def test_odd_bodies_never_raise_and_odd_fields_stay_unknown(body: object) -> None:
    catalog = catalog_from_providers(body)
    for info in catalog.models.values():
        assert info.input_cost is None and info.output_cost is None and info.context is None
    assert catalog.connected in (None, frozenset({"ok"}))


def test_missing_connected_is_unknown_not_empty() -> None:
    """No ``connected`` list: every provider may be connected (None), never "none is"."""
    catalog = catalog_from_providers({"all": [{"id": "p", "models": {"m": {}}}]})
    assert catalog.knows("p/m") and catalog.connected is None and catalog.is_connected("p/m") is None


def test_the_first_of_two_spellings_of_one_model_wins() -> None:
    catalog = catalog_from_providers({"all": [{"id": "p", "models": {
        "m-1": {"limit": {"context": 10}}, "M.1": {"limit": {"context": 20}}}}]})
    assert catalog.context("p/m.1") == 10 and catalog.model_names == ("p/m-1",)


def test_cost_ratio_is_the_larger_of_the_input_and_output_ratios() -> None:
    catalog = catalog_from_providers(recorded())
    # third: input 0.5 / 3 = 0.17, output 40 / 15 = 2.67 -> 2.67: pricier on what it writes.
    assert catalog.cost_ratio("fake/third", "fake/backup") == pytest.approx(40 / 15)
    # backup against third: input 6x, output 0.375x -> 6.
    assert catalog.cost_ratio("fake/backup", "fake/third") == pytest.approx(6.0)
    assert catalog.cost_ratio("anthropic/claude-opus-4-7", "anthropic/claude-sonnet-4-6") == pytest.approx(5 / 3)


def test_cost_ratio_uses_only_the_prices_known_on_both_sides() -> None:
    catalog = catalog_of(ModelInfo("p/a", None, 30.0, None), ModelInfo("p/b", 1.0, 10.0, None),
                         ModelInfo("p/c", 5.0, None, None))
    assert catalog.cost_ratio("p/a", "p/b") == pytest.approx(3.0)   # output only
    assert catalog.cost_ratio("p/c", "p/b") == pytest.approx(5.0)   # input only
    assert catalog.cost_ratio("p/a", "p/c") is None                 # no pair known on both sides


def test_cost_ratio_against_a_free_reference() -> None:
    """Both 0: as pricey (1). Reference 0, candidate priced: that pair says nothing (0 is also an
    unpriced config model), so it is left out; with nothing left the ratio is unknown."""
    catalog = catalog_from_providers(recorded())
    assert catalog.cost_ratio("nokey/lonely", "fake/primary") == 1.0
    assert catalog.cost_ratio("fake/backup", "fake/primary") is None
    assert catalog.cost_ratio("fake/primary", "fake/backup") == 0.0
    mixed = catalog_of(ModelInfo("p/free-in", 0.0, 10.0, None), ModelInfo("p/x", 2.0, 20.0, None))
    assert mixed.cost_ratio("p/x", "p/free-in") == pytest.approx(2.0)
