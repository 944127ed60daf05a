"""The shared cooldown table (runtime-fallback §6.1): what is cooling, until when, in what order."""

from __future__ import annotations

from baton.cooldowns import Cooldowns


def test_a_model_cools_until_its_deadline_and_not_at_it() -> None:
    """§6.1.1: cooling while ``now < until``; at ``until`` the model is usable and listed no more."""
    table = Cooldowns([("prov/a", 100.0)])
    assert table.is_cooling("prov/a", 99.9) and list(table.active(99.9)) == [("prov/a", 100.0)]
    assert not table.is_cooling("prov/a", 100.0)
    assert list(table.active(100.0)) == []


def test_active_lists_the_soonest_deadline_first() -> None:
    """The status view shows what cools again first at the top, whatever the order of entry."""
    table = Cooldowns([("prov/late", 300.0), ("prov/soon", 150.0), ("prov/middle", 200.0)])
    assert [model for model, _ in table.active(0.0)] == ["prov/soon", "prov/middle", "prov/late"]


def test_until_is_the_deadline_or_none() -> None:
    table = Cooldowns([("prov/a", 100.0)])
    assert table.until("prov/a") == 100.0
    assert table.until("prov/unknown") is None


def test_a_later_failure_pushes_the_deadline_out_never_in() -> None:
    """§6.1.3: ``extend`` moves ``until`` later only, and says whether the table changed."""
    table = Cooldowns()
    assert table.extend("prov/a", 100.0)
    assert not table.extend("prov/a", 50.0)
    assert not table.extend("prov/a", 100.0)
    assert table.extend("prov/a", 150.0)
    assert table.until("prov/a") == 150.0


def test_equivalent_model_names_share_one_entry() -> None:
    """The table is keyed like models are compared: case and ``.``/``-`` do not make two entries."""
    table = Cooldowns([("Prov/Model-1.5", 100.0)])
    assert table.is_cooling("prov/model-1-5", 50.0)
    assert [model for model, _ in table.active(50.0)] == ["Prov/Model-1.5"]


def test_each_deadline_keeps_its_source_and_a_model_without_one_has_none() -> None:
    """``baton status`` shows where a reset time came from; a model that never failed has no source."""
    table = Cooldowns([("prov/a", 100.0)])
    table.extend("prov/b", 200.0, "provider text")
    assert table.source("prov/a") == "configured"
    assert table.source("Prov/B") == "provider text"
    assert table.source("prov/unknown") is None
