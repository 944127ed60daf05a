"""Config files: search, merge, validation with file:line:column errors, agent names, chains."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from baton._jsonc_locate import locate
from baton.chains import ResolvedChain, agent_key_for, agent_primary_model, describe, resolve_chain
from baton.config import Config, ConfigError, json_schema, load_config
from baton.fallback.errors import DEFAULT_RETRY_ON_ERRORS


@pytest.fixture(name="home")
def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture(name="project")
def _project(home: Path) -> Path:
    project = home / "work" / "proj"
    project.mkdir(parents=True)
    return project


def write(path: Path, content: str | dict[str, object]) -> Path:
    """Write a config file (dicts as JSON), creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")
    return path


def user_file(home: Path, suffix: str = "jsonc") -> Path:
    return home / ".config" / "opencode" / f"oh-my-opencode.{suffix}"


def project_file(project: Path, suffix: str = "jsonc") -> Path:
    return project / ".opencode" / f"oh-my-opencode.{suffix}"


def load(
    project: Path | None, home: Path, *, explicit: Path | None = None, env: dict[str, str] | None = None
) -> Config:
    """Load with an empty environment (unless given) so nothing outside tmp_path is read."""
    return load_config(project, explicit=explicit, env=env or {}, home=home)


def position(text: str, needle: str) -> tuple[int, int]:
    """1-based line and column of the first occurrence of needle."""
    offset = text.index(needle)
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


def config_of(data: dict[str, object], tmp_path: Path) -> Config:
    """A Config read from one explicit file holding data."""
    return load_config(None, explicit=write(tmp_path / "cfg.json", data), env={}, home=tmp_path)


# --- defaults and search ---------------------------------------------------------------------


def test_no_files_gives_defaults(project: Path, home: Path) -> None:
    """Without any file every value is its default and nothing is reported."""
    config = load(project, home)
    assert config.sources == ()
    assert config.warnings == ()
    rf = config.runtime_fallback
    assert (rf.enabled, rf.retry_on_errors, rf.max_fallback_attempts) == (True, DEFAULT_RETRY_ON_ERRORS, 3)
    assert (rf.cooldown_seconds, rf.timeout_seconds, rf.notify_on_fallback) == (60, 30, True)
    bt = config.background_task
    assert (bt.default_concurrency, bt.stale_timeout_ms, bt.message_staleness_timeout_ms) == (5, 180_000, 1_800_000)
    assert (bt.sync_poll_timeout_ms, bt.max_depth, bt.max_descendants) == (600_000, 3, 50)
    assert (bt.task_ttl_ms, bt.session_gone_timeout_ms, bt.task_cleanup_delay_ms) == (1_800_000, 60_000, 600_000)
    assert (bt.max_tool_calls, bt.circuit_breaker.consecutive_threshold, bt.tool_call_cap) == (4_000, 20, 4_000)
    assert config.baton.category_agent == "general"
    assert config.baton.fallback_models is None
    assert (config.agents, config.categories, config.model_fallback) == ({}, {}, False)
    assert not config.runtime_fallback_explicit


def test_project_dir_none_reads_user_files_only(home: Path) -> None:
    """Without a project directory only the user level is searched."""
    path = write(user_file(home), {"runtime_fallback": {"cooldown_seconds": 5}})
    config = load(None, home)
    assert config.sources == (path,)
    assert config.runtime_fallback.cooldown_seconds == 5


def test_user_dir_honours_opencode_config_dir_then_xdg(tmp_path: Path, home: Path) -> None:
    """$OPENCODE_CONFIG_DIR beats $XDG_CONFIG_HOME/opencode, which beats ~/.config/opencode."""
    write(user_file(home), {"runtime_fallback": {"cooldown_seconds": 1}})
    xdg = write(tmp_path / "xdg" / "opencode" / "oh-my-opencode.json", {"runtime_fallback": {"cooldown_seconds": 2}})
    own = write(tmp_path / "own" / "oh-my-opencode.json", {"runtime_fallback": {"cooldown_seconds": 3}})
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert load(None, home, env=env).sources == (xdg,)
    env["OPENCODE_CONFIG_DIR"] = str(tmp_path / "own")
    assert load(None, home, env=env).sources == (own,)
    assert load(None, home, env=env).runtime_fallback.cooldown_seconds == 3


def test_file_reached_from_both_levels_is_read_once(project: Path, home: Path) -> None:
    """When $OPENCODE_CONFIG_DIR is the project's .opencode, that file is read once."""
    path = write(project_file(project), {"disabled_hooks": ["x"]})
    config = load(project, home, env={"OPENCODE_CONFIG_DIR": str(project / ".opencode")})
    assert config.sources == (path,)


def test_jsonc_is_preferred_over_json(project: Path, home: Path) -> None:
    """Of oh-my-opencode.jsonc and .json in one directory only the .jsonc is read."""
    jsonc = write(project_file(project), {"runtime_fallback": {"cooldown_seconds": 1}})
    write(project_file(project, "json"), {"runtime_fallback": {"cooldown_seconds": 2}})
    config = load(project, home)
    assert config.sources == (jsonc,)
    assert config.runtime_fallback.cooldown_seconds == 1


# --- precedence and merge --------------------------------------------------------------------


def test_project_replaces_user_runtime_fallback_whole(project: Path, home: Path) -> None:
    """runtime_fallback merges shallowly: the project object replaces the user's entirely."""
    user = write(user_file(home), {"runtime_fallback": {"cooldown_seconds": 10, "max_fallback_attempts": 5}})
    proj = write(project_file(project), {"runtime_fallback": {"max_fallback_attempts": 7}})
    config = load(project, home)
    assert config.sources == (user, proj)
    assert config.runtime_fallback.max_fallback_attempts == 7
    assert config.runtime_fallback.cooldown_seconds == 60


def test_agents_categories_and_baton_merge_deeply(project: Path, home: Path) -> None:
    """agents, categories and baton merge recursively while lists are replaced, not joined."""
    write(user_file(home), {
        "agents": {"build": {"model": "u/build", "fallback_models": ["u/a", "u/b"]}, "plan": {"model": "u/plan"}},
        "categories": {"quick": {"model": "u/quick", "fallback_models": "u/q"}},
        "baton": {"fallback_models": ["u/default"], "category_agent": "helper"},
        "disabled_agents": ["oracle"],
    })
    write(project_file(project), {
        "agents": {"build": {"fallback_models": ["p/c"]}},
        "categories": {"deep": {"model": "p/deep"}},
        "baton": {"model_fallbacks": {"p/m": ["p/n"]}},
        "disabled_agents": ["librarian"],
    })
    config = load(project, home)
    assert config.agents["build"].model == "u/build"
    assert config.agents["build"].fallback_models == ("p/c",)
    assert config.agents["plan"].model == "u/plan"
    assert set(config.categories) == {"quick", "deep"}
    assert config.categories["quick"].fallback_models == ("u/q",)
    assert config.baton.fallback_models == ("u/default",)
    assert config.baton.category_agent == "helper"
    assert config.baton.model_fallbacks == {"p/m": ("p/n",)}
    assert config.disabled_agents == ("librarian",)


def test_null_in_higher_file_is_ignored(project: Path, home: Path) -> None:
    """A null value in the project file leaves the user's value in place."""
    write(user_file(home), {"runtime_fallback": {"cooldown_seconds": 9}, "agents": {"build": {"model": "u/m"}}})
    write(project_file(project), {"runtime_fallback": None, "agents": {"build": {"model": None, "variant": "x"}}})
    config = load(project, home)
    assert config.runtime_fallback.cooldown_seconds == 9
    assert config.agents["build"].model == "u/m"
    assert config.agents["build"].variant == "x"


def test_disabled_hooks_are_the_union_of_all_files(project: Path, home: Path) -> None:
    """disabled_hooks collects the entries of every file, each once, in order."""
    write(user_file(home), {"disabled_hooks": ["a", "b"]})
    write(project_file(project), {"disabled_hooks": ["b", "c"]})
    assert load(project, home).disabled_hooks == ("a", "b", "c")


# --- 4.x files -------------------------------------------------------------------------------


def test_user_4x_file_is_read_from_its_opencode_section(home: Path) -> None:
    """~/.omo/omo.jsonc settings sit under "[opencode]"; bookkeeping and other hosts are ignored."""
    path = write(home / ".omo" / "omo.jsonc", {
        "_migrations": ["x"], "[claude]": {"anything": 1},
        "[opencode]": {"runtime_fallback": {"cooldown_seconds": 4}, "_version": 2, "$schema": "s"},
    })
    config = load(None, home)
    assert config.sources == (path,)
    assert config.runtime_fallback.cooldown_seconds == 4
    assert config.warnings == ()


def test_4x_file_wins_over_legacy_at_the_same_level(project: Path, home: Path) -> None:
    """At one level the 4.x file overrides the legacy one, and having both is warned about once."""
    legacy = write(user_file(home), {"runtime_fallback": {"cooldown_seconds": 1}, "disabled_agents": ["x"]})
    omo = write(home / ".omo" / "omo.jsonc", {"[opencode]": {"runtime_fallback": {"cooldown_seconds": 2}}})
    config = load(project, home)
    assert config.sources == (legacy, omo)
    assert config.runtime_fallback.cooldown_seconds == 2
    assert config.disabled_agents == ("x",)
    [warning] = config.warnings
    assert str(legacy) in warning and str(omo) in warning and warning.startswith("user settings")


def test_project_level_4x_and_legacy_warn_and_project_legacy_beats_user_4x(project: Path, home: Path) -> None:
    """Order is user legacy < user 4.x < project legacy < project 4.x."""
    write(home / ".omo" / "omo.jsonc", {"[opencode]": {"runtime_fallback": {"cooldown_seconds": 2}}})
    write(project_file(project), {"runtime_fallback": {"cooldown_seconds": 3}, "model_fallback": False})
    assert load(project, home).runtime_fallback.cooldown_seconds == 3
    write(project / ".omo" / "omo.jsonc", {"[opencode]": {"runtime_fallback": {"cooldown_seconds": 4}}})
    config = load(project, home)
    assert config.runtime_fallback.cooldown_seconds == 4
    assert [w for w in config.warnings if w.startswith("project settings")]


def test_project_4x_file_is_searched_upward_nearest_first(project: Path, home: Path) -> None:
    """.omo/omo.jsonc is looked for from the project directory upward; the nearest one wins."""
    far = write(home / "work" / ".omo" / "omo.jsonc", {"[opencode]": {"runtime_fallback": {"cooldown_seconds": 1}}})
    near = write(project / ".omo" / "omo.jsonc", {"[opencode]": {"runtime_fallback": {"cooldown_seconds": 2}}})
    sub = project / "src"
    sub.mkdir()
    assert load(sub, home).sources == (near,)
    near.unlink()
    assert load(sub, home).sources == (far,)


def test_upward_search_stops_at_home(project: Path, home: Path) -> None:
    """The search stops below HOME, so ~/.omo/omo.jsonc is read once, as the user file."""
    path = write(home / ".omo" / "omo.jsonc", {"[opencode]": {}})
    assert load(project, home).sources == (path,)
    assert load(home, home).sources == (path,)


def test_settings_outside_the_opencode_section_are_warned_about(home: Path) -> None:
    """A 4.x file with settings at its top level gets a warning that they are ignored."""
    write(home / ".omo" / "omo.jsonc", {"runtime_fallback": {"enabled": False}})
    config = load(None, home)
    assert config.runtime_fallback.enabled is True
    assert any('outside "[opencode]"' in w for w in config.warnings)


# --- --config --------------------------------------------------------------------------------


def test_explicit_config_replaces_the_search(project: Path, home: Path, tmp_path: Path) -> None:
    """--config PATH is the only file read; the others are not even parsed."""
    write(user_file(home), "{ not json")
    write(project_file(project), "{ not json")
    path = write(tmp_path / "mine.jsonc", {"runtime_fallback": {"cooldown_seconds": 7}})
    config = load(project, home, explicit=path)
    assert config.sources == (path,)
    assert config.runtime_fallback.cooldown_seconds == 7


def test_explicit_config_with_opencode_section(project: Path, home: Path, tmp_path: Path) -> None:
    """An explicit file with a top-level "[opencode]" is read from inside that key."""
    path = write(tmp_path / "omo.jsonc", {"_migrations": [], "[opencode]": {"runtime_fallback": False}})
    assert load(project, home, explicit=path).runtime_fallback.enabled is False


def test_explicit_config_missing_is_an_error(home: Path, tmp_path: Path) -> None:
    """A --config file that does not exist is reported, not replaced by defaults."""
    with pytest.raises(ConfigError, match="no such file") as caught:
        load(None, home, explicit=tmp_path / "absent.json")
    assert caught.value.path == tmp_path / "absent.json"


# --- format and errors -----------------------------------------------------------------------


def test_jsonc_comments_and_trailing_commas(project: Path, home: Path) -> None:
    """Comments (even ones that look like keys) and trailing commas are accepted."""
    write(project_file(project), """{
  // "runtime_fallback": {"cooldown_seconds": 1},
  /* block { comment */ "runtime_fallback": {
    "cooldown_seconds": 12, // trailing comment
  },
  "categories": {"quick": {"description": "see http://example.com/*x*/", "model": "p/q",},},
}""")
    config = load(project, home)
    assert config.runtime_fallback.cooldown_seconds == 12
    assert config.categories["quick"].description == "see http://example.com/*x*/"


def test_syntax_error_reports_line_and_column(project: Path, home: Path) -> None:
    """A syntax error names the file, line and column json5 found."""
    text = '{\n  "runtime_fallback": {\n    "enabled": true, "cooldown_seconds": @5\n  }\n}'
    path = write(project_file(project), text)
    with pytest.raises(ConfigError) as caught:
        load(project, home)
    error = caught.value
    line, column = position(text, "@")
    assert (error.path, error.line, error.column, error.key) == (path, line, column, None)
    assert str(error) == f'{path}:{line}:{column}: syntax error: unexpected "@"'
    assert "\n" not in str(error)


def test_out_of_bounds_value_reports_file_line_column_and_key(project: Path, home: Path) -> None:
    """An out-of-bounds value is fatal, with the value's position and key path in one line."""
    text = '{\n  // attempts\n  "runtime_fallback": {\n    "enabled": true, "max_fallback_attempts": 50\n  }\n}'
    path = write(project_file(project), text)
    with pytest.raises(ConfigError) as caught:
        load(project, home)
    line, column = position(text, "50")
    assert str(caught.value) == (
        f"{path}:{line}:{column}: runtime_fallback.max_fallback_attempts: must be between 1 and 20 (got 50)"
    )
    assert (caught.value.line, caught.value.column) == (line, column)
    assert caught.value.key == "runtime_fallback.max_fallback_attempts"
    assert caught.value.reason == "must be between 1 and 20 (got 50)"


@pytest.mark.parametrize(
    ("section", "body", "key", "reason"),
    [
        ("runtime_fallback", '{"notify_on_fallback": "yes"}', "runtime_fallback.notify_on_fallback",
         'must be true or false (got "yes")'),
        ("runtime_fallback", '{"max_fallback_attempts": 2.5}', "runtime_fallback.max_fallback_attempts",
         "must be an integer (got 2.5)"),
        ("runtime_fallback", '{"cooldown_seconds": -1}', "runtime_fallback.cooldown_seconds",
         "must be at least 0 (got -1)"),
        ("runtime_fallback", '{"retry_on_errors": [429, 42]}', "runtime_fallback.retry_on_errors[1]",
         "must be between 100 and 599 (got 42)"),
        ("runtime_fallback", '"on"', "runtime_fallback", 'must be an object (got "on")'),
        ("background_task", '{"staleTimeoutMs": 1000}', "background_task.staleTimeoutMs",
         "must be at least 60000 (got 1000)"),
        ("background_task", '{"providerConcurrency": {"openai": -2}}', "background_task.providerConcurrency.openai",
         "must be at least 0 (got -2)"),
        ("background_task", '{"circuitBreaker": {"consecutiveThreshold": 1}}',
         "background_task.circuitBreaker.consecutiveThreshold", "must be at least 5 (got 1)"),
        ("agents", '{"build": {"category": 3}}', "agents.build.category", "must be a string (got 3)"),
        ("agents", '{"Sisyphus Prime": {"fallback_models": {"a": 1}}}', 'agents["Sisyphus Prime"].fallback_models',
         "must be a list (got an object)"),
        ("baton", '{"category_agent": " "}', "baton.category_agent", 'must not be empty (got " ")'),
        ("disabled_hooks", '"runtime-fallback"', "disabled_hooks", 'must be a list (got "runtime-fallback")'),
    ],
)
def test_wrong_type_or_bound_is_fatal_with_position(
    project: Path, home: Path, section: str, body: str, key: str, reason: str
) -> None:
    """Each wrong type or bound is a ConfigError naming the offending key and its value's position."""
    text = '{\n  "agents": {},\n  "' + section + '": ' + body + "\n}"
    path = write(project_file(project), text)
    with pytest.raises(ConfigError) as caught:
        load(project, home)
    assert (caught.value.key, caught.value.reason) == (key, reason)
    assert caught.value.path == path
    assert caught.value.line == 3
    assert caught.value.column is not None and caught.value.column >= len(section) + 6


def test_error_names_the_file_it_is_in(project: Path, home: Path) -> None:
    """An error in the user file names the user file even when a project file is read too."""
    user = write(user_file(home), {"runtime_fallback": {"timeout_seconds": "30"}})
    write(project_file(project), {"runtime_fallback": {"timeout_seconds": 10}})
    with pytest.raises(ConfigError) as caught:
        load(project, home)
    assert caught.value.path == user
    assert caught.value.key == "runtime_fallback.timeout_seconds"


def test_error_in_4x_file_points_inside_its_section(home: Path) -> None:
    """Positions in a 4.x file are found under "[opencode]", not at a same-named top-level key."""
    text = ('{\n  "runtime_fallback": {"max_fallback_attempts": 1},\n'
            '  "[opencode]": {\n    "runtime_fallback": {"max_fallback_attempts": 0}\n  }\n}')
    write(home / ".omo" / "omo.jsonc", text)
    with pytest.raises(ConfigError) as caught:
        load(None, home)
    assert (caught.value.line, caught.value.column) == position(text, "0}")
    assert caught.value.key == "runtime_fallback.max_fallback_attempts"


def test_first_error_in_file_order_is_reported(project: Path, home: Path) -> None:
    """With several bad values the one nearest the top of the file is reported."""
    text = '{\n "background_task": {"maxDepth": 0},\n "runtime_fallback": {"max_fallback_attempts": 0}\n}'
    write(project_file(project), text)
    with pytest.raises(ConfigError) as caught:
        load(project, home)
    assert caught.value.key == "background_task.maxDepth"
    assert caught.value.line == 2


def test_top_level_must_be_an_object(project: Path, home: Path) -> None:
    """A file whose top level is not an object is an error, as is a non-object "[opencode]"."""
    write(project_file(project), "[1, 2]")
    with pytest.raises(ConfigError, match="top level must be an object"):
        load(project, home)
    project_file(project).unlink()
    write(project / ".omo" / "omo.jsonc", '{"[opencode]": 3}')
    with pytest.raises(ConfigError, match=r'\["\[opencode\]"\]: must be an object'):
        load(project, home)


# --- chain keys ------------------------------------------------------------------------------


def test_chain_entry_without_slash_is_rejected(project: Path, home: Path) -> None:
    """A chain entry that is not provider/model fails at load time, pointing at the entry."""
    text = '{"agents": {"build": {"fallback_models": ["p/ok", "gpt-4o"]}}}'
    path = write(project_file(project), text)
    with pytest.raises(ConfigError) as caught:
        load(project, home)
    line, column = position(text, '"gpt-4o"')
    assert str(caught.value) == (
        f'{path}:{line}:{column}: agents.build.fallback_models[1]: must be "provider/model" (got "gpt-4o")'
    )


def test_model_fallbacks_key_without_slash_points_at_the_key(project: Path, home: Path) -> None:
    """A baton.model_fallbacks key that is not provider/model is reported at the key itself."""
    text = '{"baton": {"model_fallbacks": {"p/fine": "q/x", "gpt": ["q/y"]}}}'
    write(project_file(project), text)
    with pytest.raises(ConfigError) as caught:
        load(project, home)
    assert caught.value.key == "baton.model_fallbacks.gpt"
    assert (caught.value.line, caught.value.column) == position(text, '"gpt"')


def test_primary_model_without_slash_is_rejected(tmp_path: Path) -> None:
    """An agent's model must be provider/model as well."""
    with pytest.raises(ConfigError, match=r'agents\.build\.model: must be "provider/model"'):
        config_of({"agents": {"build": {"model": "sonnet"}}}, tmp_path)


def test_string_chain_is_one_entry_and_empty_string_is_unset(tmp_path: Path) -> None:
    """A string chain is a one-element list; "" counts as not set."""
    config = config_of({"agents": {"a": {"fallback_models": "p/x"}, "b": {"fallback_models": "", "model": ""}}},
                       tmp_path)
    assert config.agents["a"].fallback_models == ("p/x",)
    assert config.agents["b"].fallback_models is None
    assert config.agents["b"].model is None


def test_object_entries_read_as_their_model_with_one_warning(tmp_path: Path) -> None:
    """{model, variant} chain entries become their model; the ignored fields are warned about once."""
    config = config_of({
        "agents": {"a": {"fallback_models": [{"model": "p/x", "variant": "high"}, "p/y", {"model": "p/z"}]}},
        "baton": {"fallback_models": [{"model": "p/d", "variant": "low"}]},
    }, tmp_path)
    assert config.agents["a"].fallback_models == ("p/x", "p/y", "p/z")
    assert config.baton.fallback_models == ("p/d",)
    notes = [w for w in config.warnings if "read as their" in w]
    assert len(notes) == 1
    assert "agents.a.fallback_models[0]" in notes[0]


def test_object_entry_without_model_is_rejected(tmp_path: Path) -> None:
    """An object entry must carry a model."""
    with pytest.raises(ConfigError, match=r'baton\.fallback_models\[0\]: an object entry needs a "model" key'):
        config_of({"baton": {"fallback_models": [{"variant": "x"}]}}, tmp_path)


def test_models_4x_form(tmp_path: Path) -> None:
    """models[0] acts as the model and models[1:] as the chain unless fallback_models is given."""
    config = config_of({"agents": {
        "a": {"models": ["p/main", "p/f1", "p/f2"]},
        "b": {"models": ["p/main", "p/f1"], "fallback_models": ["p/other"]},
        "c": {"models": ["p/only"]},
        "d": {"model": "p/explicit", "models": ["p/main", "p/f1"]},
    }, "baton": {"fallback_models": ["p/default"]}}, tmp_path)
    assert agent_primary_model(config, "a") == "p/main"
    assert resolve_chain(config, agent_key="a", category=None, model=None) == ResolvedChain(
        ("p/f1", "p/f2"), "agents.a.models")
    assert resolve_chain(config, agent_key="b", category=None, model=None).models == ("p/other",)
    assert agent_primary_model(config, "c") == "p/only"
    assert resolve_chain(config, agent_key="c", category=None, model=None).source == "baton.fallback_models"
    assert agent_primary_model(config, "d") == "p/explicit"


def test_empty_list_is_an_explicit_opt_out(tmp_path: Path) -> None:
    """fallback_models: [] ends resolution with an empty chain instead of falling through."""
    config = config_of({"agents": {"build": {"fallback_models": []}}, "baton": {"fallback_models": "p/d"}}, tmp_path)
    assert resolve_chain(config, agent_key="build", category=None, model="p/m") == ResolvedChain(
        (), "agents.build.fallback_models")


# --- warnings and related keys ---------------------------------------------------------------


def test_unknown_keys_warn_once_each(project: Path, home: Path) -> None:
    """Each unknown key warns once, with its position; upstream keys baton ignores stay silent."""
    write(user_file(home), {"mystery": 1, "experimental": {"x": 1}})
    text = json.dumps({
        "mystery": 2,
        "runtime_fallback": {"bogus": True},
        "agents": {"build": {"temperature": 0.2, "tools": {}, "colour": "red"}},
        "categories": {"quick": {"max_prompt_tokens": 10, "oops": 1}},
        "background_task": {"circuitBreaker": {"enabled": True, "what": 1}, "nope": 1},
        "baton": {"extra": 1},
        "sources": ["x"],
    }, indent=1)
    proj = write(project_file(project), text)
    config = load(project, home)
    keys = [w.split(": ")[1] for w in config.warnings]
    assert sorted(keys) == sorted([
        "mystery", "runtime_fallback.bogus", "agents.build.colour", "categories.quick.oops",
        "background_task.circuitBreaker.what", "background_task.nope", "baton.extra", "sources",
    ])
    assert all(w.endswith("unknown key, ignored") for w in config.warnings)
    line, column = position(text, '"nope"')
    assert f"{proj}:{line}:{column}: background_task.nope: unknown key, ignored" in config.warnings


def test_restore_primary_after_cooldown_is_read_and_defaults_on(tmp_path: Path) -> None:
    """restore_primary_after_cooldown is a setting baton acts on: read without a warning, on by default."""
    config = config_of({"runtime_fallback": {"restore_primary_after_cooldown": False}}, tmp_path)
    assert config.warnings == ()
    assert config.runtime_fallback.restore_primary_after_cooldown is False
    assert config_of({}, tmp_path).runtime_fallback.restore_primary_after_cooldown is True


def test_quota_settings_defaults_and_overrides(tmp_path: Path) -> None:
    """The quota-aware keys: parking on (6 h cap), cooldown cap 24 h, spend guard off, overflow off;
    a per-agent spend ratio is read."""
    default = config_of({}, tmp_path).baton
    assert (default.park_when_exhausted, default.max_park_seconds, default.max_cooldown_seconds) == (
        True, 6 * 3600, 24 * 3600)
    assert (default.max_cost_ratio, default.on_context_overflow) == (None, "off")
    config = config_of({"baton": {"park_when_exhausted": False, "max_cost_ratio": 1, "on_context_overflow":
                                  "larger-model"}, "agents": {"build": {"max_cost_ratio": 2.5}}}, tmp_path)
    assert config.warnings == ()
    assert (config.baton.park_when_exhausted, config.baton.max_cost_ratio) == (False, 1.0)
    assert config.baton.on_context_overflow == "larger-model"
    assert config.agents["build"].max_cost_ratio == 2.5


def test_model_fallback_true_is_warned_about(tmp_path: Path) -> None:
    """model_fallback: true draws a warning that baton has a single fallback policy."""
    config = config_of({"model_fallback": True}, tmp_path)
    assert config.model_fallback is True
    assert any("one fallback policy" in w for w in config.warnings)
    assert config_of({"model_fallback": False}, tmp_path).warnings == ()


def test_disabled_hook_turns_runtime_fallback_off(tmp_path: Path) -> None:
    """Listing runtime-fallback in disabled_hooks acts as enabled: false, with a notice."""
    config = config_of({"disabled_hooks": ["runtime-fallback"], "runtime_fallback": {"cooldown_seconds": 5}}, tmp_path)
    assert config.runtime_fallback.enabled is False
    assert config.runtime_fallback.cooldown_seconds == 5
    assert any("disabled_hooks" in w for w in config.warnings)
    assert config_of({"disabled_hooks": ["runtime-fallback"], "runtime_fallback": True},
                     tmp_path).runtime_fallback.enabled is False


def test_runtime_fallback_accepts_booleans(tmp_path: Path) -> None:
    """true is enabled with defaults and false is disabled; explicitness is recorded for upstream checks."""
    on = config_of({"runtime_fallback": True}, tmp_path)
    assert on.runtime_fallback == config_of({}, tmp_path).runtime_fallback
    assert on.runtime_fallback_explicit
    assert config_of({"runtime_fallback": False}, tmp_path).runtime_fallback.enabled is False
    assert config_of({"runtime_fallback": {"enabled": True}}, tmp_path).runtime_fallback_explicit
    assert not config_of({"runtime_fallback": {"cooldown_seconds": 1}}, tmp_path).runtime_fallback_explicit


def test_background_task_maps_and_circuit_breaker(tmp_path: Path) -> None:
    """Concurrency map keys are stored trimmed and lower-cased; the breaker's cap wins over maxToolCalls."""
    config = config_of({"background_task": {
        "providerConcurrency": {" OpenAI ": 2}, "modelConcurrency": {"Anthropic/Claude-X": 0},
        "maxToolCalls": 100, "circuitBreaker": {"maxToolCalls": 50},
    }}, tmp_path)
    bt = config.background_task
    assert bt.provider_concurrency == {"openai": 2}
    assert bt.model_concurrency == {"anthropic/claude-x": 0}
    assert bt.tool_call_cap == 50
    off = config_of({"background_task": {"circuitBreaker": {"enabled": False}}}, tmp_path)
    assert off.background_task.tool_call_cap is None


def test_config_is_frozen(tmp_path: Path) -> None:
    """Config values cannot be reassigned after loading."""
    config = config_of({}, tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.runtime_fallback.enabled = False  # type: ignore[misc]


# --- agent names -----------------------------------------------------------------------------


def agents_config(tmp_path: Path, *names: str) -> Config:
    return config_of({"agents": {name: {} for name in names}}, tmp_path)


@pytest.mark.parametrize(
    ("names", "raw", "expected"),
    [
        (("sisyphus", "build"), "build", "build"),
        (("Build",), " build ", "Build"),
        (("sisyphus", "build"), "Sisyphus - ultraworker", "sisyphus"),
        (("sisyphus", "sisyphus-junior"), "Sisyphus-Junior", "sisyphus-junior"),
        (("sisyphus",), "Sisyphus-Junior", "sisyphus"),
        (("sisyphus", "sisyphus-junior"), "Sisyphus-Junior (helper)", "sisyphus-junior"),
        (("build",), "OpenCode-Builder", None),
        (("build",), "my_build", None),
        (("build",), "my-build", "build"),
        (("plan", "build"), "Plan then build", "plan"),
        (("plan",), "", None),
        ((), "anything", None),
    ],
)
def test_agent_key_mapping(tmp_path: Path, names: tuple[str, ...], raw: str, expected: str | None) -> None:
    """Raw names map by exact key, then lower-case equality, then the leftmost word-bounded name."""
    assert agent_key_for(agents_config(tmp_path, *names), raw) == expected


def test_agent_key_none_and_cache_follow_the_agents(tmp_path: Path) -> None:
    """None maps to None, repeated lookups agree, and a copy with other agents is not served stale answers."""
    config = agents_config(tmp_path, "build")
    assert agent_key_for(config, None) is None
    assert agent_key_for(config, "Build") == agent_key_for(config, "Build") == "build"
    other = config.model_copy(update={"agents": {"plan": config.agents["build"]}})
    assert agent_key_for(other, "Build") is None
    assert agent_key_for(other, "PLAN") == "plan"


# --- chain resolution ------------------------------------------------------------------------


@pytest.fixture(name="chains")
def _chains(tmp_path: Path) -> Config:
    return config_of({
        "agents": {
            "build": {"model": "p/build", "fallback_models": ["p/b1", "p/b2"]},
            "writer": {"category": "writing"},
            "lonely": {"category": "missing"},
            "optout": {"fallback_models": []},
            "muted": {"category": "off"},
        },
        "categories": {
            "quick": {"model": "p/quick", "fallback_models": "p/q1"},
            "writing": {"models": ["p/write", "p/w1"]},
            "nochain": {"model": "p/plain"},
            "off": {"fallback_models": ["p/off"], "disable": True},
        },
        "baton": {"model_fallbacks": {"p/primary": ["p/m1"]}, "fallback_models": ["p/d1"]},
    }, tmp_path)


def test_rule1_session_category_wins(chains: Config) -> None:
    """A task's category chain beats the agent's own chain."""
    assert resolve_chain(chains, agent_key="build", category="quick", model="p/primary") == ResolvedChain(
        ("p/q1",), "categories.quick.fallback_models")


def test_rule1_category_without_chain_falls_through(chains: Config) -> None:
    """A category with no chain (or an unknown or disabled one) lets the agent rule decide."""
    for category in ("nochain", "unknown", "off"):
        assert resolve_chain(chains, agent_key="build", category=category, model=None).source == (
            "agents.build.fallback_models")


def test_rule2_agent_chain_then_its_category(chains: Config) -> None:
    """An agent without its own chain borrows its category's."""
    assert resolve_chain(chains, agent_key="build", category=None, model="p/primary").models == ("p/b1", "p/b2")
    assert resolve_chain(chains, agent_key="writer", category=None, model=None) == ResolvedChain(
        ("p/w1",), "categories.writing.models via agents.writer.category")


def test_rule2_agent_opt_out_stops_resolution(chains: Config) -> None:
    """An agent's empty list ends resolution before the per-model and default chains."""
    assert resolve_chain(chains, agent_key="optout", category=None, model="p/primary") == ResolvedChain(
        (), "agents.optout.fallback_models")


def test_rule3_per_model_chain(chains: Config) -> None:
    """Without agent or category chains the original model's entry applies, by exact match."""
    assert resolve_chain(chains, agent_key="lonely", category=None, model="p/primary") == ResolvedChain(
        ("p/m1",), 'baton.model_fallbacks["p/primary"]')
    assert resolve_chain(chains, agent_key="muted", category=None, model="P/Primary").source == (
        "baton.fallback_models")


def test_rule4_default_chain_and_rule5_none(chains: Config, tmp_path: Path) -> None:
    """The default chain covers everything else; with no default the chain is empty."""
    assert resolve_chain(chains, agent_key="nobody", category=None, model="p/other") == ResolvedChain(
        ("p/d1",), "baton.fallback_models")
    assert resolve_chain(config_of({}, tmp_path), agent_key=None, category=None, model=None) == ResolvedChain(
        (), "none")


def test_agent_primary_model(chains: Config) -> None:
    """The agent's own model comes first, then its category's, else nothing."""
    assert agent_primary_model(chains, "build") == "p/build"
    assert agent_primary_model(chains, "writer") == "p/write"
    assert agent_primary_model(chains, "lonely") is None
    assert agent_primary_model(chains, None) is None


# --- reporting and the locator ---------------------------------------------------------------


def test_describe_lists_sources_settings_and_chains(chains: Config) -> None:
    """describe() shows the sources, the runtime_fallback values and every resolved chain."""
    lines = describe(chains)
    assert lines[0].startswith("source: ")
    assert any(line.startswith("runtime_fallback: enabled=true") for line in lines)
    assert "chain agents.build: p/b1 -> p/b2 (from agents.build.fallback_models)" in lines
    assert "chain agents.optout: no fallback (empty list at agents.optout.fallback_models)" in lines
    assert "chain model p/primary: p/m1 (from baton.model_fallbacks[\"p/primary\"])" in lines
    assert "chain default: p/d1 (from baton.fallback_models)" in lines
    assert not any("categories.off" in line for line in lines)


def test_describe_resolves_each_chain_as_its_sessions_and_tasks_would(tmp_path: Path) -> None:
    """An agent's chain may come from its model's ``baton.model_fallbacks``; a category's from its own
    list, else its category agent's, else its model's; without files the source says so, and the
    flags read true/false."""
    config = load_config(None, explicit=None, env={}, home=tmp_path)
    lines = describe(config)
    assert lines[0] == "source: none (built-in defaults)"
    assert "notify_on_fallback=true" in lines[1]
    config = config_of({
        "runtime_fallback": {"notify_on_fallback": False},
        "agents": {"solo": {"model": "p/solo"}, "general": {"fallback_models": ["p/g1"]}},
        "categories": {"own": {"fallback_models": ["p/c1"]}, "borrowed": {}, "modelled": {"model": "p/cm"}},
        "baton": {"model_fallbacks": {"p/solo": ["p/s1"], "p/cm": ["p/cm1"]}},
    }, tmp_path)
    lines = describe(config)
    assert "notify_on_fallback=false" in lines[1]
    assert 'chain agents.solo: p/s1 (from baton.model_fallbacks["p/solo"])' in lines
    assert "chain categories.own: p/c1 (from categories.own.fallback_models)" in lines
    assert "chain categories.borrowed: p/g1 (from agents.general.fallback_models)" in lines
    assert "chain categories.modelled: p/g1 (from agents.general.fallback_models)" in lines
    assert "chain default: no fallback" in lines
    alone = config_of({"categories": {"modelled": {"model": "p/cm"}}, "baton": {"model_fallbacks": {"p/cm": "p/cm1"}}},
                      tmp_path)
    assert 'chain categories.modelled: p/cm1 (from baton.model_fallbacks["p/cm"])' in describe(alone)


def test_describe_warns_about_timeout_zero(tmp_path: Path) -> None:
    """timeout_seconds 0 gets a warning that it also turns off retry-status detection."""
    lines = describe(config_of({"runtime_fallback": {"timeout_seconds": 0}}, tmp_path))
    assert any(line.startswith("warning:") and "timeout_seconds is 0" in line for line in lines)
    assert not any("timeout_seconds is 0" in line for line in describe(config_of({}, tmp_path)))


def test_json_schema_covers_the_read_keys() -> None:
    """The schema documents bounds and the boolean form, and leaves out loader-only fields."""
    schema = json_schema()
    props = schema["properties"]
    assert isinstance(props, dict)
    assert {"runtime_fallback", "agents", "categories", "background_task", "baton"} <= set(props)
    assert not {"sources", "warnings", "runtime_fallback_explicit"} & set(props)
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    attempts = defs["RuntimeFallbackConfig"]["properties"]["max_fallback_attempts"]
    assert (attempts["minimum"], attempts["maximum"]) == (1, 20)
    assert "staleTimeoutMs" in defs["BackgroundTaskConfig"]["properties"]
    assert {"type": "boolean"} in props["runtime_fallback"]["anyOf"]
    json.dumps(schema)


def test_locate_ignores_comments_and_strings_and_takes_the_last_duplicate() -> None:
    """The locator skips look-alike keys in comments and strings and follows json5's last-wins rule."""
    text = ('{\n  // "a": {"b": 1}\n  "s": "\\"a\\": {",\n  /* "a": 2 */ a: {"b": 3},\n'
            "  'a': {\"b\": [10, 20,],},\n}")
    assert locate(text, ["a", "b", 1]) == position(text, "20")
    assert locate(text, ["a"], key=True) == position(text, "'a'")
    assert locate(text, ["missing"]) is None
    assert locate("{broken", ["a"]) is None
