"""Launch requests: validation, agent/category/model resolution and spawn limits (§5.1, §13, §14.2).

Everything here is a pure function of the request, the config, the cooldowns and the task
index, and returns either a :class:`Plan` (what to insert) or a :class:`ToolError`; nothing
is stored until the scheduler inserts the plan, so a refused launch leaves no trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from baton.chains import agent_key_for, agent_primary_model, resolve_chain
from baton.cooldowns import Cooldowns
from baton.fallback.core import FallbackCore
from baton.models import same_model
from baton.settings import Config
from baton.tasks import texts
from baton.tasks.model import LIVE, Task
from baton.tasks.queues import TaskIndex, concurrency_key

__all__ = [
    "BUILTIN_CATEGORIES",
    "KnownAgent",
    "LaunchRequest",
    "LaunchResult",
    "Plan",
    "ToolError",
    "known_categories",
    "plan_launch",
    "tools_for",
]

BUILTIN_CATEGORIES = ("visual-engineering", "ultrabrain", "deep", "artistry", "quick", "unspecified-low",
                      "unspecified-high", "writing")
_READ_ONLY_AGENTS = frozenset({"explore", "librarian", "oracle"})
_NO_WRITE_AGENTS = frozenset({"metis", "momus"})
_SPAWN_TOOLS = ("baton_task", "baton_call_agent")


@dataclass(frozen=True, slots=True)
class ToolError:
    """A refusal the MCP tool returns as an ``isError`` result; nothing was stored."""

    message: str


@dataclass(frozen=True, slots=True)
class KnownAgent:
    """One entry of opencode's ``GET /agent``: name, ``mode`` (primary/subagent/all), model if set."""

    name: str
    mode: str = "subagent"
    model: str | None = None


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """A ``task``/``call_agent`` call, resolved by the engine to its calling session (§14.1).

    ``depth_of_parent``/``root_session_id`` come from the engine's lineage walk; when the walk
    failed it passes ``lineage_error`` and the launch is refused (fail closed, §13.3).
    ``known_agents`` None means ``GET /agent`` failed: agent launches are refused.
    ``background`` None means the argument was missing. ``connected_providers`` None = unknown
    (every provider counts as connected).
    """

    parent_session_id: str
    description: str
    prompt: str
    background: bool | None = True
    category: str | None = None
    subagent_type: str | None = None
    session_id: str | None = None
    parent_message_id: str | None = None
    parent_agent: str | None = None
    parent_model: str | None = None
    parent_variant: str | None = None
    depth_of_parent: int = 0
    root_session_id: str | None = None
    lineage_error: str | None = None
    known_agents: tuple[KnownAgent, ...] | None = ()
    directory: str | None = None
    connected_providers: frozenset[str] | None = None
    tool: str = "task"
    """``task`` or ``call_agent`` (the latter takes no category)."""


@dataclass(frozen=True, slots=True)
class LaunchResult:
    """An accepted launch: the stored task's id and state, and the tool text for the model."""

    task_id: str
    status: str
    foreground: bool
    queue_position: int | None
    session_id: str | None
    model: str | None
    text: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything :meth:`Scheduler.launch` needs to insert the task."""

    agent: str
    category: str | None
    model: str | None
    variant: str | None
    chain: tuple[str, ...]
    attempt: int
    system: str | None
    tools: dict[str, bool]
    depth: int
    root_session_id: str
    continues: Task | None


def known_categories(config: Config) -> dict[str, str]:
    """Lower-cased name → configured name: configured ones plus built-ins, minus disabled (§3.2)."""
    names = {name.lower(): name for name in BUILTIN_CATEGORIES}
    for name, category in config.categories.items():
        if category.disable:
            names.pop(name.strip().lower(), None)
        else:
            names[name.strip().lower()] = name
    return names


def tools_for(agent: str, depth: int, max_depth: int) -> dict[str, bool]:
    """The child's tools map (§6.4): never opencode's own task/question; no spawning at max depth."""
    tools = {"task": False, "question": False}
    if depth >= max_depth:
        tools.update(dict.fromkeys(_SPAWN_TOOLS, False))
    name = agent if agent in _READ_ONLY_AGENTS | _NO_WRITE_AGENTS else agent.strip().lower()
    if name in _READ_ONLY_AGENTS:
        tools.update(dict.fromkeys(("write", "edit", "task", *_SPAWN_TOOLS), False))
    elif name in _NO_WRITE_AGENTS:
        tools.update(dict.fromkeys(("write", "edit", "task"), False))
    elif name == "multimodal-looker":
        tools["read"] = True
    return tools


def _chain(head: str | None, rest: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for model in ([head] if head else []) + list(rest):
        if not any(same_model(model, seen) for seen in out):
            out.append(model)
    return tuple(out)


def _find_agent(known: Sequence[KnownAgent], name: str) -> KnownAgent | None:
    for agent in known:
        if agent.name == name:
            return agent
    lowered = name.strip().lower()
    return next((a for a in known if a.name.strip().lower() == lowered), None)


def _usable(config: Config, known: Sequence[KnownAgent]) -> list[str]:
    disabled = {name.strip().lower() for name in config.disabled_agents}
    return sorted(a.name for a in known if a.mode != "primary" and a.name.strip().lower() not in disabled)


def _check_args(req: LaunchRequest) -> ToolError | None:
    if not req.description.strip():
        return ToolError(texts.bad_argument("description is empty", "give a short description of the work"))
    if not req.prompt.strip():
        return ToolError(texts.bad_argument("prompt is empty", "write the instructions for the subagent"))
    if req.background is None:
        return ToolError(texts.bad_argument("run_in_background is missing",
                                            "pass true (get notified later) or false (wait for the answer)"))
    if req.tool == "call_agent" and req.category:
        return ToolError(texts.bad_argument("call_agent takes no category", "use task for a category"))
    if req.session_id is None and bool(req.category) == bool(req.subagent_type):
        return ToolError(texts.bad_argument("give exactly one of category and subagent_type",
                                            "category picks a configured kind of work, subagent_type a named agent"))
    return None


def _check_category(config: Config, category: str) -> str | ToolError:
    names = known_categories(config)
    found = names.get(category.strip().lower())
    if found is None:
        return ToolError(texts.unknown_category(category, sorted(names.values())))
    return found


def _check_agent(config: Config, req: LaunchRequest, name: str) -> KnownAgent | ToolError:
    if req.known_agents is None:
        return ToolError(texts.agents_unavailable())
    agent = _find_agent(req.known_agents, name)
    usable = _usable(config, req.known_agents)
    if agent is None:
        return ToolError(texts.unknown_agent(name, usable, "is not an agent opencode knows"))
    if agent.mode == "primary":
        return ToolError(texts.unknown_agent(name, usable, "is a primary agent, not a subagent"))
    if agent.name.strip().lower() in {n.strip().lower() for n in config.disabled_agents}:
        return ToolError(texts.unknown_agent(name, usable, "is listed in disabled_agents"))
    return agent


def _check_limits(config: Config, index: TaskIndex, req: LaunchRequest, depth: int | None) -> ToolError | str:
    """Lineage (fail closed), depth (new children only), live descendants per root (§13)."""
    settings = config.background_task
    if req.lineage_error is not None or req.root_session_id is None:
        return ToolError(texts.lineage_failed(req.parent_session_id, req.lineage_error or "no root was found"))
    root = req.root_session_id
    if depth is not None and depth > settings.max_depth:
        return ToolError(texts.depth_refused(settings.max_depth, depth, req.parent_session_id, root))
    live = index.live_under_root(root)
    if live >= settings.max_descendants:
        return ToolError(texts.descendants_refused(settings.max_descendants, live, req.parent_session_id, root))
    return root


def plan_launch(
    config: Config, cooldowns: Cooldowns, index: TaskIndex, req: LaunchRequest, now: float
) -> Plan | ToolError:
    """Validate → resolve → check limits, in the order of §5.1; no side effects."""
    if (error := _check_args(req)) is not None:
        return error
    if req.session_id is not None:
        return _plan_continuation(config, cooldowns, index, req, now)
    settings = config.background_task
    if req.category:
        category = _check_category(config, req.category)
        if isinstance(category, ToolError):
            return category
        agent_name = config.baton.category_agent
        agent_key = agent_key_for(config, agent_name)
        cat = config.categories.get(category)
        head = (cat.primary_model if cat is not None else None) or agent_primary_model(config, agent_key)
        head = head or req.parent_model
        variant = cat.variant if cat is not None and cat.primary_model else None
        system = cat.prompt_append if cat is not None else None
        rest = resolve_chain(config, agent_key=agent_key, category=category, model=head).models
        category_name: str | None = category
    else:
        assert req.subagent_type is not None
        known = _check_agent(config, req, req.subagent_type)
        if isinstance(known, ToolError):
            return known
        agent_name = known.name
        agent_key = agent_key_for(config, agent_name)
        configured = agent_primary_model(config, agent_key)
        head = configured or known.model or req.parent_model
        agent_cfg = config.agents.get(agent_key) if agent_key is not None else None
        variant = agent_cfg.variant if agent_cfg is not None and configured else None
        system = None
        rest = resolve_chain(config, agent_key=agent_key, category=None, model=head).models
        category_name = None
    depth = req.depth_of_parent + 1
    root = _check_limits(config, index, req, depth)
    if isinstance(root, ToolError):
        return root
    chain = _chain(head, rest)
    core = FallbackCore(config.runtime_fallback, cooldowns, config.baton.max_cooldown_seconds)
    attempt = core.start_model(chain, 0, now, req.connected_providers) if chain else 0
    model = chain[attempt] if chain else None
    return Plan(
        agent=agent_name, category=category_name, model=model, variant=variant if attempt == 0 else None,
        chain=chain, attempt=attempt, system=system, tools=tools_for(agent_name, depth, settings.max_depth),
        depth=depth, root_session_id=root, continues=None,
    )


def _plan_continuation(
    config: Config, cooldowns: Cooldowns, index: TaskIndex, req: LaunchRequest, now: float
) -> Plan | ToolError:
    """A new task on an ended task's session, same agent, system and tools (§14.2.4)."""
    assert req.session_id is not None
    old = index.task_on(req.session_id)
    if old is None:
        return ToolError(texts.not_a_task_session(req.session_id))
    if req.lineage_error is not None or req.root_session_id is None:
        return ToolError(texts.lineage_failed(req.parent_session_id, req.lineage_error or "no root was found"))
    if not _in_callers_tree(index, old, req.parent_session_id, req.root_session_id):
        return ToolError(texts.foreign_session(req.session_id, req.parent_session_id))
    if old.status in LIVE:
        return ToolError(texts.session_busy(req.session_id, old))
    if req.category and (old.category or "").lower() != req.category.strip().lower():
        return ToolError(texts.continuation_mismatch(req.session_id, "category", req.category, old.category))
    if req.subagent_type and old.agent.lower() != req.subagent_type.strip().lower():
        return ToolError(texts.continuation_mismatch(req.session_id, "subagent_type", req.subagent_type, old.agent))
    root = _check_limits(config, index, req, None)
    if isinstance(root, ToolError):
        return root
    chain = tuple(old.chain)
    if chain:
        core = FallbackCore(config.runtime_fallback, cooldowns, config.baton.max_cooldown_seconds)
        attempt = core.start_model(chain, min(old.attempt, len(chain) - 1), now, req.connected_providers)
        model: str | None = chain[attempt]
    else:
        attempt, model = 0, old.model
    variant = old.variant if same_model(model, old.model) else None
    return Plan(
        agent=old.agent, category=old.category, model=model, variant=variant, chain=chain, attempt=attempt,
        system=old.system, tools=dict(old.tools), depth=old.depth, root_session_id=root, continues=old,
    )


def _in_callers_tree(index: TaskIndex, old: Task, caller: str, root: str) -> bool:
    """A continued session must be the caller's own: a task baton created under the caller's root,
    or (for rows stored without a root) one whose chain of parent tasks leads to the caller."""
    if old.root_session_id:
        return old.root_session_id == root
    current: Task | None = old
    for _ in range(64):
        if current is None:
            return False
        if current.parent_session_id == caller:
            return True
        current = index.task_on(current.parent_session_id)
    return False


def key_for(plan: Plan) -> str:
    return concurrency_key(plan.model, plan.agent)
