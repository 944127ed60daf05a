"""The shared cooldown table: a failed model is skipped by every session until it cools.

Upstream kept cooldowns per session, so a second session walked into the same rate limit.
Here one table serves all sessions and the task scheduler, and the store persists it. Each
entry keeps where its deadline came from (a :class:`baton.fallback.reset_times.ResetSource`
value: the provider's reset time, or the configured cooldown), for ``baton status``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from baton.models import model_key

__all__ = ["Cooldowns"]


class Cooldowns:
    """``provider/model`` → until (epoch seconds) and its source. A model is cooling while ``now < until``."""

    __slots__ = ("_until",)

    def __init__(self, entries: Iterable[tuple[str, float]] = ()) -> None:
        self._until: dict[str, tuple[str, float, str]] = {}
        for model, until in entries:
            self.extend(model, until)

    def extend(self, model: str, until: float, source: str = "configured") -> bool:
        """Move ``until`` later (never earlier), noting its ``source``; True when the table changed."""
        key = model_key(model)
        old = self._until.get(key)
        if old is not None and old[1] >= until:
            return False
        self._until[key] = (model, until, source)
        return True

    def source(self, model: str) -> str | None:
        """Where ``model``'s deadline came from; None when it has none."""
        entry = self._until.get(model_key(model))
        return None if entry is None else entry[2]

    def is_cooling(self, model: str, now: float) -> bool:
        entry = self._until.get(model_key(model))
        return entry is not None and now < entry[1]

    def until(self, model: str) -> float | None:
        entry = self._until.get(model_key(model))
        return None if entry is None else entry[1]

    def active(self, now: float) -> Iterator[tuple[str, float]]:
        """The models cooling at ``now`` with their deadlines, soonest first."""
        live = [(model, until) for model, until, _ in self._until.values() if until > now]
        return iter(sorted(live, key=lambda item: item[1]))
