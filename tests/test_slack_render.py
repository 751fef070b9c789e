"""Slack rendering and parsing, as pure functions: mrkdwn, sections, blocks, ids."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.text import bold, code, link, pre, rich
from bot.transports.slack.inbound import (
    SlackBotIdentity,
    clean_text,
    from_command,
    thread_ts_of,
)
from bot.transports.slack.render import (
    MAX_BLOCKS,
    SECTION_CHARS,
    press_of,
    render,
    render_message,
    sections,
)
from bot.transports.slack.threads import ThreadMemory
from bot.types import Button, ButtonStyle, Outgoing, Press
from storage.clock import SystemClock
from storage.db import Database, sqlite_url
from storage.threads import ThreadAgents
from storage.writer import WriteBehind

ME = SlackBotIdentity(user_id="UBOT", bot_id="BBOT", team_id="T1", name="deck")
COMMANDS = {"agents", "ask", "help", "jobs"}


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def test_markup_characters_are_escaped_everywhere() -> None:
    text = rich("a <!channel> & b ", bold("x<y"), " ", code("&"), pre("<b>"))
    assert render(text) == "a &lt;!channel&gt; &amp; b *x&lt;y* `&amp;`\n```&lt;b&gt;```"


def test_spans_that_cannot_hold_their_marks_are_shown_plain() -> None:
    assert render(rich(bold("2*3"))) == "2*3"
    assert render(rich("a", bold(" padded "), "b")) == "a *padded* b"
    assert render(rich(code("a`b"))) == "a`b"
    assert render(rich(pre("x\n```\ny"))) == "```x\n`\u200b``\ny```"
    assert render(rich(pre("\n\n"))) == ""


def test_links_and_user_ids() -> None:
    assert render(rich(link("the <docs>", "https://x.test/a?b=1&c=d|e f"))) == (
        "<https://x.test/a?b=1&amp;c=d%7Ce%20f|the &lt;docs&gt;>"
    )
    assert render(rich("Approved by slack:U024BE7LH.")) == "Approved by <@U024BE7LH>."


def test_sections_stay_under_the_limit_even_when_escaping_grows_the_text() -> None:
    parts = sections(rich("&" * 10_000))
    assert all(len(part) <= SECTION_CHARS for part in parts)
    assert "".join(parts) == "&amp;" * 10_000


def test_a_cut_code_block_is_closed_and_reopened() -> None:
    body = "\n".join(f"line {n}" for n in range(2000))
    parts = sections(rich(bold("out"), "\n", pre(body)))
    assert len(parts) > 1
    assert all(part.count("```") == 2 for part in parts[1:])
    assert all(len(part) <= SECTION_CHARS for part in parts)


@given(st.text(alphabet=st.sampled_from("ab &<>*`\n_"), max_size=9000))
def test_sections_keep_every_character(text: str) -> None:
    parts = sections(rich(text))
    assert all(len(part) <= SECTION_CHARS for part in parts)
    kept = _unescape("".join(parts))
    assert "".join(kept.split()) == "".join(text.split())


def test_buttons_become_an_actions_block_with_unique_ids() -> None:
    buttons = (
        Button("Approve", "approval", "ab12:approve", ButtonStyle.PRIMARY),
        Button("Deny", "approval", "ab12:deny", ButtonStyle.DANGER),
        Button("Later", "approval", "ab12:later"),
    )
    rendered = render_message(Outgoing(chat="slack:C1", text=rich("ok?"), buttons=buttons))
    section, actions = rendered.blocks
    assert section["text"] == {"type": "mrkdwn", "text": "ok?", "verbatim": True}
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == ["approval#0", "approval#1", "approval#2"]
    assert [e.get("style") for e in actions["elements"]] == ["primary", "danger", None]
    assert press_of(ids[1], "ab12:deny") == Press("approval", "ab12:deny")


def test_fifty_blocks_at_most_then_a_file() -> None:
    def paragraphs(n: int) -> str:
        return "\n\n".join("x" * 2990 for _ in range(n))

    button = (Button("Go", "approval", "v"),)
    fits = render_message(Outgoing(chat="slack:C1", text=rich(paragraphs(49)), buttons=button))
    assert (len(fits.blocks), fits.attachment) == (MAX_BLOCKS, None)
    big = render_message(Outgoing(chat="slack:C1", text=rich(paragraphs(50)), buttons=button))
    assert len(big.blocks) == 3  # the start, a note, the buttons
    assert big.attachment == paragraphs(50)
    assert len(big.text) <= 300


def test_slack_wire_text_becomes_what_was_typed() -> None:
    typed = (
        "<@UBOT> ask <@U123|ada> about <https://x.test/a|x.test> in <#C9|ops>, "
        "mail <mailto:a@b.test|a@b.test> <!here> 1 &lt; 2 &amp;&amp; 3 &gt; 2"
    )
    assert clean_text(typed, "UBOT") == (
        "ask slack:U123 about https://x.test/a in #ops, mail a@b.test @here 1 < 2 && 3 > 2"
    )


def test_deck_command_maps_to_our_commands() -> None:
    def mapped(text: str) -> str:
        body = {"text": text, "channel_id": "C1", "user_id": "U1", "trigger_id": "t"}
        return from_command(body, ME, COMMANDS).text

    assert mapped("agents") == "/agents"
    assert mapped("ask ops uptime") == "/ask ops uptime"
    assert mapped("Jobs") == "/jobs"
    assert mapped("") == "/help"
    assert mapped("@ops disk") == "@ops disk"
    assert mapped("how is the disk?") == "how is the disk?"


async def test_thread_memory_addresses_the_agent_named_last(data_dir: Path) -> None:
    async with Database(sqlite_url(data_dir)) as db, WriteBehind(db) as writer:
        store = ThreadAgents(db=db, writer=writer, clock=SystemClock())
        threads, elsewhere = ThreadMemory(store), ThreadMemory(store)  # two processes
        assert await threads.route("slack:C1/1.0", "@ops uptime") == "@ops uptime"
        assert await elsewhere.route("slack:C1/1.0", "and disk") == "@ops and disk"
        assert await elsewhere.route("slack:C1/1.0", "/ask dev build") == "/ask dev build"
        assert await threads.route("slack:C1/1.0", "status?") == "@dev status?"
        assert await threads.route("slack:C1/1.0", "/agents") == "/agents"
        assert await threads.route("slack:C1/2.0", "fresh") == "fresh"
        assert await threads.route(None, "no thread") == "no thread"


def test_thread_ids_belong_to_their_channel() -> None:
    assert thread_ts_of("slack:C1/1712.0001", "C1") == "1712.0001"
    assert thread_ts_of("slack:C2/1712.0001", "C1") is None
    assert thread_ts_of(None, "C1") is None
