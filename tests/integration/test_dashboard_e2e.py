"""The dashboard in a real browser (headless Chromium through Playwright) against a running baton,
the real opencode and the fake provider: what happens shows up on the page as it happens."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import BatonFactory, wait_until
from playwright.sync_api import Browser, Page, sync_playwright

from baton.store_pg_conn import shown_url
from baton.testing.baton_process import BatonProcess
from baton.testing.browser import CHROMIUM_ARGS, chromium
from baton.testing.fake_provider import Answer, FakeProvider, Refuse, ToolCall
from baton.testing.fault_proxy import FaultProxy
from baton.testing.opencode import OpencodeServer

# The first test may install Debian's chromium (baton.testing.browser): minutes, not seconds.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
"""Written when BATON_UPDATE_SCREENSHOT=1 (the README shows it); otherwise the shot stays in tmp."""
COOLING = "All credentials for model primary are cooling down"

# Records, in the page, when the selector first matched and every status a task showed: the
# page's own clock, so a slow test runner does not add to what is measured.
WATCH = """([selector, taskId]) => {
  window.__seenAt = null; window.__statuses = [];
  const check = () => {
    if (window.__seenAt === null && document.querySelector(selector)) window.__seenAt = Date.now() / 1000;
    const task = taskId && document.querySelector(`[data-task="${taskId}"]`);
    const status = task && task.dataset.status;
    if (status && window.__statuses[window.__statuses.length - 1] !== status) window.__statuses.push(status);
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true});
  check();
}"""


@pytest.fixture(name="browser", scope="module")
def _browser() -> Iterator[Browser]:
    binary = chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def status_link(baton: BatonProcess) -> str:
    """The dashboard link ``baton status`` prints for this baton."""
    shown = subprocess.run([sys.executable, "-m", "baton", "status", "--listen", baton.listen,
                            "--state-dir", str(baton.state_dir)],
                           capture_output=True, text=True, timeout=30, check=True)
    (link,) = [line.removeprefix("dashboard: ") for line in shown.stdout.splitlines() if line.startswith("dashboard: ")]
    return link


def open_dashboard(browser: Browser, baton: BatonProcess) -> Page:
    """Open the page the way a user does: the link ``baton status`` prints, token in the query."""
    link = status_link(baton)
    assert link == f"http://{baton.listen}/?token={baton.token}"
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(link)
    assert "token" not in page.url  # traded for the cookie at once
    page.wait_for_selector('#link[data-state="attached"]', timeout=10_000)
    return page


def test_page_and_feed_need_the_token(opencode: OpencodeServer, start_baton: BatonFactory,
                                      browser: Browser) -> None:
    """Without the link's token nothing of the dashboard answers; a wrong token sets no cookie."""
    baton = start_baton({})
    base = f"http://{baton.listen}"
    for path in ("/", "/dashboard/stream", "/dashboard/app.js", "/dashboard/tasks/x"):
        assert httpx2.get(base + path, timeout=5).status_code == 401, path
    wrong = httpx2.get(f"{base}/?token=nope", timeout=5)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    page = browser.new_page()
    page.goto(f"{base}/?token={baton.token}")
    cookie = next(c for c in page.context.cookies() if c["name"].startswith("baton_dashboard"))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and baton.token not in cookie["value"]
    # The cookie opens the dashboard, not the API.
    assert httpx2.get(f"{base}/status", headers={"Cookie": f"{cookie['name']}={cookie['value']}"},
                      timeout=5).status_code == 401
    assert baton.token not in page.content()
    page.close()


def test_a_fallback_appears_on_the_page_within_a_second(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory, browser: Browser
) -> None:
    """The switch is journaled at time T; the open page shows the session's new model and the
    decision before T + 1 s."""
    fresh_provider.script("primary", Refuse(429, COOLING))
    fresh_provider.script("backup", Answer("after the switch", delay=2.0))
    baton = start_baton({"agents": {"build": {"fallback_models": ["fake/backup"]}}})
    page = open_dashboard(browser, baton)
    sid = opencode.create_session("live")["id"]
    page.evaluate(WATCH, [f'#journal li[data-kind="switch"][data-session="{sid}"]', None])
    opencode.prompt_async(sid, "hello")
    switch = wait_until(lambda: next((e for e in baton.journal() if e["session"] == sid and e["kind"] == "switch"),
                                     None), what="the switch")
    seen_at = wait_until(lambda: page.evaluate("window.__seenAt"), timeout=5, what="the page showing the switch")
    print(f"\nthe page showed the switch {1000 * (seen_at - switch['ts']):.0f} ms after baton decided it")
    assert seen_at - switch["ts"] < 1.0
    # The row follows once the re-send is under way (the session's model changes when it is sent).
    page.locator(f'#sessions tr[data-session="{sid}"] [data-role="current"]', has_text="fake/backup").wait_for(
        timeout=5_000)
    page.locator('#models li[data-model="fake/primary"][data-cooling="yes"]').wait_for(timeout=5_000)
    page.close()


def test_the_page_says_when_baton_is_detached_from_opencode(
    opencode: OpencodeServer, start_baton: BatonFactory, browser: Browser
) -> None:
    """opencode stops answering: the page turns to "detached" with the reason in a banner, and
    back to "attached" when opencode answers again."""
    with FaultProxy(opencode.port) as proxy:
        baton = start_baton({}, url=proxy.url)
        page = open_dashboard(browser, baton)
        assert page.locator("#banner").is_hidden()
        proxy.hold(drop_existing=True)
        page.wait_for_selector('#link[data-state="detached"]', timeout=10_000)
        banner = page.locator("#banner")
        assert banner.is_visible() and "detached from opencode" in banner.inner_text()
        proxy.release()
        page.wait_for_selector('#link[data-state="attached"]', timeout=15_000)
        assert banner.is_hidden()
        page.close()


def test_on_postgresql_the_page_shows_which_baton_drives_which_opencode(
    opencode: OpencodeServer, start_baton: BatonFactory, browser: Browser, pg_url: str
) -> None:
    """A fleet's baton shows the shared store's view: its opencode server, driven by itself."""
    baton = start_baton({}, extra_args=["--store", pg_url])
    page = open_dashboard(browser, baton)
    page.wait_for_selector("#fleet-section:not([hidden])", timeout=10_000)
    row = page.locator(f'#fleet tr[data-server="{opencode.url}"]')
    assert "(this baton)" in row.inner_text(timeout=5_000)
    assert shown_url(pg_url) in page.locator("#fleet-where").inner_text()
    page.close()


def test_on_sqlite_there_is_no_fleet_section(opencode: OpencodeServer, start_baton: BatonFactory,
                                             browser: Browser) -> None:
    page = open_dashboard(browser, start_baton({}))
    assert page.locator("#fleet-section").is_hidden()
    page.close()


def task_call(n: int) -> ToolCall:
    return ToolCall("baton_task", {"description": f"job {n}", "prompt": f"do job number {n}",
                                   "category": "quick", "run_in_background": True})


def test_a_task_moves_from_queued_to_running_to_done(
    opencode: OpencodeServer, fresh_provider: FakeProvider, start_baton: BatonFactory, browser: Browser,
    tmp_path: Path,
) -> None:
    """Two tasks on a model that runs one at a time: the page shows the second one queued, then
    running, then completed, under its parent session, with a link to its result."""
    settings: dict[str, Any] = {
        "agents": {"build": {"fallback_models": ["fake/third"]}},
        "categories": {"quick": {"model": "fake/backup"}},
        "background_task": {"modelConcurrency": {"fake/backup": 1}},
    }
    fresh_provider.script("primary", Refuse(429, COOLING))  # the parent falls back first: a fuller picture
    fresh_provider.script("third", task_call(1), task_call(2), Answer("launched two"), Answer("noted"))
    fresh_provider.script("backup", Answer("child done", delay=1.5))
    baton = start_baton(settings)
    page = open_dashboard(browser, baton)
    parent = opencode.create_session("parent")["id"]
    opencode.prompt_async(parent, "two jobs")
    rows = wait_until(lambda: (r := baton.task_rows()) and len(r) == 2 and r, what="two tasks launched")
    second = max(rows, key=lambda r: r["created_at"])["id"]
    page.evaluate(WATCH, [f'[data-task="{second}"][data-status="completed"]', second])
    wait_until(lambda: page.evaluate("window.__seenAt"), timeout=30, what="the second task shown completed")
    statuses: list[str] = page.evaluate("window.__statuses")
    assert _in_order(statuses, ["queued", "running", "completed"]), statuses
    item = page.locator(f'[data-parent="{parent}"] [data-task="{second}"]')
    assert item.count() == 1
    result = item.locator("a", has_text="result").first.get_attribute("href")
    assert result is not None and "child done" in page.request.get(f"http://{baton.listen}{result}").text()
    wait_until(lambda: page.locator('[data-task][data-status="completed"]').count() == 2, timeout=10,
               what="both tasks shown completed, for the screenshot")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    if os.environ.get("BATON_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "dashboard.png", SCREENSHOT)
    page.close()


def _in_order(seen: list[str], wanted: list[str]) -> bool:
    """``wanted`` is a subsequence of ``seen`` (a frame may show ``starting`` between two)."""
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)
