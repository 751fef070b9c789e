"""Markdown from models, rendered for every chat and never broken (#19 point 7).

`bot.markdown` turns Markdown into spans; each transport renders spans. Checked here:
every construct on Telegram (HTML that Telegram's parser, as the fake implements it,
accepts), Slack mrkdwn, the console and the dashboard; malformed nesting and random
Markdown (hypothesis) never yield HTML Telegram refuses; and end to end through the fake
Bot API: an llm agent's Markdown arrives formatted, a refused entity is resent plain,
/help holds no literal backticks, a command agent's output stays preformatted.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.dashboard.web import rich_html
from bot.markdown import to_rich
from bot.text import Span, Style, plain_text, span_from_json, span_to_json
from bot.transports import console
from bot.transports.slack import render as slack
from bot.transports.telegram import render as telegram
from storage.models import Run, RunState
from tests.fakes.openai_server import FakeOpenAI, say
from tests.fakes.telegram_html import EntityError, parse_html
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.dashkit import dashboard_config, dashboard_deck, page
from tests.support.decks import running
from tests.support.telegram import ADMIN, CONFIG

EVERYTHING = """# Report

Some **bold**, *italic*, ***both***, ~~gone~~ and `x < y` in a line,
with [a **strong** link](https://example.com/?a=1&b=<2>) and <b>raw html</b> & more.

- one
- two
  1. nested
  2. list
- three

> a quote with *emphasis*
> on two lines

```python
if a < b and c > d:
    print("&")
```

| name | size |
|------|------|
| a.txt | 12 |

---
![chart](https://example.com/c.png) [evil](javascript:alert(1)) [data](data:text/html,x)
"""


def telegram_nesting_problems(html: str) -> list[str]:
    """What Telegram would drop silently: tags inside code/pre (but the language's
    `<code>` right in a `<pre>`), a quote in a quote, a link in a link."""
    problems: list[str] = []
    stack: list[str] = []
    for match in re.finditer(r"<(/?)([a-z-]+)([^>]*)>", html):
        closing, tag, attrs = match.groups()
        if closing:
            stack.pop()
            continue
        inner_code = tag == "code" and stack[-1:] == ["pre"] and "language-" in attrs
        if any(t in ("code", "pre") for t in stack) and not inner_code:
            problems.append(f"<{tag}> inside {stack}")
        if tag in ("blockquote", "a") and tag in stack:
            problems.append(f"<{tag}> inside <{tag}>")
        stack.append(tag)
    return problems


def telegram_pages(markdown: str) -> list[str]:
    return [html for html, _ in telegram.pages(to_rich(markdown))]


# -- each construct ---------------------------------------------------------------------


def test_every_construct_renders_as_telegram_html() -> None:
    html = telegram.to_html(to_rich(EVERYTHING))
    assert "<b>Report</b>" in html
    assert "<b>bold</b>" in html
    assert "<i>italic</i>" in html
    assert "<b><i>both</i></b>" in html
    assert "<s>gone</s>" in html
    assert "<code>x &lt; y</code>" in html
    assert '<a href="https://example.com/?a=1&amp;b=%3C2%3E">a </a>' in html
    assert '<b><a href="https://example.com/?a=1&amp;b=%3C2%3E">strong</a></b>' in html
    assert "&lt;b&gt;raw html&lt;/b&gt; &amp; more" in html  # raw HTML is text
    assert "• one\n• two\n   1. nested\n   2. list\n• three" in html
    assert "<blockquote>a quote with <i>emphasis</i>\non two lines</blockquote>" in html
    assert (
        '<pre><code class="language-python">if a &lt; b and c &gt; d:\n'
        '    print("&amp;")</code></pre>'
    ) in html
    assert "<pre>name  | size\n------+-----\na.txt | 12</pre>" in html
    assert "———" in html
    assert '<a href="https://example.com/c.png">chart</a>' in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs
    assert all(href.startswith("https://") for href in hrefs)  # javascript:, data: are text
    visible = parse_html(html)
    assert "**" not in visible
    assert "```" not in visible
    assert telegram_nesting_problems(html) == []


def test_every_construct_renders_as_slack_mrkdwn() -> None:
    text = slack.render(to_rich(EVERYTHING))
    assert "*Report*" in text
    assert "*bold*" in text
    assert "_italic_" in text
    assert "*_both_*" in text
    assert "~gone~" in text
    assert "`x &lt; y`" in text
    assert "<https://example.com/?a=1&amp;b=%3C2%3E|a >" in text
    assert "&lt;b&gt;raw html&lt;/b&gt; &amp; more" in text
    assert "> a quote with _emphasis_\n> on two lines" in text
    assert '```if a &lt; b and c &gt; d:\n    print("&amp;")```' in text
    assert "• one\n• two" in text
    assert "<javascript:" not in text


def test_every_construct_reads_well_on_the_console() -> None:
    text = console.render(to_rich(EVERYTHING))
    assert text.startswith("Report\n\nSome bold, italic, both, gone and `x < y` in a line,")
    assert "a strong link <https://example.com/?a=1&b=%3C2%3E>" in text
    assert "│ a quote with emphasis\n│ on two lines" in text
    assert '  if a < b and c > d:\n      print("&")' in text
    assert "**" not in text
    assert "<b>raw html</b>" in text  # shown as written


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))
        if tag != "br":
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop() == tag


def test_the_dashboard_gets_sanitised_html() -> None:
    hostile = EVERYTHING + '\n<script>alert(1)</script> [x](https://a.b/" onmouseover="y)\n'
    html = str(rich_html(to_rich(hostile)))
    tags = _Tags()
    tags.feed(html)
    assert tags.open == []  # balanced
    allowed = {"strong", "em", "del", "code", "pre", "a", "blockquote", "br"}
    assert {tag for tag, _ in tags.seen} <= allowed
    for tag, attrs in tags.seen:
        names = {name for name, _ in attrs}
        assert names <= {"href", "rel", "class"}, (tag, attrs)
        for name, value in attrs:
            if name == "href":
                assert value is not None
                assert value.startswith(("https://", "http://", "mailto:")), value
    assert "<script>" not in html


# -- malformed input --------------------------------------------------------------------

MALFORMED = [
    "**bold _italic** still_",
    "***a**b*",
    "`unclosed code",
    "```\nunclosed fence <b>",
    "[link](",
    "[a [nested](https://x) link](https://y)",
    "<b>**x</b>**",
    "> quote\n```\ncode in quote\n```\n> again",
    "> > nested > quotes\n>> and more",
    "* * *\n- - -\n***",
    "~~strike **bold~~ tail**",
    "1. a\n   - b\n     > c ```d```",
    "&lt;already escaped&gt; &amp; &#x1F600; &bogus;",
    "_a *b _c* d_ e*",
    "| a |\n|---|\n| `|` | extra | cells |",
    "\\*not bold\\* \\`not code\\`",
    "line one  \nhard break\\\nagain",
    "[x](<https://spaces in url>) <https://auto.link> <mailto:a@b.c>",
    "😀 **emoji 🎉 bold** \U0001d54f",
]


@pytest.mark.parametrize("markdown", MALFORMED)
def test_malformed_nesting_is_still_valid_for_telegram(markdown: str) -> None:
    for html in telegram_pages(markdown):
        parse_html(html)  # raises EntityError as Telegram would
        assert telegram_nesting_problems(html) == []
    assert slack.render(to_rich(markdown)) is not None
    console.render(to_rich(markdown))


MARKDOWN_BITS = st.sampled_from(
    [
        "*", "**", "_", "__", "~~", "`", "```", "```py\n", "\n", "\n\n", "> ", "- ", "1. ",
        "# ", "[", "]", "(", ")", "](https://e.com)", "](javascript:x)", "<", ">", "&",
        "&amp;", "<b>", "</i>", "|", "---", "  ", "\\", "!", "word", "two words", "é", "😀",
    ]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(MARKDOWN_BITS, max_size=40).map("".join))
def test_random_markdown_never_yields_html_telegram_rejects(markdown: str) -> None:
    text = to_rich(markdown)
    for html, chunk in telegram.pages(text):
        assert parse_html(html) == plain_text(chunk) or not plain_text(text).strip()
        assert telegram_nesting_problems(html) == []
    for span in text:
        assert span.style is not Style.LINK or span.url.startswith(("https://", "http://"))


@settings(max_examples=50, deadline=None)
@given(st.lists(MARKDOWN_BITS, min_size=200, max_size=400).map(lambda b: "".join(b) * 8))
def test_long_random_markdown_splits_into_valid_pages(markdown: str) -> None:
    for html, _ in telegram.pages(to_rich(markdown)):
        parse_html(html)
        assert len(html.encode("utf-16-le")) // 2 <= telegram.MESSAGE_LIMIT


def test_the_fake_refuses_what_telegram_refuses() -> None:
    """The checks above mean something: the fake's parser does reject broken HTML."""
    for broken in ("<b>open", "a < b", "<b><i>x</b></i>", "<h1>x</h1>", "</b>"):
        with pytest.raises(EntityError):
            parse_html(broken)


# -- end to end through the fake Bot API ------------------------------------------------

LLM = """
[llm]
base_url = "OPENAI_URL"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "writer"
kind = "llm"
model = "fake-model"
stream = false  # one message, not edits of a growing one (tests/test_streaming.py)
[[agents]]
name = "plainwriter"
kind = "llm"
model = "fake-model"
markdown = false
stream = false
[[agents]]
name = "mdcmd"
kind = "command"
command = ["printf", "%s", "**done** in `1 s`"]
markdown = true
[[agents]]
name = "cmd"
kind = "command"
command = ["printf", "%s", "**as printed**"]
"""


def llm_config(telegram_fake: FakeTelegram, openai: FakeOpenAI) -> str:
    config = CONFIG.replace("BASE_URL", telegram_fake.base_url)
    return config + LLM.replace("OPENAI_URL", openai.base_url)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


async def test_llm_markdown_arrives_formatted_in_telegram(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [say(EVERYTHING)]
    async with running(make_config(llm_config(fake_telegram, fake_openai))):
        fake_telegram.user_says("@writer report please", user=ADMIN)
        await fake_telegram.wait_until(lambda: "Report" in "".join(fake_telegram.sent_texts()))
    sent = [c.params for c in fake_telegram.calls_to("sendMessage") if "Report" in c.params["text"]]
    (params,) = sent
    assert params["parse_mode"] == "HTML"
    assert params["text"].startswith("<b>writer</b>\n<b>Report</b>")
    assert "<blockquote>" in params["text"]
    (shown,) = [t for t in fake_telegram.sent_texts(ADMIN) if "Report" in t]
    assert "**" not in shown
    assert "• one" in shown


async def test_markdown_refused_by_telegram_is_resent_plain(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [say("**bold** answer")]
    fake_telegram.fail_next(
        "sendMessage",
        status=400,
        retry_after=None,
        description="Bad Request: can't parse entities: Can't find end tag corresponding to start tag b",
    )
    async with running(make_config(llm_config(fake_telegram, fake_openai))):
        fake_telegram.user_says("@writer go", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    (call,) = fake_telegram.calls_to("sendMessage")
    assert call.params["text"] == "writer: bold answer"
    assert "parse_mode" not in call.params


async def test_markdown_option_per_agent(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [say("**kept as written**")]
    async with running(make_config(llm_config(fake_telegram, fake_openai))):
        fake_telegram.user_says("@plainwriter go", user=ADMIN)
        fake_telegram.user_says("@mdcmd go", user=ADMIN)
        fake_telegram.user_says("@cmd go", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: (
                sum("exit 0" in t for t in fake_telegram.sent_texts(ADMIN)) == 2
                and any("kept" in t for t in fake_telegram.sent_texts(ADMIN))
            )
        )
    html = [c.params["text"] for c in fake_telegram.calls_to("sendMessage")] + [
        c.params["text"] for c in fake_telegram.calls_to("editMessageText")
    ]
    assert "<b>plainwriter</b>: **kept as written**" in html
    assert any("<b>done</b> in <code>1 s</code>" in h for h in html)  # markdown = true
    assert any("<b>cmd</b>\n<pre>**as printed**" in h for h in html)  # a command: preformatted


async def test_help_holds_no_literal_backticks(fake_telegram: FakeTelegram) -> None:
    async with running(make_config(CONFIG.replace("BASE_URL", fake_telegram.base_url))):
        fake_telegram.user_says("/help", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    (shown,) = fake_telegram.sent_texts(ADMIN)
    assert "`" not in shown
    assert "with notes its notes" in shown
    (call,) = fake_telegram.calls_to("sendMessage")
    assert "<code>notes</code>" in call.params["text"]
    assert "<code>@agent text</code>" in call.params["text"]


def test_formatting_survives_the_outbox() -> None:
    """A queued answer is stored as JSON and read back: its marks, quote, language too;
    rows stored before the extras existed (three items) still read."""
    spans = to_rich(EVERYTHING)
    assert tuple(span_from_json(span_to_json(span)) for span in spans) == spans
    assert span_from_json(["x", "bold", ""]) == Span("x", Style.BOLD)
    forged = span_from_json(["x", "plain", "", {"marks": ["code", "italic"], "lang": "py"}])
    assert forged.marks == frozenset({Style.ITALIC})  # only emphasis is a mark


async def test_the_run_page_shows_markdown_as_safe_html_under_the_strict_csp() -> None:
    extra = '[[agents]]\nname = "md"\nkind = "command"\ncommand = ["true"]\nmarkdown = true\n'
    output = "**done** <script>alert(1)</script> [x](javascript:alert(1))"
    async with dashboard_deck(dashboard_config(extra)) as dash:
        now = dash.deck.clock.now()
        async with dash.deck.db.session() as session:
            for run_id, agent in (("m" * 32, "md"), ("e" * 32, "echo")):
                session.add(
                    Run(id=run_id, agent=agent, chat_id="test:ada", user_id="test:ada",
                        input="in", output=output, started_at=now, finished_at=now,
                        status=RunState.DONE)
                )  # fmt: skip
            await session.commit()
        async with dash.signed_in("test:admin") as client:
            async with client.get("/runs/" + "m" * 32) as response:
                body = await response.text()
                csp = response.headers["Content-Security-Policy"]
            plain = await page(client, "/runs/" + "e" * 32)
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert '<div id="run-output" class="markdown"><strong>done</strong> &lt;script&gt;' in body
    assert 'href="javascript' not in body
    assert "<script>alert" not in body
    assert '<pre id="run-output">**done** &lt;script&gt;' in plain  # a command: as printed


async def test_the_command_menu_holds_no_backticks(fake_telegram: FakeTelegram) -> None:
    async with running(make_config(CONFIG.replace("BASE_URL", fake_telegram.base_url))):
        await fake_telegram.wait_until(lambda: bool(fake_telegram.commands))
    forget = next(c for c in fake_telegram.commands if c["command"] == "forget")
    assert forget["description"] == "clear this chat's conversation memory, or with notes its notes"
    assert not any("`" in c["description"] for c in fake_telegram.commands)


PLAIN_LINES = ["echo: q1", "Hello, world. It is 3 p.m.; ok?", "x  y", "Été - 2+2 = 4!"]


@settings(max_examples=3000)
@given(st.text(alphabet="ab Zé1.:-+#=!?()'\"%$@/,;~*_`[]<>&|\\\t\n", max_size=14))
def test_a_text_the_parser_is_skipped_for_comes_back_as_the_parser_gives_it(text: str) -> None:
    """`to_rich` skips the parser for one plain line; it must give what the parser gives."""
    from bot.markdown import _Builder, _parser

    builder = _Builder()
    builder.blocks(_parser().parse(text))
    assert to_rich(text) == builder.result()


@pytest.mark.parametrize("text", PLAIN_LINES)
def test_a_plain_line_takes_the_fast_way(text: str) -> None:
    from bot.markdown import _PLAIN

    assert _PLAIN.fullmatch(text)
    assert to_rich(text) == (Span(text),)
