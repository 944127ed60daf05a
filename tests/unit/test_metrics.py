"""/metrics: the Prometheus text baton exports, from its executors' counters and its state."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from baton.runtime.metrics import Metrics


class State(Enum):
    ATTACHED = "attached"


@dataclass
class Stats:
    state: State = State.ATTACHED
    events: int = 1234
    connects: int = 2
    fallbacks: int = 3
    cooldowns: list[dict[str, Any]] = field(default_factory=lambda: [{"model": "p/a"}, {"model": "p/b"}])
    sessions: list[dict[str, Any]] = field(default_factory=lambda: [{"parked_until": 5.0}, {"parked_until": None}])
    tasks: list[dict[str, Any]] = field(default_factory=lambda: [
        {"status": "running", "model": "p/a", "queue_position": None},
        {"status": "queued", "model": "p/a", "queue_position": 1},
        {"status": "queued", "model": "p/a", "queue_position": 2},
        {"status": "completed", "model": None, "queue_position": None},
    ])


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_state_is_read_at_scrape_time_with_prometheus_names() -> None:
    metrics = Metrics()
    stats = Stats()
    metrics.watch(lambda: stats)
    got = samples(metrics)
    assert got[("baton_events_total", ())] == 1234
    assert got[("baton_stream_connects_total", ())] == 2
    assert got[("baton_resends_total", ())] == 3
    assert got[("baton_attached", ())] == 1
    assert got[("baton_cooldowns_active", ())] == 2
    assert got[("baton_parked_sessions", ())] == 1
    assert got[("baton_tasks", (("model", "p/a"), ("state", "queued")))] == 2
    assert got[("baton_tasks", (("model", "p/a"), ("state", "running")))] == 1
    assert got[("baton_tasks", (("model", "-"), ("state", "completed")))] == 1
    assert got[("baton_queue_depth", (("model", "p/a"),))] == 2
    stats.events = 1300  # the next scrape reads the state again
    assert samples(metrics)[("baton_events_total", ())] == 1300


def test_switches_resends_and_retried_deliveries_are_counted_without_session_ids() -> None:
    metrics = Metrics()
    metrics.switched("retry_status", "fake/primary", "fake/backup")
    metrics.switched("retry_status", "fake/primary", "fake/backup")
    metrics.switched("timeout", "fake/primary", "fake/backup")
    metrics.switched(None, None, "fake/third")
    metrics.reaction_seconds.observe(0.02)
    metrics.notify_seconds.observe(0.2)
    metrics.deliveries_retried.inc()
    got = samples(metrics)
    pair = (("from_model", "fake/primary"), ("reason", "retry_status"), ("to_model", "fake/backup"))
    assert got[("baton_fallbacks_total", pair)] == 2
    assert got[("baton_fallbacks_total", (("from_model", "fake/primary"), ("reason", "timeout"),
                                          ("to_model", "fake/backup")))] == 1
    assert got[("baton_fallbacks_total", (("from_model", "unknown"), ("reason", "unknown"),
                                          ("to_model", "fake/third")))] == 1
    assert got[("baton_reaction_seconds_count", ())] == 1
    assert got[("baton_reaction_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("baton_reaction_seconds_bucket", (("le", "0.01"),))] == 0
    assert got[("baton_notification_seconds_bucket", (("le", "0.25"),))] == 1
    assert got[("baton_notification_seconds_bucket", (("le", "0.1"),))] == 0
    assert got[("baton_deliveries_retried_total", ())] == 1
    assert not any("ses_" in value for _, labels in got for _, value in labels)
