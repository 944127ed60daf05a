"""Settings: the validated, frozen shape of everything baton reads from the config files.

Pure data and validation, no file I/O: the deciders (:mod:`baton.fallback`, the scheduler in
:mod:`baton.tasks`) import their settings from here without pulling in the loader.
:mod:`baton.config` finds, reads and merges the files, and validates them into :class:`Config`.

Also here, because validation messages need them: :class:`Range` (number bounds with a message
naming both ends) and how a key path or a value is shown to the user.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue, SkipJsonSchema
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

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
# Showing keys and values

Segment = str | int
"""One step of a key path: an object key or a list index."""

_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$-]*")


def key_path(keys: Sequence[Segment]) -> str:
    """``agents.build.fallback_models[0]``; odd names quoted: ``baton.model_fallbacks["p/m"]``."""
    out = ""
    for seg in keys:
        if isinstance(seg, int):
            out += f"[{seg}]"
        elif _IDENTIFIER.fullmatch(seg):
            out += f".{seg}" if out else seg
        else:
            out += f"[{json.dumps(seg)}]"
    return out


def number_text(value: float) -> str:
    """``60`` rather than ``60.0``: numbers as a user writes them."""
    return str(int(value)) if float(value).is_integer() else str(value)


def show_value(value: object) -> str:
    """A value as a user wrote it, cut to 40 characters: "an object", "a list", ``"text"``, ``12``."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Range:
    """Bounds for a number, with a message that names both ends ("between 1 and 20")."""

    low: float
    high: float | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        result = handler(schema)
        result["minimum"] = self.low
        if self.high is not None:
            result["maximum"] = self.high
        return result

    def _check(self, value: float) -> float:
        if not math.isfinite(value):
            raise PydanticCustomError("out_of_range", "must be a finite number")
        if value < self.low or (self.high is not None and value > self.high):
            low = number_text(self.low)
            bounds = f"at least {low}" if self.high is None else f"between {low} and {number_text(self.high)}"
            raise PydanticCustomError("out_of_range", "must be {bounds} (got {got})",
                                      {"bounds": bounds, "got": number_text(value)})
        return value


# ---------------------------------------------------------------------------------------------
# Value types


def _check_model(value: str) -> str:
    """A model is ``provider/model``; upstream accepted anything and failed at dispatch."""
    value = value.strip()
    provider, _, model_id = value.partition("/")
    if not provider or not model_id:
        raise PydanticCustomError("model_name", 'must be "provider/model" (got {got})',
                                  {"got": show_value(value)})
    return value


def _entry_model(value: object) -> object:
    """Later upstream writes chain entries as ``{model: "p/m", …}``: read the model."""
    if isinstance(value, dict):
        if "model" not in value:
            raise PydanticCustomError("model_entry", 'an object entry needs a "model" key')
        return value["model"]
    return value


def _chain_shape(value: object) -> object:
    """A string is a one-element chain; an empty string means "not set"."""
    if isinstance(value, str):
        return [value] if value.strip() else None
    return value


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _section_shape(value: object) -> object:
    """``runtime_fallback: true|false`` is the object with only ``enabled`` given."""
    return {"enabled": value} if isinstance(value, bool) else value


class _ModelEntry(BaseModel):
    """Schema only: a chain entry written as an object (other fields allowed, and ignored)."""

    model_config = ConfigDict(extra="allow", title="ModelEntry")
    model: str


_ModelName = Annotated[StrictStr, AfterValidator(_check_model)]
_ChainEntry = Annotated[_ModelName, BeforeValidator(_entry_model, json_schema_input_type=str | _ModelEntry)]
_Chain = Annotated[
    tuple[_ChainEntry, ...] | None,
    BeforeValidator(_chain_shape, json_schema_input_type=str | list[str | _ModelEntry]),
]
_OptModel = Annotated[_ModelName | None, BeforeValidator(_blank_is_none)]
_OptStr = Annotated[StrictStr | None, BeforeValidator(_blank_is_none)]
_Count = Annotated[StrictInt, Range(0)]
_AtLeast1 = Annotated[StrictInt, Range(1)]
_AtLeast10 = Annotated[StrictInt, Range(10)]
_Ms10s = Annotated[StrictInt, Range(10_000)]
_Ms1min = Annotated[StrictInt, Range(60_000)]
_Ms5min = Annotated[StrictInt, Range(300_000)]

# ---------------------------------------------------------------------------------------------
# Models


class _Frozen(BaseModel):
    """Immutable and tolerant: unknown keys are reported by the loader, not rejected here."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    _ignored: ClassVar[Mapping[str, str | None]] = {}
    """Keys read and ignored: None = silently (upstream knows them), else the warning to give."""


class RuntimeFallbackConfig(_Frozen):
    """``runtime_fallback``: when a session moves down its chain, and how often."""

    _ignored = {"session_timeout_ms": None}
    enabled: StrictBool = True
    retry_on_errors: tuple[Annotated[StrictInt, Range(100, 599)], ...] = DEFAULT_RETRY_ON_ERRORS
    max_fallback_attempts: Annotated[StrictInt, Range(1, 20)] = 3
    cooldown_seconds: Annotated[StrictFloat, Range(0)] = 60
    timeout_seconds: Annotated[StrictFloat, Range(0)] = 30
    notify_on_fallback: StrictBool = True
    restore_primary_after_cooldown: StrictBool = True
    """The next user turn of a session moved off its primary goes back to it once it has cooled."""


_INFERENCE_FIELDS = ("temperature", "top_p", "maxTokens", "thinking", "reasoningEffort", "textVerbosity",
                     "tools", "max_prompt_tokens", "is_unstable_agent")


class _ModelChoice(_Frozen):
    """Fields agents and categories share: a primary model and a chain."""

    model: _OptModel = None
    models: _Chain = None
    """4.x form ``[primary, fallback…]``."""
    fallback_models: _Chain = None
    variant: _OptStr = None
    prompt_append: _OptStr = None
    description: _OptStr = None
    disable: StrictBool = False

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


_CostRatio = Annotated[StrictFloat, Range(0)]


class AgentConfig(_ModelChoice):
    """``agents.<name>``: any agent name, opencode's own or custom."""

    _ignored = dict.fromkeys(_INFERENCE_FIELDS + ("skills", "prompt", "mode", "color", "permission",
                                                  "providerOptions", "ultrawork", "compaction"))
    category: _OptStr = None
    max_cost_ratio: _CostRatio | None = None
    """This agent's spend guard; overrides ``baton.max_cost_ratio``."""


class CategoryConfig(_ModelChoice):
    """``categories.<name>``: model, chain and prompt of a task category."""

    _ignored = dict.fromkeys(_INFERENCE_FIELDS)


class CircuitBreakerConfig(_Frozen):
    """``background_task.circuitBreaker``: stops a subagent that loops on tool calls."""

    enabled: StrictBool = True
    max_tool_calls: _AtLeast10 | None = Field(default=None, alias="maxToolCalls")
    consecutive_threshold: Annotated[StrictInt, Range(5)] = Field(default=20, alias="consecutiveThreshold")


class BackgroundTaskConfig(_Frozen):
    """``background_task``: concurrency, timeouts and spawn limits (durations in ms)."""

    default_concurrency: _Count = Field(default=5, alias="defaultConcurrency")
    provider_concurrency: dict[str, _Count] = Field(default_factory=dict, alias="providerConcurrency")
    model_concurrency: dict[str, _Count] = Field(default_factory=dict, alias="modelConcurrency")
    stale_timeout_ms: _Ms1min = Field(default=180_000, alias="staleTimeoutMs")
    message_staleness_timeout_ms: _Ms1min = Field(default=1_800_000, alias="messageStalenessTimeoutMs")
    sync_poll_timeout_ms: _Ms1min = Field(default=600_000, alias="syncPollTimeoutMs")
    max_depth: _AtLeast1 = Field(default=3, alias="maxDepth")
    max_descendants: _AtLeast1 = Field(default=50, alias="maxDescendants")
    task_ttl_ms: _Ms5min = Field(default=1_800_000, alias="taskTtlMs")
    session_gone_timeout_ms: _Ms10s = Field(default=60_000, alias="sessionGoneTimeoutMs")
    task_cleanup_delay_ms: _Ms1min = Field(default=600_000, alias="taskCleanupDelayMs")
    max_tool_calls: _AtLeast10 = Field(default=4_000, alias="maxToolCalls")
    circuit_breaker: CircuitBreakerConfig = Field(default=CircuitBreakerConfig(), alias="circuitBreaker")

    @field_validator("provider_concurrency", "model_concurrency")
    @classmethod
    def _normalize_keys(cls, limits: dict[str, int]) -> dict[str, int]:
        """Limits are looked up by trimmed, lower-cased key (spec §5.3): store them that way."""
        return {key.strip().lower(): value for key, value in limits.items()}

    @property
    def tool_call_cap(self) -> int | None:
        """Tool calls a task may make (§9 T5): the breaker's cap wins; None when the breaker is off."""
        if not self.circuit_breaker.enabled:
            return None
        return self.circuit_breaker.max_tool_calls or self.max_tool_calls


class BatonConfig(_Frozen):
    """``baton``: baton's own additions, which oh-my-opencode does not know."""

    fallback_models: _Chain = None
    """Default chain for a session no other rule covers."""
    model_fallbacks: dict[_ModelName, _Chain] = Field(default_factory=dict)
    """Chain per primary model, exact ``provider/model`` match."""
    category_agent: Annotated[StrictStr, StringConstraints(strip_whitespace=True, min_length=1)] = (
        DEFAULT_CATEGORY_AGENT
    )
    park_when_exhausted: StrictBool = True
    """With no usable model in the chain, hold the turn and re-send it when the first model cools."""
    max_park_seconds: Annotated[StrictFloat, Range(0)] = 6 * 3600
    """A park that would last longer is not made (the journal says why)."""
    max_cooldown_seconds: Annotated[StrictFloat, Range(1)] = 24 * 3600
    """Cap on a cooldown learnt from the provider's reset time."""
    max_cost_ratio: _CostRatio | None = None
    """Spend guard: skip a chain model costing more than this ratio of the failing model's. None: off."""
    on_context_overflow: Literal["off", "larger-model"] = "off"
    """``larger-model``: a context overflow moves the session to the next chain model with a larger window."""


_UPSTREAM_KEYS = (
    "new_task_system_enabled", "default_run_agent", "disabled_mcps", "disabled_skills", "disabled_commands",
    "disabled_tools", "claude_code", "sisyphus_agent", "sisyphus", "comment_checker", "experimental",
    "auto_update", "skills", "ralph_loop", "notification", "babysitting", "git_master", "lsp", "mcp",
    "browser_automation_engine", "websearch", "tmux", "start_work", "hashline_edit",
)


class Config(_Frozen):
    """Everything baton reads, merged from all files, plus where it came from."""

    _ignored = dict.fromkeys(_UPSTREAM_KEYS)
    _internal: ClassVar[frozenset[str]] = frozenset({"sources", "warnings", "runtime_fallback_explicit"})
    """Fields the loader fills in; a file cannot set them."""

    runtime_fallback: Annotated[
        RuntimeFallbackConfig,
        BeforeValidator(_section_shape, json_schema_input_type=bool | RuntimeFallbackConfig),
    ] = RuntimeFallbackConfig()
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    categories: dict[str, CategoryConfig] = Field(default_factory=dict)
    background_task: BackgroundTaskConfig = BackgroundTaskConfig()
    baton: BatonConfig = BatonConfig()
    disabled_hooks: tuple[StrictStr, ...] = ()
    disabled_agents: tuple[StrictStr, ...] = ()
    model_fallback: StrictBool = False
    """Upstream's legacy fallback hook; read only to warn that baton has one policy."""
    sources: SkipJsonSchema[tuple[Path, ...]] = ()
    """Files read, lowest precedence first."""
    warnings: SkipJsonSchema[tuple[str, ...]] = ()
    """One line per problem that did not stop loading; the CLI decides how to show them."""
    runtime_fallback_explicit: SkipJsonSchema[bool] = False
    """A file itself turns ``runtime_fallback`` on: what upstream's plugin (default off) acts on."""
    _agent_memo: Any = PrivateAttr(None)
    """Agent-name index, built by :func:`baton.chains.agent_key_for` on first use."""

    def max_cost_ratio_for(self, agent_key: str | None) -> float | None:
        """The spend guard for an agent: its own ``max_cost_ratio``, else ``baton.max_cost_ratio``;
        None: off."""
        agent = self.agents.get(agent_key) if agent_key else None
        own = agent.max_cost_ratio if agent is not None else None
        return own if own is not None else self.baton.max_cost_ratio
