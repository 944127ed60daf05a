"""Every text baton writes for background tasks: tool results, tool errors, notifications.

Plain text for a model, visibly from baton, bounded in size: a message about 50 tasks lists
at most :data:`MAX_LISTED` of them and cuts long descriptions and reasons. Ended-task texts
depend only on the stored record (never on "now"), so reading them twice gives the same
answer (§14.3 rule 4).
"""

from __future__ import annotations

from collections.abc import Sequence

from baton.tasks.model import EndReason, Task, TaskStatus

__all__ = [
    "MAX_LISTED",
    "agents_unavailable",
    "bad_argument",
    "cancel_report",
    "compaction_notice",
    "continuation_mismatch",
    "depth_refused",
    "descendants_refused",
    "duration",
    "foreground_answer",
    "foreground_backgrounded",
    "foreground_failure",
    "launch_text",
    "lineage_failed",
    "not_a_task_session",
    "notification",
    "outcome",
    "output_text",
    "session_busy",
    "unknown_agent",
    "unknown_category",
    "unknown_task",
]

MAX_LISTED = 30
"""Tasks named one per line in one message; the rest are counted."""
MAX_DETAILED = 5
"""Task updates shown in full in one coalesced message."""
_DESC = 100
_REASON = 240
_PREFIX = "[baton]"
_OUTPUT_HINT = 'read a result with baton_background_output(task_id="<id>")'
_LIMIT_KEYS = {
    EndReason.STALE: "staleTimeoutMs",
    EndReason.NO_PROGRESS: "messageStalenessTimeoutMs",
    EndReason.QUEUE_STUCK: "taskTtlMs",
}


def _cut(text: str | None, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _who(task: Task) -> str:
    kind = f"category {task.category} (agent {task.agent})" if task.category else f"agent {task.agent}"
    return f"{kind} on {task.model or 'the default model'}"


def _run_time(task: Task) -> float | None:
    if task.started_at is None:
        return None
    return (task.ended_at if task.ended_at is not None else task.started_at) - task.started_at


# ---------------------------------------------------------------------------------------------
# tool errors


def bad_argument(problem: str, hint: str) -> str:
    return f"{_PREFIX} Not started: {problem}. Fix: {hint}. Nothing was created."


def unknown_category(name: str, known: Sequence[str]) -> str:
    return (f"{_PREFIX} Not started: there is no usable category {name!r}. "
            f"Known categories: {', '.join(known) or 'none'}. Nothing was created.")


def agents_unavailable() -> str:
    return (f"{_PREFIX} Not started: baton could not get the list of agents from opencode, so the "
            "subagent cannot be checked. Try again in a moment. Nothing was created.")


def unknown_agent(name: str, usable: Sequence[str], why: str) -> str:
    return (f"{_PREFIX} Not started: {name!r} {why}. Subagents you can use: {', '.join(usable) or 'none'}. "
            "Nothing was created.")


def lineage_failed(session: str, reason: str) -> str:
    return (f"{_PREFIX} Not started: the ancestry of session {session} could not be determined "
            f"({_cut(reason, _REASON)}), so neither the depth limit nor the descendant limit can be "
            "checked. Try again shortly. Nothing was created.")


def _refusal_tail(parent: str, root: str) -> str:
    return (f" Caller: {parent}; root: {root}. Continue the work in an existing child session instead "
            "(pass its session_id), or wait for running tasks to end. Nothing was created.")


def depth_refused(max_depth: int, depth: int, parent: str, root: str) -> str:
    return (f"{_PREFIX} Not started: background_task.maxDepth = {max_depth}, and the new session would be "
            f"at depth {depth}." + _refusal_tail(parent, root))


def descendants_refused(limit: int, live: int, parent: str, root: str) -> str:
    return (f"{_PREFIX} Not started: background_task.maxDescendants = {limit}, and {live} tasks are already "
            "live under this root session." + _refusal_tail(parent, root))


def not_a_task_session(session: str) -> str:
    return (f"{_PREFIX} Not started: session {session} is not the session of a baton task, so it cannot "
            "be continued. Omit session_id to start a new task. Nothing was created.")


def foreign_session(session: str, caller: str) -> str:
    return (f"{_PREFIX} Not started: session {session} does not belong to the session tree of the caller "
            f"({caller}), so it cannot be continued from here. Only the child sessions of tasks started in "
            "this tree can be continued. Omit session_id to start a new task. Nothing was created.")


def session_busy(session: str, task: Task) -> str:
    return (f"{_PREFIX} Not started: task {task.id} is still {task.status.value} in session {session}; "
            "two prompts would interleave. Wait for its notification, or read its progress with "
            f'baton_background_output(task_id="{task.id}"). Nothing was created.')


def continuation_mismatch(session: str, field: str, given: str, old: str | None) -> str:
    return (f"{_PREFIX} Not started: session {session} runs with {field} {old or 'none'!r}, not {given!r}. "
            f"A continuation keeps its {field}; omit it or start a new task. Nothing was created.")


def unknown_task(task_id: str) -> str:
    return f"{_PREFIX} There is no task {task_id!r} that this session can see. Check the id."


# ---------------------------------------------------------------------------------------------
# outcomes


def reason(task: Task) -> str:
    """The end reason in plain words, with the limit to raise for a timeout."""
    why = task.end_reason
    detail = _cut(task.error, _REASON)
    if why is EndReason.COMPLETED or why is None:
        return "completed"
    words = {
        EndReason.CREATE_FAILED: "baton could not create its session",
        EndReason.PROMPT_REJECTED: "opencode refused its prompt",
        EndReason.AGENT_UNKNOWN: f"opencode does not know the agent {task.agent}",
        EndReason.ERROR: "the model failed with an error a different model would not fix",
        EndReason.CHAIN_EXHAUSTED: "the model failed and no fallback model was left to try",
        EndReason.SESSION_GONE: "its session no longer exists in opencode",
        EndReason.STALE: "it showed no activity for too long",
        EndReason.NO_PROGRESS: "it stayed busy without any progress for too long",
        EndReason.QUEUE_STUCK: "its queue made no progress for too long",
        EndReason.RUNAWAY: "it made too many tool calls",
        EndReason.CANCELLED_BY_PARENT: "cancelled by its parent session",
        EndReason.CANCELLED_BY_USER: "cancelled by the user",
        EndReason.CHILD_DELETED: "its session was deleted in opencode",
        EndReason.CHILD_ABORTED: "its session was stopped in opencode, not by baton",
        EndReason.PARENT_DELETED: "its parent session was deleted",
        EndReason.ANCESTOR_ENDED: "a task above it ended",
        EndReason.HOST_RESTARTED: "opencode restarted twice while it ran and its prompt was lost",
    }[why]
    text = f"{words} ({detail})" if detail else words
    if why in _LIMIT_KEYS or why is EndReason.RUNAWAY:
        key = _LIMIT_KEYS.get(why, "maxToolCalls / circuitBreaker")
        text += (f"; raise background_task.{key} to allow more. This end is final: do not re-launch the same "
                 "work blindly; continue its session if it made progress")
    return text


def outcome(task: Task) -> str:
    if task.status is TaskStatus.COMPLETED:
        return "completed"
    return f"{task.status.value}: {reason(task)}"


def _line(task: Task) -> str:
    return f'- {task.id} "{_cut(task.description, _DESC)}": {outcome(task)}; ran {duration(_run_time(task))}'


def _lines(tasks: Sequence[Task]) -> list[str]:
    lines = [_line(t) for t in tasks[:MAX_LISTED]]
    if len(tasks) > MAX_LISTED:
        lines.append(f"- … and {len(tasks) - MAX_LISTED} more")
    return lines


def _update(task: Task) -> list[str]:
    """The full context-only section for one ended task (§12.3)."""
    lines = [f'Task {task.id} "{_cut(task.description, _DESC)}" ({_who(task)}): {outcome(task)}.']
    timing = f"Ran {duration(_run_time(task))}"
    if task.started_at is not None and task.started_at - task.queued_at >= 1.0:
        timing += f" after waiting {duration(task.started_at - task.queued_at)} in the queue"
    lines.append(timing + ".")
    if task.session_id is not None:
        lines.append(f"Child session: {task.session_id} (continue it by passing session_id).")
    lines.append(f'Result: baton_background_output(task_id="{task.id}").')
    return lines


def notification(
    updates: Sequence[Task], *, summary: bool, waking: bool, batch: Sequence[Task], outstanding: int,
    extra: Sequence[str] = (),
) -> str:
    """One coalesced message for a parent: task updates, plus the batch summary when the batch closes.

    ``summary`` without ``waking``: the batch closed while the user had stopped the parent's
    turn, so the summary goes in as context and the user's next prompt sees it.
    """
    lines: list[str] = []
    if summary:
        done = [t for t in batch if t.status is TaskStatus.COMPLETED]
        other = [t for t in batch if t.status is not TaskStatus.COMPLETED]
        lines.append(f"{_PREFIX} All your background tasks have ended ({len(batch)} in this batch).")
        if done:
            lines += [f"Completed ({len(done)}):", *_lines(done)]
        if other:
            lines += [f"Did not complete ({len(other)}):", *_lines(other)]
        cascaded = sum(t.cascaded for t in batch)
        if cascaded:
            lines.append(f"{cascaded} descendant task(s) were cancelled because a task above them ended.")
        lines.append(f"To use them, {_OUTPUT_HINT}.")
        if not waking:
            lines.append("(Added as context only, because your turn was stopped.)")
    else:
        noun = "update" if len(updates) == 1 else "updates"
        lines.append(f"{_PREFIX} Background task {noun} (for context; no reply needed).")
    for task in updates[:MAX_DETAILED]:
        lines += ["", *_update(task)]
    if len(updates) > MAX_DETAILED:
        lines += ["", "Also ended:", *_lines(list(updates[MAX_DETAILED:]))]
    lines += list(extra)
    if not summary and (updates or not extra):
        if outstanding:
            lines += ["", f"{outstanding} of your background task(s) are still running. You will be woken when "
                      "all have ended; there is no need to poll."]
        else:
            lines += ["", "None of your background tasks is running now."]
    return "\n".join(lines)


def compaction_notice(tasks: Sequence[Task]) -> str:
    lines = [f"{_PREFIX} Your background tasks, listed after the compaction so you can continue them instead "
             "of starting the same work again:"]
    for task in tasks[:MAX_LISTED]:
        where = task.session_id or "not started yet"
        kind = f"category {task.category}" if task.category else f"agent {task.agent}"
        lines.append(f'- {task.id} "{_cut(task.description, _DESC)}": {task.status.value}, {kind}, session {where}')
    if len(tasks) > MAX_LISTED:
        lines.append(f"- … and {len(tasks) - MAX_LISTED} more")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# tool results


def launch_text(task: Task, position: int | None) -> str:
    if position is not None:
        state = f"queued, number {position} in line for {task.key}"
    else:
        state = task.status.value
    lines = [f"{_PREFIX} Background task {task.id} accepted: {state}.", f"Runs as {_who(task)}."]
    if task.continues:
        lines.append(f"It continues task {task.continues}.")
    if task.session_id is not None:
        lines.append(f"Child session: {task.session_id}.")
    lines.append("You will get a notification here when it ends, and be woken once all your background tasks "
                 "have ended, so do not poll; carry on with other work.")
    lines.append(f'Afterwards read the result with baton_background_output(task_id="{task.id}").')
    return "\n".join(lines)


def foreground_answer(task: Task) -> str:
    head = (f"{_PREFIX} Task {task.id} completed in {duration(_run_time(task))} ({_who(task)}; "
            f"session {task.session_id}).")
    return f"{head}\n\n{task.result or '(the answer was empty)'}"


def foreground_failure(task: Task) -> str:
    return (f"{_PREFIX} Task {task.id} {outcome(task)}. Session: {task.session_id or 'not started'}."
            + (f"\nPartial answer:\n{task.result}" if task.result else ""))


def foreground_backgrounded(task: Task) -> str:
    return (f"{_PREFIX} Task {task.id} is still running after the wait budget, so it continues as a background "
            "task. You will be notified when it ends; do not poll. "
            f'Read the result then with baton_background_output(task_id="{task.id}").')


def output_text(task: Task, position: int | None, now: float, waited_out: bool = False) -> str:
    """``background_output`` by state (§14.3); ended tasks give the same text every time."""
    who = _who(task)
    if task.status is TaskStatus.QUEUED or (task.status is TaskStatus.RETRYING and position is not None):
        text = (f"{_PREFIX} Task {task.id} is {task.status.value} ({who}), number {position} in line for "
                f"{task.key}, waiting {duration(now - task.queued_at)}. A notification will come when it ends.")
    elif task.status in (TaskStatus.STARTING, TaskStatus.RUNNING, TaskStatus.RETRYING):
        run = f"Running for {duration(now - task.started_at)}" if task.started_at is not None else "Not started yet"
        since = (f"last activity {duration(now - task.last_activity_at)} ago" if task.last_activity_at is not None
                 else "no activity yet")
        text = (f"{_PREFIX} Task {task.id} is {task.status.value} ({who}, attempt {task.attempt + 1}). "
                f"{run}; {task.tool_calls} tool call(s)"
                + (f", last {task.last_tool}" if task.last_tool else "")
                + f"; {since}. Session: {task.session_id or 'not created yet'}. "
                "A notification will come when it ends.")
    elif task.status is TaskStatus.COMPLETED:
        text = (f"{_PREFIX} Task {task.id} completed in {duration(_run_time(task))} ({who}). "
                f"Session: {task.session_id}.\n\n{task.result or '(the answer was empty)'}")
    else:
        text = foreground_failure(task)
    if waited_out and task.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED,
                                          TaskStatus.INTERRUPTED):
        text += "\nThe wait ran out while the task is still running."
    return text


def cancel_report(cancelled: Sequence[tuple[Task, TaskStatus]], cascaded: int) -> str:
    if not cancelled:
        return f"{_PREFIX} Nothing to cancel: none of your background tasks is running."
    lines = [f"{_PREFIX} Cancelled {len(cancelled)} task(s):"]
    for task, previous in cancelled[:MAX_LISTED]:
        lines.append(f'- {task.id} "{_cut(task.description, _DESC)}" (was {previous.value}); '
                     f"session {task.session_id or 'not started'}")
    if len(cancelled) > MAX_LISTED:
        lines.append(f"- … and {len(cancelled) - MAX_LISTED} more")
    if cascaded:
        lines.append(f"{cascaded} descendant task(s) were cancelled with them.")
    if any(task.session_id for task, _ in cancelled):
        lines.append("To continue one later, call baton_task with its session_id.")
    return "\n".join(lines)


def ended_error(task: Task) -> str:
    return f"{_PREFIX} Task {task.id} has already ended ({task.status.value}); nothing to cancel."
