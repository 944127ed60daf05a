"""Chain checks (``baton.chain_check``): every model a chain names against opencode's catalog,
one finding per problem, each a line that says what to do, in config order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from baton.catalog import EMPTY_CATALOG, Catalog, catalog_from_providers
from baton.chain_check import Finding, FindingKind, check_chains, checked_models
from baton.chains import NamedChain, configured_chains
from baton.settings import Config

RECORDED = Path(__file__).parents[1] / "data" / "provider" / "get_provider.json"
# In the recorded body: fake/primary (no price, no window), fake/backup (3/15 $, 200k),
# fake/third (0.5/40 $, 32k), nokey/lonely, and anthropic/* listed but not connected.


@pytest.fixture(name="catalog", scope="module")
def _catalog() -> Catalog:
    return catalog_from_providers(json.loads(RECORDED.read_text(encoding="utf-8")))


def config(data: dict[str, Any]) -> Config:
    return Config.model_validate(data)


def kinds(findings: list[Finding]) -> list[tuple[str, str, FindingKind]]:
    return [(f.owner, f.model, f.kind) for f in findings]


def test_a_clean_chain_finds_nothing() -> None:
    """Known, connected, as large and no pricier: nothing to say (each check has its own test)."""
    catalog = catalog_from_providers({"all": [{"id": "p", "models": {
        "big": {"cost": {"input": 3, "output": 15}, "limit": {"context": 200_000}},
        "same": {"cost": {"input": 3, "output": 15}, "limit": {"context": 200_000}},
        "cheap": {"cost": {"input": 1, "output": 5}, "limit": {"context": 400_000}}}}], "connected": ["p"]})
    cfg = config({"agents": {"build": {"model": "p/big", "fallback_models": ["p/same", "P/Cheap"]}}})
    assert check_chains(cfg, catalog) == []
    assert checked_models(cfg) == ("p/big", "p/same", "P/Cheap")


def test_an_unknown_model_is_named_with_the_closest_known_one(catalog: Catalog) -> None:
    cfg = config({"agents": {"build": {"model": "fake/backup", "fallback_models": ["fake/primray"]}}})
    [finding] = check_chains(cfg, catalog)
    assert (finding.owner, finding.model, finding.kind) == ("agents.build", "fake/primray", FindingKind.UNKNOWN_MODEL)
    assert "did you mean fake/primary?" in finding.text
    assert finding.text.startswith("agents.build: fake/primray") and "\n" not in finding.text


def test_an_unknown_model_far_from_any_gets_no_suggestion(catalog: Catalog) -> None:
    cfg = config({"baton": {"fallback_models": ["fake/zzzzzzzzzzzz"]}})
    [finding] = check_chains(cfg, catalog)
    assert finding.kind is FindingKind.UNKNOWN_MODEL and "did you mean" not in finding.text
    assert "`opencode models fake`" in finding.text


def test_an_unknown_provider_is_said_so(catalog: Catalog) -> None:
    cfg = config({"baton": {"fallback_models": ["openai/gpt-9"]}})
    [finding] = check_chains(cfg, catalog)
    assert finding.kind is FindingKind.UNKNOWN_MODEL
    assert "lists no provider openai" in finding.text and finding.owner == "baton.fallback_models"


def test_a_model_of_an_unconnected_provider_says_to_log_in(catalog: Catalog) -> None:
    cfg = config({"categories": {"quick": {"model": "fake/backup", "fallback_models": ["anthropic/claude-haiku-4-5"]}}})
    [finding] = check_chains(cfg, catalog)
    assert kinds([finding]) == [("categories.quick", "anthropic/claude-haiku-4-5", FindingKind.NOT_CONNECTED)]
    assert "`opencode auth login`" in finding.text and "anthropic" in finding.text


def test_a_smaller_window_than_the_primary_is_flagged(catalog: Catalog) -> None:
    cfg = config({"agents": {"build": {"model": "fake/backup", "fallback_models": ["fake/third"]}}})
    found = [f for f in check_chains(cfg, catalog) if f.kind is FindingKind.SMALLER_CONTEXT]
    assert kinds(found) == [("agents.build", "fake/third", FindingKind.SMALLER_CONTEXT)]
    assert "32,000" in found[0].text and "200,000" in found[0].text


def test_a_larger_or_unknown_window_is_not_flagged(catalog: Catalog) -> None:
    # third -> backup is larger; primary has no known window either way.
    cfg = config({"agents": {"a": {"model": "fake/third", "fallback_models": ["fake/backup"]},
                             "b": {"model": "fake/primary", "fallback_models": ["fake/third"]},
                             "c": {"model": "fake/third", "fallback_models": ["fake/primary"]}}})
    assert [f for f in check_chains(cfg, catalog) if f.kind is FindingKind.SMALLER_CONTEXT] == []


def test_a_pricier_fallback_says_the_ratio_and_the_spend_guard(catalog: Catalog) -> None:
    cfg = config({"agents": {"build": {"model": "fake/third", "fallback_models": ["fake/backup"]}}})
    [finding] = check_chains(cfg, catalog)
    assert kinds([finding]) == [("agents.build", "fake/backup", FindingKind.PRICIER)]
    assert "6x" in finding.text and "set baton.max_cost_ratio" in finding.text


@pytest.mark.parametrize(("guard", "says"), [
    ({"baton": {"max_cost_ratio": 2.0}}, "(baton.max_cost_ratio = 2) will skip it"),
    ({"baton": {"max_cost_ratio": 10.0}}, "baton.max_cost_ratio = 10 allows it"),
])
def test_the_pricier_line_reads_the_configured_guard(catalog: Catalog, guard: dict[str, Any], says: str) -> None:
    cfg = config({"agents": {"build": {"model": "fake/third", "fallback_models": ["fake/backup"]}}, **guard})
    [finding] = check_chains(cfg, catalog)
    assert says in finding.text


def test_an_agent_s_own_guard_is_the_one_named(catalog: Catalog) -> None:
    cfg = config({"agents": {"build": {"model": "fake/third", "fallback_models": ["fake/backup"],
                                       "max_cost_ratio": 1.5}}, "baton": {"max_cost_ratio": 10.0}})
    [finding] = check_chains(cfg, catalog)
    assert "(agents.build.max_cost_ratio = 1.5) will skip it" in finding.text


def test_cheaper_or_unpriced_fallbacks_are_not_pricier(catalog: Catalog) -> None:
    cfg = config({"agents": {"a": {"model": "fake/backup", "fallback_models": ["fake/primary"]},
                             "b": {"model": "fake/primary", "fallback_models": ["nokey/lonely"]}}})
    assert [f for f in check_chains(cfg, catalog) if f.kind is FindingKind.PRICIER] == []


def test_one_model_can_have_several_findings_in_kind_order(catalog: Catalog) -> None:
    """backup -> third: smaller window and pricier (output 40 vs 15)."""
    cfg = config({"agents": {"build": {"model": "fake/backup", "fallback_models": ["fake/third"]}}})
    assert [f.kind for f in check_chains(cfg, catalog)] == [FindingKind.SMALLER_CONTEXT, FindingKind.PRICIER]


def test_every_owner_is_checked_in_config_order(catalog: Catalog) -> None:
    cfg = config({
        "agents": {"zeta": {"model": "x/one"}, "alpha": {"models": ["fake/backup", "x/two"]},
                   "bare": {"category": "quick"}},
        "categories": {"quick": {"model": "x/three"}, "off": {"model": "x/four", "disable": True}},
        "baton": {"model_fallbacks": {"x/five": ["x/six"]}, "fallback_models": ["x/seven"]},
    })
    assert [(f.owner, f.model) for f in check_chains(cfg, catalog)] == [
        ("agents.zeta", "x/one"), ("agents.alpha", "x/two"), ("categories.quick", "x/three"),
        ('baton.model_fallbacks["x/five"]', "x/five"), ('baton.model_fallbacks["x/five"]', "x/six"),
        ("baton.fallback_models", "x/seven"),
    ]
    assert all(f.kind is FindingKind.UNKNOWN_MODEL for f in check_chains(cfg, catalog))


def test_an_inherited_chain_is_compared_but_reported_where_it_is_written(catalog: Catalog) -> None:
    """build has a model and uses baton.fallback_models: the unknown name is reported once, at
    baton.fallback_models; the price against build's primary at agents.build, saying where from."""
    cfg = config({"agents": {"build": {"model": "fake/third"}},
                  "baton": {"fallback_models": ["fake/backup", "fake/nope-nope"]}})
    findings = check_chains(cfg, catalog)
    assert kinds(findings) == [("agents.build", "fake/backup", FindingKind.PRICIER),
                               ("baton.fallback_models", "fake/nope-nope", FindingKind.UNKNOWN_MODEL)]
    assert "(chain from baton.fallback_models)" in findings[0].text


def test_a_repeated_model_is_reported_once_per_owner(catalog: Catalog) -> None:
    cfg = config({"agents": {"build": {"model": "fake/backup",
                                       "fallback_models": ["fake/nope-x", "FAKE/nope-x", "fake/nope-x"]}}})
    assert kinds(check_chains(cfg, catalog)) == [("agents.build", "fake/nope-x", FindingKind.UNKNOWN_MODEL)]


def test_the_empty_catalog_finds_nothing() -> None:
    cfg = config({"agents": {"build": {"model": "x/y", "fallback_models": ["fake/primray"]}}})
    assert check_chains(cfg, EMPTY_CATALOG) == []


def test_configured_chains_carry_primary_fallbacks_and_names() -> None:
    cfg = config({"agents": {"build": {"category": "quick", "fallback_models": ["a/x"]}},
                  "categories": {"quick": {"model": "a/p"}},
                  "baton": {"fallback_models": ["a/d"]}})
    assert configured_chains(cfg) == [
        NamedChain("agents.build", "a/p", ("a/x",), ("a/x",)),
        NamedChain("categories.quick", "a/p", ("a/d",), ("a/p",), "baton.fallback_models"),
        NamedChain("baton.fallback_models", None, ("a/d",), ("a/d",)),
    ]


def test_findings_follow_the_chain_model_by_model(catalog: Catalog) -> None:
    cfg = config({"agents": {"build": {"model": "fake/backup", "fallback_models": [
        "fake/primray", "fake/third", "anthropic/claude-opus-4-7"]}}})
    assert kinds(check_chains(cfg, catalog)) == [
        ("agents.build", "fake/primray", FindingKind.UNKNOWN_MODEL),
        ("agents.build", "fake/third", FindingKind.SMALLER_CONTEXT),
        ("agents.build", "fake/third", FindingKind.PRICIER),
        ("agents.build", "anthropic/claude-opus-4-7", FindingKind.NOT_CONNECTED),
        ("agents.build", "anthropic/claude-opus-4-7", FindingKind.PRICIER),
    ]
