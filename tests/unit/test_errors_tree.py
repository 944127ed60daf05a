"""One exception tree: every exception baton defines is a BatonError; I/O errors are translated."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
from package_walk import baton_modules

from baton.config import ConfigError, load_config
from baton.errors import BatonError


def exceptions_defined() -> list[type[BaseException]]:
    found = []
    for name in baton_modules():
        module = importlib.import_module(name)
        found += [obj for obj in vars(module).values()
                  if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name]
    return found


def test_the_walk_finds_the_known_exceptions() -> None:
    names = {cls.__name__ for cls in exceptions_defined()}
    assert {"ConfigError", "StoreError", "StoreTooNew", "OpencodeError", "OpencodeUnavailable",
            "OpencodeHTTPError", "StartupError", "TokenError", "JsoncError"} <= names


@pytest.mark.parametrize("cls", exceptions_defined(), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_exception_is_a_baton_error(cls: type[BaseException]) -> None:
    assert issubclass(cls, BatonError)


def test_exit_codes_are_what_the_cli_used_to_list() -> None:
    from baton.daemon import StartupError
    from baton.demo import DemoError
    from baton.store import StoreError, StoreTooNew

    assert (ConfigError.exit_code, StoreError.exit_code, StoreTooNew.exit_code, DemoError.exit_code) == (2, 2, 2, 1)
    assert StartupError("x", 3).exit_code == 3
    assert BatonError.exit_code is None


def test_a_search_path_that_cannot_be_looked_at_is_a_config_error(tmp_path: Path) -> None:
    project = tmp_path / ("p" * 300)  # one name longer than any file system allows: stat fails with ENAMETOOLONG
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(project, env={}, home=tmp_path / "home")
