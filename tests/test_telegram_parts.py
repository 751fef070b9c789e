"""The Telegram transport's pure parts: rendering and splitting, pacing, retries."""

from __future__ import annotations

import pytest
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from bot.text import bold, code, link, plain_text, pre, rich
from bot.transports.telegram import limits, render
from bot.types import Button
from tests.fakes.telegram_html import parse_html
from tests.support.fake_time import FakeTime, failing


def test_spans_render_to_escaped_html() -> None:
    text = rich(
        bold("a<b"), " & ", code("x>y"), pre("if a < b:\n  pass"), link("l", "http://x?a=1&b=2")
    )
    assert render.to_html(text) == (
        "<b>a&lt;b</b> &amp; <code>x&gt;y</code><pre>if a &lt; b:\n  pass</pre>"
        '<a href="http://x?a=1&amp;b=2">l</a>'
    )
    assert parse_html(render.to_html(text)) == plain_text(text)


@pytest.mark.parametrize(
    "text",
    [
        rich("intro\n\n", pre("".join(f"row {i} <&>\n" for i in range(2000))), "outro"),
        rich("<" * 9000),
        rich(pre("😀" * 5000)),
        rich(bold("title"), "\n", "word " * 3000),
    ],
)
def test_long_text_splits_under_the_limit_and_keeps_every_character(text: tuple) -> None:  # type: ignore[type-arg]
    pages = render.pages(text)
    assert len(pages) > 1
    for html, _ in pages:
        assert render.utf16_len(html) <= render.MESSAGE_LIMIT
        parse_html(html)  # every page is valid on its own: no <pre> cut open
    assert "".join(plain_text(chunk) for _, chunk in pages) == plain_text(text)


def test_empty_text_is_not_sent_empty() -> None:
    ((html, _),) = render.pages(rich("  \n"))
    assert html.strip()


def test_callback_data_holds_action_and_value_within_64_bytes() -> None:
    button = Button("Approve", "approval", "ab12cd34:approve")
    assert render.callback_data(button) == "approval|ab12cd34:approve"
    assert render.parse_callback_data("approval|ab12cd34:approve") == (
        "approval",
        "ab12cd34:approve",
    )
    with pytest.raises(AssertionError, match="too long"):
        render.callback_data(Button("x", "approval", "v" * 60))


def test_keyboard_rows_fit_a_phone() -> None:
    short = render.keyboard((Button("Yes", "a", "1"), Button("No", "a", "2")))
    assert short is not None
    assert [len(row) for row in short.inline_keyboard] == [2]
    long = render.keyboard(
        (Button("Approve", "a", "1"), Button("Approve for this conversation", "a", "2"))
    )
    assert long is not None
    assert [len(row) for row in long.inline_keyboard] == [1, 1]
    assert render.keyboard(()) is None


def test_pace_lets_a_burst_through_then_spaces_calls() -> None:
    time = FakeTime()
    pace = limits.Pace(30, burst=30, now=lambda: time.now)
    delays = [pace.delay() for _ in range(31)]
    assert delays[:30] == [0.0] * 30
    assert delays[30] == pytest.approx(1 / 30)
    time.now += 10
    assert pace.delay() == 0.0


async def test_pacer_holds_a_group_to_twenty_a_minute_but_not_private_chats() -> None:
    time = FakeTime()
    pacer = limits.Pacer(per_second=30, group_per_minute=20, now=lambda: time.now, sleep=time.sleep)
    for _ in range(21):
        await pacer.wait("-100500", new_message=True)
    assert sum(time.slept) == pytest.approx(3.0, abs=0.1)
    time.slept.clear()
    for _ in range(20):
        await pacer.wait("-100500", new_message=False)  # edits count only overall
        await pacer.wait("1001", new_message=True)
    assert sum(time.slept) < 1.5


async def test_limits_off_when_zero() -> None:
    time = FakeTime()
    pacer = limits.Pacer(per_second=0, group_per_minute=0, now=lambda: time.now, sleep=time.sleep)
    for _ in range(1000):
        await pacer.wait("-1", new_message=True)
    assert time.slept == []


async def test_retrying_waits_out_429_and_network_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # as the transport does at start
    time = FakeTime()
    call = failing(RetryAfter(3), NetworkError("reset"), TimedOut())
    assert await limits.retrying(call, what="sendMessage", sleep=time.sleep) == "sent"
    assert time.slept == [3.0, 0.25, 0.5]


async def test_retrying_gives_up_on_bad_requests_and_after_a_few_network_errors() -> None:
    time = FakeTime()
    with pytest.raises(BadRequest):
        await limits.retrying(failing(BadRequest("chat not found")), what="x", sleep=time.sleep)
    assert time.slept == []
    with pytest.raises(NetworkError):
        await limits.retrying(failing(*[NetworkError("down")] * 10), what="x", sleep=time.sleep)
    assert len(time.slept) == limits.NETWORK_ATTEMPTS - 1
