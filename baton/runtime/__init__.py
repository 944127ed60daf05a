"""The runtime layer: what carries out the pure deciders' actions for one attached opencode.

* :mod:`baton.runtime.router` — the single writer: events → deciders → executors;
* :mod:`baton.runtime.fallback_executor` (with :mod:`baton.runtime.timers`) and
  :mod:`baton.runtime.tasks` — the executors; an action's I/O is a job (:mod:`baton.runtime.jobs`)
  whose outcome the router feeds back as an event;
* :mod:`baton.runtime.task_tools` and :mod:`baton.runtime.calls` — the MCP tools' service: the
  calling session, the scheduler's tool steps, foreground waits;
* :mod:`baton.runtime.attach` — what happens around each connection of the event stream.

Everything opencode-specific on the wire is in :mod:`baton.opencode`; the deciders are in
:mod:`baton.fallback` and :mod:`baton.tasks`; :func:`baton.daemon.build_engine` builds it all in
dependency order and :class:`baton.engine.Engine` holds it.
"""

__all__: list[str] = []
