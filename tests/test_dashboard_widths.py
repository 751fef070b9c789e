"""The dashboard at a desktop's 1280 px and a phone's 390 px, in a real Chromium.

On every page: no horizontal scroll of the page itself (wide tables scroll inside their
cards); on the phone the menu folds behind a button, the cost chart's labels stay
readable and apart, and the approval buttons are big enough for a thumb. Screenshots of
each page at each width land in tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import itertools
import re

import pytest

from tests.support.browser import Browser, sign_in
from tests.support.dashkit import Dash, dashboard_deck, make_history

pytestmark = pytest.mark.slow  # a real headless Chromium

PHONE = (390, 844)
DESKTOP = (1280, 1000)
THUMB_PX = 44  # the smallest touch target the platform guidelines name
READABLE_PX = 9.0

NO_PAGE_SCROLL = "return [document.documentElement.scrollWidth, window.innerWidth]"
CHART_LABELS = """
const svg = Array.from(document.querySelectorAll('svg.chart')).find(s => s.getBoundingClientRect().width > 0);
return Array.from(svg.querySelectorAll('text'), t => {
  const r = t.getBoundingClientRect();
  return [r.left, r.right, r.top, r.height];
});
"""
BUTTONS = """
return Array.from(document.querySelectorAll(arguments[0]), b => {
  const r = b.getBoundingClientRect();
  return [r.left, r.right, r.width, r.height];
});
"""
VISIBLE = "const e = document.querySelector(arguments[0]); return !!e && e.getBoundingClientRect().height > 0"


async def fits(browser: Browser, name: str) -> None:
    """The page does not scroll sideways; its screenshot kept."""
    scroll_width, inner_width = await browser.js(NO_PAGE_SCROLL)
    assert scroll_width <= inner_width, (name, scroll_width, inner_width)
    await browser.screenshot(name)


async def visible(browser: Browser, css: str) -> bool:
    return bool(await browser._do(lambda: browser.driver.execute_script(VISIBLE, css)))


async def pages(browser: Browser, dash: Dash, width: int) -> None:
    """Visit every page, signed out and in, and check that each fits `width`."""
    await browser.get(dash.base + "/runs")
    await fits(browser, f"{width}-signin-hint")
    await sign_in(browser, dash, "test:ada")
    for path, heading, name in (
        ("/", "Agents", "overview"),
        ("/runs", "Runs", "runs"),
        ("/runs?status=nosuch", "Runs", "runs-bad-filter"),
        ("/jobs", "Jobs", "jobs"),
        ("/approvals", "Waiting for approval", "approvals"),
        ("/cost?days=30", "Cost", "cost-30"),
        ("/cost", "Cost", "cost-7"),
        ("/no/such/page", "Not found", "404"),
    ):
        await browser.get(dash.base + path)
        await browser.wait_for("h1, h2", heading)
        await fits(browser, f"{width}-{name}")
    await browser.get(dash.base + "/runs")
    await browser.click("#runs tbody tr a")
    await browser.wait_for("h2", "Transcript")
    await fits(browser, f"{width}-run")


async def test_every_page_fits_a_desktop(browser: Browser) -> None:
    await browser.emulate(*DESKTOP, mobile=False)
    async with dashboard_deck() as dash:
        await make_history(dash)
        await pending(dash)
        await pages(browser, dash, DESKTOP[0])
        await browser.get(dash.base + "/")
        await browser.wait_for("h2", "Agents")
        assert await visible(browser, ".top nav a[href='/runs']")
        assert not await visible(browser, "#menu-button")
        await browser.get(dash.base + "/cost")
        assert await visible(browser, "#cost-chart")
        assert not await visible(browser, "#cost-chart-narrow")


async def test_every_page_fits_a_phone(browser: Browser) -> None:
    await browser.emulate(*PHONE, mobile=True)
    try:
        async with dashboard_deck() as dash:
            await make_history(dash)
            approval_id = await pending(dash)
            await pages(browser, dash, PHONE[0])
            await menu_folds(browser, dash)
            await chart_reads(browser, dash)
            await thumb_buttons(browser, dash, approval_id)
    finally:
        await browser.emulate(*DESKTOP, mobile=False)


async def pending(dash: Dash) -> str:
    """One approval left waiting, for Ada to decide on the page."""
    await dash.chat.say("/ask deploy v9", user="test:bob", chat="test:phone")
    card = await dash.chat.wait_for("Approval needed", chat="test:phone")
    found = re.search(r"\(([0-9a-f]{8})\)", card.text)
    assert found, card.text
    return found[1]


async def menu_folds(browser: Browser, dash: Dash) -> None:
    await browser.get(dash.base + "/")
    await browser.wait_for("h2", "Agents")
    assert not await visible(browser, ".top nav a[href='/runs']")
    await browser.click("#menu-button")
    assert await visible(browser, ".top nav a[href='/runs']")
    await fits(browser, "390-menu-open")
    await browser.click(".top nav a[href='/jobs']")
    await browser.wait_for("h1", "Jobs")


async def chart_reads(browser: Browser, dash: Dash) -> None:
    for days in (7, 14, 30, 90):
        await browser.get(dash.base + f"/cost?days={days}")
        await browser.wait_for("h1", "Cost")
        assert await visible(browser, "#cost-chart-narrow")
        assert not await visible(browser, "#cost-chart")
        labels = await browser.js(CHART_LABELS)
        assert isinstance(labels, list)
        assert labels
        assert all(height >= READABLE_PX for _l, _r, _t, height in labels), (days, labels)
        bottom = max(top for _l, _r, top, _h in labels)
        days_row = sorted((left, right) for left, right, top, _h in labels if top == bottom)
        assert len(days_row) >= 2
        for (_, right), (left, _) in itertools.pairwise(days_row):
            assert right <= left, (days, days_row)  # day labels apart, not overlapping


async def thumb_buttons(browser: Browser, dash: Dash, approval_id: str) -> None:
    await browser.get(dash.base + "/approvals")
    await browser.wait_for(f"#approve-{approval_id}")
    buttons = await browser._do(
        lambda: browser.driver.execute_script(BUTTONS, f"#a-{approval_id} .decide button")
    )
    assert len(buttons) == 4
    for left, right, width, height in buttons:
        assert height >= THUMB_PX, buttons
        assert width >= THUMB_PX, buttons
        assert left >= 0, buttons
        assert right <= PHONE[0], buttons
    await browser.click(f"#approve-{approval_id}")
    await browser.wait_for("#confirm-card h1", "destructive")
    await fits(browser, "390-approve-confirm")
    confirm = await browser._do(
        lambda: browser.driver.execute_script(BUTTONS, "#confirm-card .decide button, #cancel")
    )
    assert all(height >= THUMB_PX for _l, _r, _w, height in confirm), confirm
    await browser.click(f"#confirm-{approval_id}")
    assert "Approved." in await browser.wait_for("#flash")
    await dash.chat.wait_for("Approved by test:ada")
