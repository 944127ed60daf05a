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

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from baton._jsonc_locate import (
    ConfigError,
    JsoncFile,
    Segment,
    drop_nulls,
    key_path,
    load_jsonc,
    printable,
    unknown_keys,
    validate,
)
from baton.settings import (
    DEFAULT_CATEGORY_AGENT,
    AgentConfig,
    BackgroundTaskConfig,
    BatonConfig,
    CategoryConfig,
    CircuitBreakerConfig,
    Config,
    RuntimeFallbackConfig,
    _section_shape,
)
from baton.validation import json_schema as model_json_schema

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

OPENCODE_SECTION = "[opencode]"
"""Top-level key of a 4.x ``omo.jsonc`` that holds the settings for opencode."""

_HOOK_NAME = "runtime-fallback"
_DEEP_KEYS = frozenset({"agents", "categories", "baton"})
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(Config) if not f.name.startswith("_"))
"""Config's top-level keys (loader-only ones too): set outside "[opencode]" they are stray."""
_OBJECT_ENTRY_NOTE = 'chain entries written as objects are read as their "model"; other fields are ignored'

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
        checked = file.settings, validate(Config, file.settings, file)
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
    """``path`` if it is a file; a place that cannot even be looked at is a ConfigError naming it."""
    try:
        return path if path.is_file() else None
    except OSError as exc:  # not "no such file" (is_file says False): a path too long, no permission
        raise ConfigError(path, None, None, None, f"cannot read: {exc.strerror or exc}") from None


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
    stray = [k for k in data if k in _CONFIG_FIELDS or k in Config._ignored]
    if stray:
        note = f'settings outside "{OPENCODE_SECTION}" are ignored in this file'
        warnings.append(top.warning((stray[0],), note))
    return JsoncFile(path, source, (OPENCODE_SECTION,), _clean(settings or {}))


def _clean(settings: dict[str, Any]) -> dict[str, Any]:
    """Drop nulls and the keys that are not settings: 4.x bookkeeping (``_migrations``), ``$schema``."""
    return {k: drop_nulls(v) for k, v in settings.items() if v is not None and k[:1] not in ("_", "$")}


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
    # one file unchanged: its Config stands (validating is most of a big file's time)
    config = checked[1] if checked is not None and merged == checked[0] else validate(
        Config, merged, files[0] if len(files) == 1 else None)
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
    schema.update(model_json_schema(Config))
    schema["title"] = "baton configuration (the oh-my-opencode keys baton reads)"
    return schema
