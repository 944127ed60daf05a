"""What baton does around each connection of the event stream (:class:`~baton.opencode.stream.StreamListener`).

On the first frame of a connection, before it counts as attached (:meth:`Attachment.catch_up`):
stand down while a competing fallback is on (spec §10.3), replay what the stream missed
(:func:`~baton.opencode.resync.resync`), then — once, after the first resync that worked — hand
the policy the re-send intents a killed baton left in the store (spec §7 rule 8).

Once attached (:meth:`Attachment.attached`): the scheduler resumes (first attach) or hears that
opencode restarted, then ``Attached``; baton's MCP tools are registered and waited for (bounded);
then opencode's model catalog is fetched (bounded) and the chains checked against it
(:mod:`baton.chain_check`: each finding a warning, and in ``/healthz``); then readiness
(:attr:`Attachment.ready`) and the one "attached" line, or a "re-attached" log.
When the stream is lost: ``Detached`` for the scheduler, and the tools' state is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import anyio
import structlog

from baton.actions import RESEND_INTENT, ResendIntent
from baton.catalog import EMPTY_CATALOG, Catalog
from baton.chain_check import Finding, check_chains
from baton.clock import Clock
from baton.events import CatalogSeen, RecoveredResend
from baton.fallback.policy import FallbackPolicy
from baton.opencode.client import OpencodeClient, OpencodeError
from baton.opencode.resync import resync
from baton.runtime.router import Router
from baton.store_port import StorePort
from baton.tasks.events import Attached, Detached, HostRestarted
from baton.tasks.scheduler import Scheduler

__all__ = ["CATALOG_S", "MCP_NAME", "TOOLS_READY_S", "Attachment"]

log = structlog.get_logger("baton")

MCP_NAME = "baton"
"""The name baton's MCP server is registered under; opencode shows its tools as ``baton_<tool>``."""
TOOLS_READY_S = 10.0
CATALOG_S = 10.0
"""Bound on fetching ``GET /provider`` at attach: a few ms once opencode has its model list, but the
first call after opencode starts builds that list (measured 3.8 s on a loaded 2-core machine)."""


class Attachment:
    """The attach sequence, the tools' registration and readiness."""

    def __init__(
        self,
        client: OpencodeClient,
        router: Router,
        policy: FallbackPolicy,
        scheduler: Scheduler,
        store: StorePort,
        clock: Clock,
        *,
        mcp_url: str | None = None,
        mcp_headers: Mapping[str, str] | None = None,
        on_attach: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self._router = router
        self._policy = policy
        self._scheduler = scheduler
        self._store = store
        self._clock = clock
        # Where opencode reaches baton's MCP tools; None: do not register them (--no-register-mcp).
        self.mcp_url = mcp_url
        # Headers opencode sends with every MCP call (baton's bearer token).
        self.mcp_headers = dict(mcp_headers or {})
        self._on_attach = on_attach
        self.tools = "pending" if mcp_url is not None else "not registered (--no-register-mcp)"
        # Set once attached and the tools registered; a new one after each detach.
        self.ready = anyio.Event()
        # Re-send intents a killed baton left in the store (None: not read yet); fed to the policy
        # after the first resync that worked (spec §7 rule 8).
        self._recovering: list[ResendIntent] | None = None
        # opencode's models (price, window, connected providers) as of the latest attach that could
        # fetch them; EMPTY_CATALOG (knows nothing, blocks nothing) until then.
        self.catalog: Catalog = EMPTY_CATALOG
        # What the chain checks found against that catalog (shown in /healthz).
        self.chain_warnings: tuple[Finding, ...] = ()

    @property
    def tools_ok(self) -> bool:
        """baton's tools are connected in opencode, or baton does not register them."""
        return self.mcp_url is None or self.tools == "connected"

    # ------------------------------------------------------------------ the stream's listener

    async def catch_up(self) -> None:
        if self._recovering is None:
            self._recovering = self._store.load_pending(RESEND_INTENT, ResendIntent.from_row)
        try:
            await self._check_competing_fallback()
            await self._resync()
        except OpencodeError as exc:
            log.warning("resync failed; continuing on the stream alone", error=str(exc))
        else:
            # After the resync: the policy knows each session's latest turn and status by now.
            recovering, self._recovering = self._recovering, []
            for intent in recovering:
                self._router.feed(RecoveredResend(intent))

    async def attached(self, *, first: bool, host_restarted: bool) -> None:
        if first:
            self._router.run_actions(self._scheduler.resume(self._clock.time()))
        elif host_restarted:
            self._router.feed(HostRestarted())
        self._router.feed(Attached())
        if self.mcp_url is not None:
            self.tools = await self._register_tools(self.mcp_url)
        await self.check_chains()
        self.ready.set()
        if first and self._on_attach is not None:
            self._on_attach(len(self._policy.sessions))
        elif not first:
            log.info("re-attached to opencode", url=self.client.base_url, tools=self.tools)

    def detached(self, *, was_attached: bool) -> None:
        if was_attached:
            self.ready = anyio.Event()
            self._router.feed(Detached())
        if self.mcp_url is not None:
            self.tools = "unknown (detached)"

    # ------------------------------------------------------------------ steps

    async def _resync(self) -> None:
        """Sessions with a fallback under way, children of live tasks and sessions of recovered
        intents: their messages are the only record of what happened while detached."""
        sessions = self._policy.sessions
        tracked = {sid for sid, s in sessions.items() if s.fb is not None}
        tracked |= {t.session_id for t in self._scheduler.index.tasks.values()
                    if t.session_id and self._scheduler.is_live(t.id)}
        recovering = {intent.session_id: intent.directory for intent in self._recovering or ()}
        tracked |= set(recovering)

        def directory_of(sid: str) -> str | None:
            directory = sessions[sid].directory if sid in sessions else None
            return directory or recovering.get(sid)

        await resync(self.client, tracked, directory_of, self._router)

    async def _register_tools(self, url: str) -> str:
        """Register baton's MCP server and wait, bounded, until opencode has connected it: before
        that, a prompt reaches the model without baton's tools. Returns the tools' status."""
        try:
            status = await self.client.register_mcp(MCP_NAME, url, headers=self.mcp_headers)
            deadline = self._clock.time() + TOOLS_READY_S
            while status != "connected" and self._clock.time() < deadline:
                await anyio.sleep(0.1)
                status = await self.client.mcp_status(MCP_NAME)
        except OpencodeError as exc:
            status = f"failed: {exc}"
        if status != "connected":
            log.warning("opencode has not connected baton's MCP tools", status=status, url=url)
        return status

    async def check_chains(self) -> None:
        """Fetch opencode's catalog (bounded by ``CATALOG_S``) and warn about every chain model
        that is unknown, unconnected, smaller or pricier than its primary. A failure is logged and
        keeps the previous catalog and findings; it never stops the attach."""
        catalog: Catalog | None = None
        try:
            with anyio.move_on_after(CATALOG_S):
                catalog = await self.client.catalog()
        except OpencodeError as exc:
            log.warning("could not fetch opencode's models; chains not checked", error=str(exc))
            return
        if catalog is None:
            log.warning("could not fetch opencode's models; chains not checked",
                        error=f"GET /provider: no answer within {CATALOG_S:g} s")
            return
        self.catalog = catalog
        self._router.feed(CatalogSeen(catalog))  # the guards and the chain walk use it from now on
        self.chain_warnings = tuple(check_chains(self._policy.config, catalog))
        for finding in self.chain_warnings:
            log.warning(finding.text, check=str(finding.kind), owner=finding.owner, model=finding.model)

    async def _check_competing_fallback(self) -> None:
        """Stand down while oh-my-opencode's own fallback is loaded and on: two handlers for one
        failure mean two aborts and two prompts (spec §10.3). Checked at every (re)attach."""
        names = await self.client.plugins()
        loaded = any("oh-my-opencode" in n or "oh-my-openagent" in n for n in names)
        config = self._policy.config
        reason = None
        if loaded and (config.runtime_fallback_explicit or config.model_fallback):
            which = "runtime_fallback" if config.runtime_fallback_explicit else "model_fallback"
            reason = (f"the oh-my-opencode plugin is loaded with its own {which} on; baton stays passive "
                      f"until one of them is turned off")
        if reason != self._policy.passive_reason:
            if reason:
                log.warning(reason)
            else:
                log.info("no competing fallback: baton's fallback is active")
        self._policy.passive_reason = reason
