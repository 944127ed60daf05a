"""The public surface: every module under baton/ says what it exports, pinned here.

Changing a module's ``__all__``, adding a module or removing one fails this test until the
snapshot below is edited to match: a change to the surface is a deliberate edit. To print the
snapshot for the tree as it is: ``.venv/bin/python tests/unit/test_public_surface.py``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
from package_walk import baton_modules

import baton

SNAPSHOT: dict[str, list[str]] = {
    "baton": ["__version__"],
    "baton.__main__": [],
    "baton._jsonc_locate": [
        "ConfigError", "JsoncFile", "JsoncSyntaxError", "Range", "Segment", "drop_nulls", "key_path",
        "load_jsonc", "locate", "number_text", "parse_jsonc", "place", "printable", "show_value",
        "unknown_keys", "validate",
    ],
    "baton.actions": [
        "AbortTurn", "Action", "CancelTimer", "ClearIntent", "Note", "RESEND_INTENT", "Resend",
        "ResendIntent", "SaveCooldown", "SaveIntent", "Schedule", "Toast",
    ],
    "baton.auth": [
        "TOKEN_ENV", "TokenError", "bearer_matches", "dashboard_cookie", "dashboard_cookie_matches",
        "host_allowed", "is_loopback", "load_token", "origin_allowed", "read_token", "token_matches",
    ],
    "baton.catalog": ["Catalog", "EMPTY_CATALOG", "ModelInfo", "catalog_from_providers"],
    "baton.chain_check": ["Finding", "FindingKind", "check_chains", "checked_models"],
    "baton.chains": [
        "NamedChain", "ResolvedChain", "agent_key_for", "agent_primary_model", "configured_chains",
        "describe", "resolve_chain",
    ],
    "baton.cli": ["app", "main"],
    "baton.cli_console": ["err", "fail", "out"],
    "baton.cli_store": ["explain", "migrate_database", "read_journal", "store_app"],
    "baton.cli_views": ["status_view", "tasks_table"],
    "baton.clock": ["Clock", "SystemClock"],
    "baton.config": [
        "AgentConfig", "BackgroundTaskConfig", "BatonConfig", "CategoryConfig", "CircuitBreakerConfig",
        "Config", "ConfigError", "DEFAULT_CATEGORY_AGENT", "OPENCODE_SECTION", "RuntimeFallbackConfig",
        "json_schema", "load_config", "printable",
    ],
    "baton.cooldowns": ["Cooldowns"],
    "baton.daemon": [
        "DEFAULT_LISTEN", "ServeOptions", "StartupError", "build_engine", "default_state_dir", "parse_listen",
        "serve",
    ],
    "baton.dashboard": [],
    "baton.dashboard.routes": ["FLEET_EVERY_S", "KEEPALIVE_S", "POLL_S", "dashboard_routes"],
    "baton.dashboard.view": ["JOURNAL_SHOWN", "Picture", "picture"],
    "baton.demo": ["DemoError", "prepare_opencode", "run_demo"],
    "baton.demo_fleet": ["run_fleet_demo"],
    "baton.doctor": ["Check", "run_checks"],
    "baton.engine": ["Engine", "EngineStats"],
    "baton.errors": ["BatonError"],
    "baton.events": [
        "AssistantMessage", "COMPACTION_AGENT", "CatalogSeen", "Event", "PartDelta", "PartUpdated",
        "RecoveredResend", "ResendOutcome", "ResendResult", "SessionCreated", "SessionDeleted",
        "SessionError", "SessionIdle", "SessionStatus", "StatusType", "TimerFired", "UserMessage",
    ],
    "baton.fallback": [],
    "baton.fallback.core": [
        "Choice", "DEFAULT_MAX_COOLDOWN_S", "Decision", "FallbackCore", "NoCandidate", "Verdict",
        "on_connected_provider",
    ],
    "baton.fallback.errors": [
        "DEFAULT_RETRY_ON_ERRORS", "ErrorInfo", "ErrorType", "classify_error", "error_parts_text", "error_text",
        "retry_signal_text",
    ],
    "baton.fallback.guards": ["Guard", "NO_GUARD", "Refusal"],
    "baton.fallback.parking": ["PARK_GRACE_S", "Parker", "clock_time", "park_key"],
    "baton.fallback.policy": ["FallbackPolicy"],
    "baton.fallback.recovery": ["RECOVERY_MAX_AGE_S", "Recovery"],
    "baton.fallback.reset_times": [
        "MAX_AHEAD_S", "ResetSource", "ResetTime", "reset_from_headers", "reset_from_text", "retry_after_ms",
    ],
    "baton.fallback.retry_status": [
        "UNKNOWN_MODEL", "dedupe_key", "model_in_text", "normalized_class", "provider_retry_at",
        "retry_attempt", "retry_key",
    ],
    "baton.fallback.signals": ["Signals"],
    "baton.fallback.state": [
        "FallbackState", "OWN_ABORT_GRACE_S", "PolicyState", "Prepared", "Session", "SessionSnapshot", "Turn",
        "parts_by_id",
    ],
    "baton.fallback.switching": [
        "NO_ACTIONS", "OWN_ABORT_GRACE_S", "RESEND_ERROR_WINDOW_S", "RESEND_RETRY_FIRST_S", "RESEND_TRIES",
        "SESSION_TTL_S", "SWEEP_EVERY_S", "SWITCH_CAUSES", "Switcher", "answered", "resend_retry_key",
        "watchdog_key",
    ],
    "baton.fallback.timers": ["Timers"],
    "baton.fallback.tracking": ["OUTPUT_PART_TYPES", "Tracker"],
    "baton.jsonc": [
        "JsoncError", "MAX_BYTES", "MAX_DEPTH", "TextIndex", "clean", "decode", "parse", "place", "read_text",
    ],
    "baton.logs": ["configure_logging"],
    "baton.mcp_wire": [
        "LATEST_PROTOCOL_VERSION", "McpEndpoint", "McpServer", "PROTOCOL_VERSIONS", "Progress",
    ],
    "baton.models": ["model_key", "normalize_model", "same_model", "split_model", "to_api_model"],
    "baton.opencode": [],
    "baton.opencode.client": [
        "OpencodeClient", "OpencodeError", "OpencodeHTTPError", "OpencodeUnavailable", "auth_from_env",
        "input_part", "resend_parts",
    ],
    "baton.opencode.events": ["STREAM_EVENTS", "message_events", "parse_event", "parse_status"],
    "baton.opencode.resync": [
        "RESYNC_MESSAGE_LIMIT", "has_message", "latest_turn", "newest_time", "resend_message", "resync",
    ],
    "baton.opencode.stream": [
        "ATTACH_CALL_S", "BACKOFF_FIRST_S", "BACKOFF_MAX_S", "EventStream", "FIRST_EVENT_S", "Feed",
        "HEARTBEAT_TIMEOUT_S", "MIN_HEARTBEAT_TIMEOUT_S", "SseLines", "StreamListener", "StreamState",
    ],
    "baton.runtime": [],
    "baton.runtime.attach": ["Attachment", "CATALOG_S", "MCP_NAME", "TOOLS_READY_S"],
    "baton.runtime.calls": ["CallMatcher", "MATCH_WAIT_S", "TOOL_PREFIX", "json_equal"],
    "baton.runtime.fallback_executor": [
        "ABORT_TIMEOUT_S", "FALLBACK_ACTIONS", "FallbackExecutor", "PROMPT_RETRIES", "RECENT_KEPT",
    ],
    "baton.runtime.fleet_slots": ["FleetSlots", "LocalSlots", "SLOT_POLL_S", "SlotGate", "SlotLedger"],
    "baton.runtime.jobs": ["Job", "Jobs", "Outcome", "job_name"],
    "baton.runtime.metrics": ["CONTENT_TYPE", "EngineStats", "Metrics"],
    "baton.runtime.router": [
        "CORE_EVENTS", "Executor", "FallbackDecider", "Observer", "Router", "TaskDecider",
    ],
    "baton.runtime.task_tools": ["HOST_CALL_LIMIT_S", "Steps", "TaskTools"],
    "baton.runtime.tasks": ["SessionTree", "TASK_ACTIONS", "TaskChanges", "TaskExecutor"],
    "baton.runtime.timers": ["Timers"],
    "baton.server": ["Guard", "HttpServer", "bind_socket", "build_app", "standby_app"],
    "baton.settings": [
        "AgentConfig", "BackgroundTaskConfig", "BatonConfig", "CategoryConfig", "CircuitBreakerConfig",
        "Config", "DEFAULT_CATEGORY_AGENT", "DEFAULT_RETRY_ON_ERRORS", "Range", "RuntimeFallbackConfig",
        "Segment", "key_path", "number_text", "show_value",
    ],
    "baton.store": ["CoolingRow", "JournalEntry", "Store", "StoreError", "StoreTooNew"],
    "baton.store_mirror": [
        "BoxRow", "Cooldown", "JOURNAL_BUFFER", "JournalRow", "Mirror", "PendingRow", "QuarantineRow",
        "SHAPE_ERRORS", "TaskRow", "json_object", "parse_rows",
    ],
    "baton.store_pending": ["PENDING_KEY", "PENDING_MIGRATION", "PendingTable", "persist_pending"],
    "baton.store_pg": ["PgStore"],
    "baton.store_pg_conn": [
        "CONNECT_TIMEOUT_S", "Conn", "connect", "fetch", "is_database_url", "many", "open_pool", "say",
        "shown_url",
    ],
    "baton.store_pg_lease": [
        "LEASE_MIGRATION", "LeaseLost", "fence", "holder_of", "release", "take", "wait_for_lease",
    ],
    "baton.store_pg_listen": ["LISTEN_PING_S", "Listener", "RETRY_FIRST_S", "RETRY_MAX_S"],
    "baton.store_pg_schema": [
        "COOLDOWN_CHANNEL", "DELETE_BOX", "DELETE_PENDING", "DELETE_TASK", "INSERT_JOURNAL",
        "INSERT_QUARANTINE", "MIGRATIONS", "SCHEMA_VERSION", "UPSERT_BOX", "UPSERT_COOLDOWN",
        "UPSERT_PENDING", "UPSERT_TASK", "migrate", "schema_version",
    ],
    "baton.store_pg_slots": [
        "DEAD_DRIVER_GRACE_S", "SLOTS_MIGRATION", "SLOT_CHANNEL", "claim", "is_granted", "regrant", "release",
    ],
    "baton.store_port": [
        "CoolingRow", "JournalEntry", "StoreError", "StorePort", "StoreTooNew", "StoreUnreachable",
    ],
    "baton.store_schema": [
        "INSERT_JOURNAL", "MIGRATIONS", "SCHEMA_VERSION", "UPSERT_BOX", "UPSERT_COOLDOWN", "UPSERT_TASK",
        "migrate", "quarantine",
    ],
    "baton.tasks": [
        "CancelReport", "CancelRequest", "CancelledTask", "EndReason", "IdSource", "IllegalTransition",
        "KnownAgent", "LIVE", "LaunchRequest", "LaunchResult", "Mode", "NotifyState", "OutboxRow",
        "Scheduler", "TERMINAL", "TRANSITIONS", "Task", "TaskEvent", "TaskStatus", "TaskView", "ToolError",
        "transition",
    ],
    "baton.tasks.actions": [
        "AbortChild", "CreateChild", "Deliver", "ForgetTasks", "LookupSession", "PollStatus", "PromptChild",
        "RefreshActivity", "SaveOutbox", "SaveTask", "TaskAction",
    ],
    "baton.tasks.children": ["Children"],
    "baton.tasks.events": [
        "AbortDone", "ActivityRefreshed", "Attached", "ChildCreateFailed", "ChildCreated", "DeliveryOutcome",
        "DeliveryResult", "Detached", "HostRestarted", "ParentCompacted", "PermissionPending",
        "PromptAccepted", "PromptRejected", "SchedulerEvent", "SessionLookup", "StatusPolled",
    ],
    "baton.tasks.ids": ["IdSource"],
    "baton.tasks.launch": [
        "BUILTIN_CATEGORIES", "KnownAgent", "LaunchRequest", "LaunchResult", "Plan", "ToolError",
        "known_categories", "plan_launch", "tools_for",
    ],
    "baton.tasks.lifecycle": [
        "ABORT_TRIES", "Lifecycle", "OWN_ABORT_GRACE_S", "TICK_KEY", "TICK_S", "child_title",
    ],
    "baton.tasks.model": [
        "Attempt", "EndReason", "IllegalTransition", "LIVE", "Mode", "NotifyState", "OutboxRow", "RowKind",
        "RowState", "SILENT_REASONS", "SLOT_HOLDING", "TERMINAL", "TIMEOUT_REASONS", "TRANSITIONS", "Task",
        "TaskEvent", "TaskStatus", "WAITING", "transition",
    ],
    "baton.tasks.notify": [
        "BACKOFF_FIRST_S", "BACKOFF_MAX_S", "COALESCE_S", "Frozen", "Notifier", "Parent", "QUIET_S",
        "deliver_timer",
    ],
    "baton.tasks.queues": ["TaskIndex", "concurrency_key", "limit_for", "provider_of"],
    "baton.tasks.recovery": ["Recovery"],
    "baton.tasks.results": ["Results"],
    "baton.tasks.scheduler": ["CancelReport", "CancelRequest", "CancelledTask", "Scheduler", "TaskView"],
    "baton.tasks.service": ["CallContext", "TaskService", "ToolFailure"],
    "baton.tasks.state": ["OWN_ABORT_GRACE_S", "SchedulerState", "TICK_KEY", "TICK_S"],
    "baton.tasks.stream": ["StreamEvents"],
    "baton.tasks.texts": [
        "MAX_LISTED", "agents_unavailable", "bad_argument", "cancel_report", "compaction_notice",
        "continuation_mismatch", "depth_refused", "descendants_refused", "duration", "foreground_answer",
        "foreground_backgrounded", "foreground_failure", "launch_text", "lineage_failed",
        "not_a_task_session", "notification", "outcome", "output_text", "session_busy", "unknown_agent",
        "unknown_category", "unknown_task",
    ],
    "baton.tasks.timeouts": ["Timeouts"],
    "baton.tasks.transient": [
        "HOST_RETRY_BUDGET_S", "HOST_RETRY_FIRST_S", "HOST_RETRY_MAX_S", "HostRetry", "host_retry_timer",
    ],
    "baton.tasks.waiting": ["WAKE_PREFIX", "Wait", "Waiting", "wake_timer"],
    "baton.tasks.watch": ["ChildWatch", "RESULT_CAP", "call_signature"],
    "baton.testing": [],
    "baton.testing.baton_process": ["BatonProcess"],
    "baton.testing.browser": ["BrowserMissing", "CHROMIUM_ARGS", "chromium"],
    "baton.testing.clock": ["FakeClock"],
    "baton.testing.fake_provider": [
        "Answer", "Drop", "FakeProvider", "Hang", "LoggedRequest", "Refuse", "Step", "ToolCall",
        "load_script", "main", "script_from_json", "split_chunks", "step_from_json",
    ],
    "baton.testing.fake_script": [
        "Answer", "Drop", "Hang", "Refuse", "Step", "ToolCall", "load_script", "script_from_json",
        "step_from_json",
    ],
    "baton.testing.fake_wire": [
        "Completion", "default_error_type", "error_response", "read_json", "split_chunks", "sse",
    ],
    "baton.testing.fault_proxy": ["FaultProxy", "MODES"],
    "baton.testing.opencode": [
        "OPENCODE_VERSION", "OpencodeServer", "baton_cache_dir", "create_session", "find_opencode",
        "free_port", "opencode_config", "prompt_async", "warm_template",
    ],
    "baton.testing.opencode_home": ["seed_home", "warm_template"],
    "baton.testing.opencode_install": [
        "OPENCODE_VERSION", "baton_cache_dir", "file_lock", "find_opencode", "npm_install",
    ],
    "baton.testing.opencode_process": [
        "OpencodeProcess", "base_env", "free_port", "opencode_config", "port_taken",
    ],
    "baton.testing.postgres": ["TestPostgres"],
    "baton.testing.recorder": ["EventRecorder"],
    "baton.testing.waiting": ["wait_until"],
    "baton.tools": [
        "DEFAULT_OUTPUT_TIMEOUT_MS", "PROGRESS_INTERVAL_S", "SERVER_NAME", "TOOL_NAMES", "build_mcp_app",
        "build_server", "tool_definitions",
    ],
    "baton.validation": [
        "BOOL", "Invalid", "Issue", "Kind", "Model", "Range", "STR", "SchemaDef", "Segment", "after",
        "before", "dict_of", "fail", "file_fields", "got", "integer", "json_schema", "key_path", "model",
        "nullable", "number", "number_text", "one_of", "setting", "show_value", "tuple_of",
    ],
}


def _main_all() -> list[str]:
    """``baton.__main__``'s ``__all__``, read without importing it (importing runs the CLI)."""
    tree = ast.parse((Path(baton.__file__).parent / "__main__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        target: ast.expr
        if isinstance(node, ast.AnnAssign):
            target = node.target
        elif isinstance(node, ast.Assign):
            target = node.targets[0]
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "__all__" and node.value is not None:
            return list(ast.literal_eval(node.value))
    raise AssertionError("baton.__main__ has no __all__")


def surface() -> dict[str, list[str]]:
    """Each module's ``__all__``, sorted (``baton.__main__`` read from its source)."""
    found = {}
    for name in baton_modules(main=True):
        if name == "baton.__main__":
            found[name] = sorted(_main_all())
            continue
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} has no __all__"
        found[name] = sorted(module.__all__)
    return found


def test_every_module_is_in_the_snapshot() -> None:
    assert sorted(baton_modules(main=True)) == sorted(SNAPSHOT)


@pytest.mark.parametrize("name", baton_modules())
def test_all_is_pinned_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    assert [n for n in exported if not hasattr(module, n)] == [], f"{name}.__all__ names what it lacks"
    assert sorted(exported) == SNAPSHOT.get(name), f"{name}.__all__ changed: edit SNAPSHOT if that is meant"


def test_main_exports_nothing() -> None:
    assert _main_all() == SNAPSHOT["baton.__main__"] == []


def render() -> str:
    lines = ["SNAPSHOT: dict[str, list[str]] = {"]
    for name, names in surface().items():
        one = f'    "{name}": [{", ".join(repr(n).replace(chr(39), chr(34)) for n in names)}],'
        if len(one) <= 110:
            lines.append(one)
            continue
        lines.append(f'    "{name}": [')
        row = "       "
        for n in names:
            item = f' "{n}",'
            if len(row) + len(item) > 110:
                lines.append(row)
                row = "       "
            row += item
        lines += [row, "    ],"]
    lines.append("}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render())
