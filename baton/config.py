"""Configuration: the user's existing oh-my-opencode file, read with the same keys.

baton reads the keys it implements (``runtime_fallback``, ``background_task``, the model and
chain fields of ``agents`` and ``categories``) plus its own ``baton`` key, tolerates the other
keys oh-my-opencode knows, and warns once about anything else. A bad file is a
:class:`ConfigError` naming file, line, column and key: upstream silently dropped an invalid
section, which quietly turned the feature off.

Files are searched and merged as ``docs/behaviour/runtime-fallback.md`` §2.1 describes. Each file is
validated on its own first, so that an error names the file it is in; the merged result is
then validated once more into the frozen :class:`Config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from baton._jsonc_locate import (
    ConfigError,
    JsoncFile,
    Range,
    Segment,
    drop_nulls,
    key_path,
    load_jsonc,
    printable,
    show_value,
    unknown_keys,
    validate,
)
from baton.fallback.errors import DEFAULT_RETRY_ON_ERRORS

__all__ = [
    "DEFAULT_CATEGORY_AGENT",
    "OPENCODE_SECTION",
    "AgentConfig",
    "BackgroundTaskConfig",
    "BatonConfig",
    "CategoryConfig",
    "CircuitBreakerConfig",
    "Config",
    "ConfigError",
    "RuntimeFallbackConfig",
    "json_schema",
    "load_config",
    "printable",
]

DEFAULT_CATEGORY_AGENT = "general"
"""Agent that runs category tasks: opencode's own, present without the plugin."""
OPENCODE_SECTION = "[opencode]"
"""Top-level key of a 4.x ``omo.jsonc`` that holds the settings for opencode."""

_HOOK_NAME = "runtime-fallback"
_DEEP_KEYS = frozenset({"agents", "categories", "baton"})
_OBJECT_ENTRY_NOTE = 'chain entries written as objects are read as their "model"; other fields are ignored'

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

    _ignored = {
        "restore_primary_after_cooldown": "not implemented by baton; a session stays on the model it "
        "moved to until its fallback state is reset",
        "session_timeout_ms": None,
    }
    enabled: StrictBool = True
    retry_on_errors: tuple[Annotated[StrictInt, Range(100, 599)], ...] = DEFAULT_RETRY_ON_ERRORS
    max_fallback_attempts: Annotated[StrictInt, Range(1, 20)] = 3
    cooldown_seconds: Annotated[StrictFloat, Range(0)] = 60
    timeout_seconds: Annotated[StrictFloat, Range(0)] = 30
    notify_on_fallback: StrictBool = True


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


class AgentConfig(_ModelChoice):
    """``agents.<name>``: any agent name, opencode's own or custom."""

    _ignored = dict.fromkeys(_INFERENCE_FIELDS + ("skills", "prompt", "mode", "color", "permission",
                                                  "providerOptions", "ultrawork", "compaction"))
    category: _OptStr = None


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


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(
    project_dir: Path | None,
    *,
    explicit: Path | None = None,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Config:
    """Search, read, validate and merge the config files; no files at all gives the defaults.

    ``explicit`` (``--config``) replaces the search. ``env`` and ``home`` default to the
    process's; tests pass both so that they never read the developer's own files.
    """
    env = os.environ if env is None else env
    home = home if home is not None else Path(env.get("HOME") or Path.home())
    warnings: list[str] = []
    if explicit is not None:  # anything but a readable regular file is an error, named as what it is
        files = [_read(explicit, None, warnings)]
    else:
        files = []
        for legacy, omo, level in _search(project_dir, env, home):
            if legacy is not None and omo is not None:
                warnings.append(f"{level} settings: both {legacy} and {omo} exist; {omo.name} takes precedence "
                                "(4.x migrates the legacy file into it, so that copy is likely stale)")
            files += [_read(path, path is omo, warnings) for path in (legacy, omo) if path is not None]
    merged: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    checked: tuple[dict[str, Any], Config] | None = None
    for file in files:
        keys = _file_keys(file.settings)
        checked = keys, validate(Config, keys, file)
        _collect_warnings(file, warnings, seen)
        _merge(merged, file.settings)
    return _finish(merged, files, warnings, checked if len(files) == 1 else None)


_Opt = Path | None


def _search(project_dir: Path | None, env: Mapping[str, str], home: Path) -> list[tuple[_Opt, _Opt, str]]:
    """(legacy file, 4.x file, level name) for the user level, then the project level."""
    if env.get("OPENCODE_CONFIG_DIR"):
        user_dir = Path(env["OPENCODE_CONFIG_DIR"])
    elif env.get("XDG_CONFIG_HOME"):
        user_dir = Path(env["XDG_CONFIG_HOME"]) / "opencode"
    else:
        user_dir = home / ".config" / "opencode"
    levels = [(_legacy_file(user_dir), _file(home / ".omo" / "omo.jsonc"), "user")]
    if project_dir is not None:
        levels.append((_legacy_file(project_dir / ".opencode"), _nearest_omo(project_dir, home), "project"))
    seen: set[Path] = set()
    result: list[tuple[_Opt, _Opt, str]] = []
    for legacy, omo, level in levels:  # a file reached from both levels is read once, as the user's
        kept = [None if p is None or p.resolve() in seen else p for p in (legacy, omo)]
        seen.update(p.resolve() for p in kept if p is not None)
        result.append((kept[0], kept[1], level))
    return result


def _file(path: Path) -> Path | None:
    return path if path.is_file() else None


def _legacy_file(directory: Path) -> Path | None:
    return _file(directory / "oh-my-opencode.jsonc") or _file(directory / "oh-my-opencode.json")


def _nearest_omo(start: Path, home: Path) -> Path | None:
    """4.x looks from the project directory upward and stops at HOME (whose file is the user's)."""
    home, start = Path(os.path.abspath(home)), Path(os.path.abspath(start))
    for directory in (start, *start.parents):
        if directory == home:
            return None
        if found := _file(directory / ".omo" / "omo.jsonc"):
            return found
    return None


def _read(path: Path, section: bool | None, warnings: list[str]) -> JsoncFile:
    """One file's settings; ``section`` True/False = 4.x/legacy, None = decide by ``"[opencode]"``."""
    source, data = load_jsonc(path)
    if section is None:
        section = OPENCODE_SECTION in data
    if not section:
        return JsoncFile(path, source, (), _clean(data))
    top = JsoncFile(path, source, (), data)
    settings = data.get(OPENCODE_SECTION)
    if not isinstance(settings, dict | None):
        raise top.error((OPENCODE_SECTION,), "must be an object")
    stray = [k for k in data if k in Config.model_fields or k in Config._ignored]
    if stray:
        note = f'settings outside "{OPENCODE_SECTION}" are ignored in this file'
        warnings.append(top.warning((stray[0],), note))
    return JsoncFile(path, source, (OPENCODE_SECTION,), _clean(settings or {}))


def _clean(settings: dict[str, Any]) -> dict[str, Any]:
    """Drop nulls and the keys that are not settings: 4.x bookkeeping (``_migrations``), ``$schema``."""
    return {k: drop_nulls(v) for k, v in settings.items() if v is not None and k[:1] not in ("_", "$")}


def _file_keys(settings: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in Config._internal}


def _collect_warnings(file: JsoncFile, warnings: list[str], seen: set[tuple[str, str]]) -> None:
    """Unknown keys, keys with a note, and chain entries written as objects: one line each.

    ``seen`` holds the (key path, message) pairs already reported, so that a key repeated in a
    second file is not reported twice; the object-entry note is given once in all.
    """
    found = unknown_keys(file.settings, Config)
    found += [(keys, _OBJECT_ENTRY_NOTE) for keys in _object_entries(file.settings)]
    for keys, message in found:
        ident = ("", message) if message == _OBJECT_ENTRY_NOTE else (key_path(keys), message)
        if ident not in seen:
            seen.add(ident)
            warnings.append(file.warning(keys, message))


def _object_entries(settings: Mapping[str, Any]) -> list[tuple[Segment, ...]]:
    """Places where a chain lists an object ``{model: …}`` with more than a model in it."""
    chains: list[tuple[tuple[Segment, ...], object]] = []
    for section in ("agents", "categories"):
        for name, entry in _as_dict(settings.get(section)).items():
            if isinstance(entry, dict):
                chains += [((section, name, k), entry[k]) for k in ("fallback_models", "models")
                           if isinstance(entry.get(k), list)]
    baton = _as_dict(settings.get("baton"))
    chains.append((("baton", "fallback_models"), baton.get("fallback_models")))
    per_model = _as_dict(baton.get("model_fallbacks"))
    chains += [(("baton", "model_fallbacks", model), chain) for model, chain in per_model.items()]
    return [(*keys, i) for keys, chain in chains if isinstance(chain, list)
            for i, item in enumerate(chain) if isinstance(item, dict) and set(item) - {"model"}]


def _as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _merge(into: dict[str, Any], settings: Mapping[str, Any]) -> None:
    """The higher file wins per top-level key; ``agents``/``categories``/``baton`` merge deeply."""
    for key, value in settings.items():
        if key == "disabled_hooks":  # validated: a list of strings
            into[key] = list(dict.fromkeys([*into.get(key, []), *value]))
        elif key in _DEEP_KEYS:
            into[key] = _deep_merge(into.get(key), value)
        else:
            into[key] = value


def _deep_merge(lower: object, higher: object) -> object:
    """Objects merge recursively; anything else (lists too) is replaced."""
    if isinstance(lower, dict) and isinstance(higher, dict):
        return {**lower, **{key: _deep_merge(lower.get(key), value) for key, value in higher.items()}}
    return higher


def _finish(merged: dict[str, Any], files: Sequence[JsoncFile], warnings: list[str],
            checked: tuple[dict[str, Any], Config] | None) -> Config:
    """Apply the rules that span keys, and build the final Config (``checked``'s if nothing changed)."""
    section = merged.get("runtime_fallback")
    explicit = section is True or (isinstance(section, dict) and section.get("enabled") is True)
    if _HOOK_NAME in merged.get("disabled_hooks", ()):
        explicit = False
        shaped = _section_shape(section if section is not None else {})
        merged["runtime_fallback"] = {**shaped, "enabled": False} if isinstance(shaped, dict) else shaped
        warnings.append(f'runtime fallback is off: disabled_hooks lists "{_HOOK_NAME}"')
    if merged.get("model_fallback") is True:
        warnings.append("model_fallback: true has no effect here: baton has one fallback policy "
                        "(runtime_fallback); turn it off so that oh-my-opencode does not run its own")
    keys = _file_keys(merged)  # one file unchanged: its Config stands (validating is most of a big file's time)
    config = checked[1] if checked is not None and keys == checked[0] else validate(
        Config, keys, files[0] if len(files) == 1 else None)
    return config.model_copy(update={
        "sources": tuple(file.path for file in files),
        "warnings": tuple(warnings),
        "runtime_fallback_explicit": explicit,
    })


# ---------------------------------------------------------------------------------------------
# Reporting


def json_schema() -> dict[str, object]:
    """JSON Schema of the keys baton reads (other keys are allowed: they only warn)."""
    schema: dict[str, object] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(Config.model_json_schema(by_alias=True, mode="validation"))
    schema["title"] = "baton configuration (the oh-my-opencode keys baton reads)"
    return schema
