"""Settings: the validated, frozen shape of everything baton reads from the config files.

Pure data and validation, no file I/O: the deciders (:mod:`baton.fallback`, the scheduler in
:mod:`baton.tasks`) import their settings from here without pulling in the loader.
:mod:`baton.config` finds, reads and merges the files, and validates them into :class:`Config`.

The models are frozen dataclasses checked by :mod:`baton.validation` (baton's own few rules:
pydantic cost the daemon ~9 MB). Each field says its kind, default and file key once; the
checks and ``baton config schema`` both come from that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from baton.validation import (
    BOOL,
    STR,
    Kind,
    Model,
    Range,
    SchemaDef,
    Segment,
    after,
    before,
    dict_of,
    fail,
    got,
    integer,
    key_path,
    nullable,
    number,
    number_text,
    one_of,
    setting,
    show_value,
    tuple_of,
)
from baton.validation import model as nested

__all__ = [
    "DEFAULT_CATEGORY_AGENT",
    "DEFAULT_RETRY_ON_ERRORS",
    "AgentConfig",
    "BackgroundTaskConfig",
    "BatonConfig",
    "CategoryConfig",
    "CircuitBreakerConfig",
    "Config",
    "Range",
    "RuntimeFallbackConfig",
    "Segment",
    "key_path",
    "number_text",
    "show_value",
]

DEFAULT_CATEGORY_AGENT = "general"
"""Agent that runs category tasks: opencode's own, present without the plugin."""
DEFAULT_RETRY_ON_ERRORS: tuple[int, ...] = (429, 500, 502, 503, 504)
"""Status codes that mean "try another model" (:mod:`baton.fallback.errors` classifies by them)."""

# ---------------------------------------------------------------------------------------------
# Value kinds


def _check_model(value: str) -> str:
    """A model is ``provider/model``; upstream accepted anything and failed at dispatch."""
    value = value.strip()
    provider, _, model_id = value.partition("/")
    if not provider or not model_id:
        fail(got('must be "provider/model"', value))
    return value


def _entry_model(value: object) -> object:
    """Later upstream writes chain entries as ``{model: "p/m", …}``: read the model."""
    if isinstance(value, dict):
        if "model" not in value:
            fail('an object entry needs a "model" key')
        return value["model"]
    return value


def _chain_shape(value: object) -> object:
    """A string is a one-element chain; an empty string means "not set"."""
    if isinstance(value, str):
        return [value] if value.strip() else None
    return value


def _blank_is_none(value: object) -> object:
    """A blank string means "not set", as upstream reads it."""
    return None if isinstance(value, str) and not value.strip() else value


def _section_shape(value: object) -> object:
    """``runtime_fallback: true|false`` is the object with only ``enabled`` given."""
    return {"enabled": value} if isinstance(value, bool) else value


def _name(value: object) -> str:
    """A name that is not blank, trimmed (the agent that runs category tasks)."""
    text: str = STR.check(value).strip()
    if not text:
        fail(got("must not be empty", value))
    return text


def _normalize_keys(limits: dict[str, int]) -> dict[str, int]:
    """Limits are looked up by trimmed, lower-cased key (spec §5.3): store them that way."""
    return {key.strip().lower(): value for key, value in limits.items()}


_MODEL_ENTRY = SchemaDef("_ModelEntry", {
    "additionalProperties": True,
    "description": "Schema only: a chain entry written as an object (other fields allowed, and ignored).",
    "properties": {"model": {"title": "Model", "type": "string"}},
    "required": ["model"], "title": "ModelEntry", "type": "object",
})
_ENTRY_SCHEMA = {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/_ModelEntry"}]}

_MODEL_NAME = after(STR, _check_model)
_CHAIN = before(_chain_shape, nullable(tuple_of(before(_entry_model, _MODEL_NAME))),
                schema={"anyOf": [{"type": "string"}, {"items": _ENTRY_SCHEMA, "type": "array"}]},
                refs=(_MODEL_ENTRY,))
"""A chain: a list of ``provider/model`` (entries may be ``{model: …}``), or one as a string."""
_OPT_MODEL = before(_blank_is_none, nullable(_MODEL_NAME))
_OPT_STR = before(_blank_is_none, nullable(STR))
_NAME = Kind(_name, {"minLength": 1, "type": "string"})
_COUNT = integer(0)
_COST_RATIO = nullable(number(0))
_LIMITS = after(dict_of(_COUNT), _normalize_keys)
_MS_1MIN = integer(60_000)

# ---------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeFallbackConfig(Model):
    """``runtime_fallback``: when a session moves down its chain, and how often."""

    _ignored = {"session_timeout_ms": None}
    enabled: bool = setting(BOOL, True)
    retry_on_errors: tuple[int, ...] = setting(tuple_of(integer(100, 599)), DEFAULT_RETRY_ON_ERRORS)
    max_fallback_attempts: int = setting(integer(1, 20), 3)
    cooldown_seconds: float = setting(number(0), 60)
    timeout_seconds: float = setting(number(0), 30)
    notify_on_fallback: bool = setting(BOOL, True)
    restore_primary_after_cooldown: bool = setting(BOOL, True)
    """The next user turn of a session moved off its primary goes back to it once it has cooled."""


_INFERENCE_FIELDS = ("temperature", "top_p", "maxTokens", "thinking", "reasoningEffort", "textVerbosity",
                     "tools", "max_prompt_tokens", "is_unstable_agent")


@dataclass(frozen=True, slots=True, kw_only=True)
class _ModelChoice(Model):
    """Fields agents and categories share: a primary model and a chain."""

    model: str | None = setting(_OPT_MODEL, None)
    models: tuple[str, ...] | None = setting(_CHAIN, None)
    """4.x form ``[primary, fallback…]``."""
    fallback_models: tuple[str, ...] | None = setting(_CHAIN, None)
    variant: str | None = setting(_OPT_STR, None)
    prompt_append: str | None = setting(_OPT_STR, None)
    description: str | None = setting(_OPT_STR, None)
    disable: bool = setting(BOOL, False)

    @property
    def primary_model(self) -> str | None:
        """``model``, else the first of ``models``."""
        return self.model or (self.models[0] if self.models else None)

    @property
    def chain(self) -> tuple[tuple[str, ...], str] | None:
        """The chain this entry sets and the field it came from; None when it sets none.

        ``models`` lends its tail only when it has one: ``models: [x]`` is 4.x's way of
        writing ``model: x``, which sets no chain either.
        """
        if self.fallback_models is not None:
            return self.fallback_models, "fallback_models"
        if self.models is not None and len(self.models) > 1:
            return self.models[1:], "models"
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentConfig(_ModelChoice):
    """``agents.<name>``: any agent name, opencode's own or custom."""

    _ignored = dict.fromkeys(_INFERENCE_FIELDS + ("skills", "prompt", "mode", "color", "permission",
                                                  "providerOptions", "ultrawork", "compaction"))
    category: str | None = setting(_OPT_STR, None)
    max_cost_ratio: float | None = setting(_COST_RATIO, None)
    """This agent's spend guard; overrides ``baton.max_cost_ratio``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CategoryConfig(_ModelChoice):
    """``categories.<name>``: model, chain and prompt of a task category."""

    _ignored = dict.fromkeys(_INFERENCE_FIELDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBreakerConfig(Model):
    """``background_task.circuitBreaker``: stops a subagent that loops on tool calls."""

    enabled: bool = setting(BOOL, True)
    max_tool_calls: int | None = setting(nullable(integer(10)), None, alias="maxToolCalls")
    consecutive_threshold: int = setting(integer(5), 20, alias="consecutiveThreshold")


@dataclass(frozen=True, slots=True, kw_only=True)
class BackgroundTaskConfig(Model):
    """``background_task``: concurrency, timeouts and spawn limits (durations in ms)."""

    default_concurrency: int = setting(_COUNT, 5, alias="defaultConcurrency")
    provider_concurrency: dict[str, int] = setting(_LIMITS, factory=dict, alias="providerConcurrency")
    model_concurrency: dict[str, int] = setting(_LIMITS, factory=dict, alias="modelConcurrency")
    stale_timeout_ms: int = setting(_MS_1MIN, 180_000, alias="staleTimeoutMs")
    message_staleness_timeout_ms: int = setting(_MS_1MIN, 1_800_000, alias="messageStalenessTimeoutMs")
    sync_poll_timeout_ms: int = setting(_MS_1MIN, 600_000, alias="syncPollTimeoutMs")
    max_depth: int = setting(integer(1), 3, alias="maxDepth")
    max_descendants: int = setting(integer(1), 50, alias="maxDescendants")
    task_ttl_ms: int = setting(integer(300_000), 1_800_000, alias="taskTtlMs")
    session_gone_timeout_ms: int = setting(integer(10_000), 60_000, alias="sessionGoneTimeoutMs")
    task_cleanup_delay_ms: int = setting(_MS_1MIN, 600_000, alias="taskCleanupDelayMs")
    max_tool_calls: int = setting(integer(10), 4_000, alias="maxToolCalls")
    circuit_breaker: CircuitBreakerConfig = setting(nested(CircuitBreakerConfig), CircuitBreakerConfig(),
                                                    alias="circuitBreaker")

    @property
    def tool_call_cap(self) -> int | None:
        """Tool calls a task may make (§9 T5): the breaker's cap wins; None when the breaker is off."""
        if not self.circuit_breaker.enabled:
            return None
        return self.circuit_breaker.max_tool_calls or self.max_tool_calls


@dataclass(frozen=True, slots=True, kw_only=True)
class BatonConfig(Model):
    """``baton``: baton's own additions, which oh-my-opencode does not know."""

    fallback_models: tuple[str, ...] | None = setting(_CHAIN, None)
    """Default chain for a session no other rule covers."""
    model_fallbacks: dict[str, tuple[str, ...] | None] = setting(dict_of(_CHAIN, key=_MODEL_NAME), factory=dict)
    """Chain per primary model, exact ``provider/model`` match."""
    category_agent: str = setting(_NAME, DEFAULT_CATEGORY_AGENT)
    park_when_exhausted: bool = setting(BOOL, True)
    """With no usable model in the chain, hold the turn and re-send it when the first model cools."""
    max_park_seconds: float = setting(number(0), 6 * 3600)
    """A park that would last longer is not made (the journal says why)."""
    max_cooldown_seconds: float = setting(number(1), 24 * 3600)
    """Cap on a cooldown learnt from the provider's reset time."""
    max_cost_ratio: float | None = setting(_COST_RATIO, None)
    """Spend guard: skip a chain model costing more than this ratio of the failing model's. None: off."""
    on_context_overflow: Literal["off", "larger-model"] = setting(one_of("off", "larger-model"), "off")
    """``larger-model``: a context overflow moves the session to the next chain model with a larger window."""


_UPSTREAM_KEYS = (
    "new_task_system_enabled", "default_run_agent", "disabled_mcps", "disabled_skills", "disabled_commands",
    "disabled_tools", "claude_code", "sisyphus_agent", "sisyphus", "comment_checker", "experimental",
    "auto_update", "skills", "ralph_loop", "notification", "babysitting", "git_master", "lsp", "mcp",
    "browser_automation_engine", "websearch", "tmux", "start_work", "hashline_edit",
)
_RUNTIME_FALLBACK = before(_section_shape, nested(RuntimeFallbackConfig), schema={
    "anyOf": [{"type": "boolean"}, {"$ref": "#/$defs/RuntimeFallbackConfig"}]})
"""``runtime_fallback``: the object, or ``true``/``false`` for only ``enabled``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config(Model):
    """Everything baton reads, merged from all files, plus where it came from."""

    _ignored = dict.fromkeys(_UPSTREAM_KEYS)

    runtime_fallback: RuntimeFallbackConfig = setting(_RUNTIME_FALLBACK, RuntimeFallbackConfig())
    agents: dict[str, AgentConfig] = setting(dict_of(nested(AgentConfig)), factory=dict)
    categories: dict[str, CategoryConfig] = setting(dict_of(nested(CategoryConfig)), factory=dict)
    background_task: BackgroundTaskConfig = setting(nested(BackgroundTaskConfig), BackgroundTaskConfig())
    baton: BatonConfig = setting(nested(BatonConfig), BatonConfig())
    disabled_hooks: tuple[str, ...] = setting(tuple_of(STR), ())
    disabled_agents: tuple[str, ...] = setting(tuple_of(STR), ())
    model_fallback: bool = setting(BOOL, False)
    """Upstream's legacy fallback hook; read only to warn that baton has one policy."""
    sources: tuple[Path, ...] = ()
    """Files read, lowest precedence first."""
    warnings: tuple[str, ...] = ()
    """One line per problem that did not stop loading; the CLI decides how to show them."""
    runtime_fallback_explicit: bool = False
    """A file itself turns ``runtime_fallback`` on: what upstream's plugin (default off) acts on."""
    _agent_memo: Any = field(default=None, init=False, repr=False, compare=False)
    """Agent-name index, built by :func:`baton.chains.agent_key_for` on first use (its cache, not a setting)."""

    def max_cost_ratio_for(self, agent_key: str | None) -> float | None:
        """The spend guard for an agent: its own ``max_cost_ratio``, else ``baton.max_cost_ratio``;
        None: off."""
        agent = self.agents.get(agent_key) if agent_key else None
        own = agent.max_cost_ratio if agent is not None else None
        return own if own is not None else self.baton.max_cost_ratio
