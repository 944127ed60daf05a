"""The root of every exception baton defines: one ``except BatonError`` catches them all.

Each error is defined beside the code that raises it and subclasses :class:`BatonError`; the
whole tree, with where each one lives::

    BatonError                      baton.errors
    ├── ConfigError                 baton._jsonc_locate (imported from baton.config)   exit 2
    ├── JsoncError (+ ValueError)   baton.jsonc: turned into a ConfigError by the loader
    ├── Invalid (+ ValueError)      baton.validation: wrong setting values; the loader makes a ConfigError
    ├── StoreError                  baton.store                                         exit 2
    │   └── StoreTooNew             baton.store
    ├── OpencodeError               baton.opencode.client: every httpx2 failure becomes one
    │   ├── OpencodeUnavailable     baton.opencode.client
    │   └── OpencodeHTTPError       baton.opencode.client
    ├── TokenError                  baton.auth: turned into a StartupError by the daemon
    ├── StartupError                baton.daemon                            exit 2 or 3 (its own)
    ├── DemoError                   baton.demo                                          exit 1
    ├── ToolFailure                 baton.tasks.service: an MCP tool error, text for the model
    ├── IllegalTransition           baton.tasks.model: a bug in the caller, never user input
    ├── _BadArguments               baton.tools: a tool argument of the wrong type
    ├── _RpcError                   baton.mcp_wire: a JSON-RPC error answering an MCP request
    └── _DropConnection             baton.testing.fake_provider: aborts a fake response

I/O failures are translated where they happen (the adapters): httpx2 errors into
:class:`OpencodeError`, sqlite3 and OS errors of the store into :class:`StoreError`, file
errors of the config into :class:`ConfigError`, of the token file into :class:`TokenError`.

The CLI is the one boundary: an error with an :attr:`BatonError.exit_code` ends the command as
one line and that exit status; one without (a bug, or an error some layer should have handled)
is an internal error, with a traceback or the log.
"""

from __future__ import annotations

__all__ = ["BatonError"]


class BatonError(Exception):
    """Anything baton raises on purpose."""

    exit_code: int | None = None
    """Exit status when this error ends a CLI command (shown as one line); None: an internal error."""
