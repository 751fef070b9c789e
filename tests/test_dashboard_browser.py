"""The dashboard in a real headless Chromium: sign in by link, watch runs live, approve.

One browser serves the module (Chromium takes seconds to start); each test gets a
fresh deck and forgets the cookies of the last one. Screenshots of every page land in
tests/artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.browser import Browser, sign_in
from tests.support.dashkit import Dash, dashboard_deck, make_history

pytestmark = pytest.mark.slow  # a real headless Chromium


async def live(browser: Browser) -> None:
    """Wait until the page's event stream is open, then mark the page to see reloads."""
    await browser.wait_for(".live-dot.on")
    await browser.js("window.sameDocument = true")


async def still_same_document(browser: Browser) -> bool:
    return await browser.js("return window.sameDocument === true") is True


async def test_sign_in_by_link_and_watch_a_run_start_and_finish(browser: Browser) -> None:
    async with dashboard_deck() as dash:
        await browser.get(dash.base + "/runs")
        assert "Sign in from chat" in await browser.text()
        await browser.screenshot("signin-hint")
        link = await dash.link_from_chat("test:ada")
        await browser.get(link)
        await browser.wait_for("#signin", "Sign in as test:ada")
        await browser.screenshot("signin")
        await browser.click("#signin")
        await browser.wait_for("h2", "Agents")
        await browser.get(dash.base + "/runs")
        await live(browser)
        await dash.chat.say("/ask slow live-one", user="test:ada")
        row = await browser.wait_for("#runs tr", "live-one")
        assert "running" in row
        await browser.screenshot("runs-live")
        done = await browser.wait_for("#runs tr", "done")
        assert "live-one" in done
        assert await still_same_document(browser)
        # a used link does not sign in a second browser session
        await browser.forget()
        await browser.get(link)
        assert "used already" not in await browser.text()  # looking does not use it up...
        await browser.click("#signin")
        assert "used already" in await browser.wait_for("#refusal")  # ...signing in does


async def test_approve_in_the_browser_and_the_chat_hears_it(browser: Browser) -> None:
    async with dashboard_deck() as dash:
        await sign_in(browser, dash, "test:ada")
        await browser.get(dash.base + "/approvals")
        await browser.wait_for("#none-pending")
        await live(browser)
        await dash.chat.say("/ask deploy v2", user="test:bob")
        card = await browser.wait_for(".approval", "Approval needed")  # appears without reload
        assert "deployed v2" in card
        assert await still_same_document(browser)
        approval_id = re.search(r"\(([0-9a-f]{8})\)", card)[1]  # type: ignore[index]
        await browser.screenshot("approvals")
        await browser.click(f"#approve-{approval_id}")
        # deploy asks for every command: a destructive action, confirmed on a page of its own
        assert "destructive" in await browser.wait_for("#confirm-card h1")
        await browser.screenshot("approvals-confirm")
        assert (await dash.deck.approvals.get(approval_id)).status == "pending"  # type: ignore[union-attr]
        await browser.click(f"#confirm-{approval_id}")
        assert "Approved." in await browser.wait_for("#flash")
        await dash.chat.wait_for("Approved by test:ada")
        result = await dash.chat.wait_for("exit 0")
        assert "deployed v2" in result.text
        await browser.wait_for(f"#d-{approval_id}", "Approved by test:ada")
        await browser.screenshot("approvals-decided")


async def test_every_page_renders_in_the_browser(browser: Browser) -> None:
    async with dashboard_deck() as dash:
        await make_history(dash)
        await sign_in(browser, dash, "test:admin")
        shots: list[Path] = [await browser.screenshot("overview")]
        assert "Says it back" in await browser.text()
        for path, heading, name in (
            ("/runs", "Runs", "runs"),
            ("/jobs", "Jobs", "jobs"),
            ("/approvals", "Waiting for approval", "approvals-pending"),
            ("/audit", "Audit", "audit"),
            ("/cost", "Cost", "cost"),
        ):
            await browser.get(dash.base + path)
            await browser.wait_for("h1", heading)
            shots.append(await browser.screenshot(name))
        await browser.get(dash.base + "/runs")
        await browser.click("#runs tbody tr a")
        await browser.wait_for("h2", "Transcript")
        shots.append(await browser.screenshot("run"))
        assert "chain intact" in await browser_text_of(browser, dash, "/audit", "#chain")
        assert all(shot.stat().st_size > 10_000 for shot in shots)


async def browser_text_of(browser: Browser, dash: Dash, path: str, css: str) -> str:
    await browser.get(dash.base + path)
    return await browser.wait_for(css)
