"""What ``baton serve`` imports: only what serving needs (issue 10 §5, a lighter daemon).

A fresh interpreter imports ``baton.daemon`` (what serve runs) and reports what got loaded: no MCP
SDK (baton serves MCP itself), no rich (terminal rendering), no psycopg (only with a PostgreSQL
store), no pydantic (the settings have their own small validation), no test tooling or demo.
"""

from __future__ import annotations

import json
import subprocess
import sys

SERVE_NEVER_LOADS = ("mcp", "mcp_types", "rich", "pygments", "psycopg", "psycopg_pool", "baton.testing",
                     "baton.demo", "baton.demo_fleet", "baton.doctor", "baton.cli_views", "hypothesis", "pytest",
                     "pydantic", "pydantic_core")


def loaded_by(statement: str) -> set[str]:
    code = f"{statement}; import sys, json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(done.stdout))


def test_the_daemon_imports_only_what_serve_needs() -> None:
    loaded = loaded_by("import baton.cli")  # `baton serve` runs through the CLI module
    assert "baton.tools" in loaded and "baton.mcp_wire" in loaded
    assert sorted(name for name in SERVE_NEVER_LOADS if name in loaded) == []


def test_rich_still_works_where_it_is_wanted() -> None:
    """baton hides rich from structlog only: the CLI's views import it as usual."""
    assert "rich" in loaded_by("import baton.daemon, baton.cli_views")
