"""``GET /metrics``: baton's numbers in the Prometheus text format (the official client library).

Two kinds of figures. What baton's state already holds — events processed, stream connects,
cooldowns active, parked sessions, tasks by state and model, queue depth, re-sends started — is
read from one :meth:`~baton.engine.Engine.stats` snapshot at scrape time (:class:`_StateCollector`),
so nothing is counted twice. What only happens in passing — a switch from one model to another,
the reaction from a failure to the accepted re-send, a notification's delay after its task ended,
a delivery to retry — is counted by the executors here. Names
follow Prometheus conventions (``baton_`` prefix, base units, ``_total`` counters); labels are
models and states, never session ids, so their values stay bounded by the config.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "EngineStats", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_REACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_NOTIFY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class _State(Protocol):
    @property
    def value(self) -> str: ...


class EngineStats(Protocol):
    """What :meth:`baton.engine.Engine.stats` returns, as far as the metrics read it."""

    @property
    def state(self) -> _State: ...
    @property
    def events(self) -> int: ...
    @property
    def connects(self) -> int: ...
    @property
    def fallbacks(self) -> int: ...
    @property
    def cooldowns(self) -> list[dict[str, Any]]: ...
    @property
    def sessions(self) -> list[dict[str, Any]]: ...
    @property
    def tasks(self) -> list[dict[str, Any]]: ...


class Metrics:
    """One engine's registry: the executors' counters, and the state read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.switches = Counter(
            "baton_fallbacks", "Sessions moved from one model to another, by what made them switch.",
            ["reason", "from_model", "to_model"], registry=self.registry)
        self.reaction_seconds = Histogram(
            "baton_reaction_seconds", "From the failure baton decided on (a retry status, an error, the watchdog) "
            "to opencode accepting the message re-sent on the next model.",
            buckets=_REACTION_BUCKETS, registry=self.registry)
        self.notify_seconds = Histogram(
            "baton_notification_seconds", "From a background task's end to its parent session taking the "
            "message that reports it.", buckets=_NOTIFY_BUCKETS, registry=self.registry)
        self.deliveries_retried = Counter(
            "baton_deliveries_retried", "Task notifications opencode did not take at once (sent again later).",
            registry=self.registry)

    def watch(self, stats: Callable[[], EngineStats]) -> None:
        """Export the engine's state (called once the engine exists)."""
        self.registry.register(_StateCollector(stats))

    def switched(self, cause: object, from_model: object, to_model: object) -> None:
        """One switch; ``cause`` is one of :data:`baton.fallback.switching.SWITCH_CAUSES`."""
        self.switches.labels(str(cause or "unknown"), str(from_model or "unknown"), str(to_model or "unknown")).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, stats: Callable[[], EngineStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats()
        yield CounterMetricFamily("baton_events", "Events from opencode's stream decided on.", value=s.events)
        yield CounterMetricFamily("baton_stream_connects", "Connections to opencode's event stream (the first "
                                  "one and every reconnect).", value=s.connects)
        yield CounterMetricFamily("baton_resends", "Re-sends of a turn started (fallbacks carried out).",
                                  value=s.fallbacks)
        yield GaugeMetricFamily("baton_attached", "1 while attached to opencode's event stream.",
                                value=1 if s.state.value == "attached" else 0)
        yield GaugeMetricFamily("baton_cooldowns_active", "Models cooling down now.", value=len(s.cooldowns))
        yield GaugeMetricFamily("baton_parked_sessions", "Turns parked until a model's reset.",
                                value=sum(1 for row in s.sessions if row.get("parked_until")))
        tasks = GaugeMetricFamily("baton_tasks", "Background tasks in the live view, by state and model.",
                                  labels=["state", "model"])
        for (state, model), n in sorted(Tally((t["status"], t["model"] or "-") for t in s.tasks).items()):
            tasks.add_metric([state, model], n)
        yield tasks
        queued = GaugeMetricFamily("baton_queue_depth", "Background tasks waiting for a slot, by model.",
                                   labels=["model"])
        for model, n in sorted(Tally(t["model"] or "-" for t in s.tasks if t["queue_position"]).items()):
            queued.add_metric([model], n)
        yield queued
