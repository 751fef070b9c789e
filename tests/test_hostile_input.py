"""Random and hostile input: the dispatcher and the config loader never crash and run nothing
they should not."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import open_deck
from bot.config import parse_config
from bot.errors import ConfigError
from bot.types import Incoming, Press
from tests.fakes.chat import ChatRecorder
from tests.support.config import make_config

CONFIG = """
[deck]
default_agent = "echo"
max_message_chars = 50000
rate_limit_per_minute = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "argv"
kind = "command"
command = ["printf", "%s|", "{input}"]
[[agents]]
name = "gated"
kind = "command"
command = ["touch", "{input}"]
approval = "always"
"""

hostile_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=50),
    st.sampled_from(
        [
            "/",
            "@",
            "/ask",
            "/ask ",
            "@@",
            "/stop",
            "/approve",
            "/deny x",
            "\x00",
            "\u202e",
            "/ask argv",
        ]
    ),
    st.builds(
        lambda a, b: a + b,
        st.sampled_from(["/ask argv ", "@argv ", "/ask echo "]),
        st.text(max_size=100),
    ),
)


def run_messages(texts: list[str], presses: list[str], tmp: Path) -> ChatRecorder:
    async def scenario() -> ChatRecorder:
        chat = ChatRecorder()
        async with (
            asyncio.timeout(60),
            open_deck(make_config(CONFIG), transports=[chat]) as (deck, _),
        ):
            for text in texts:
                await chat.say(text)
            for value in presses:
                await deck_press(chat, value)
            await deck.tasks.drain()
        return chat

    return asyncio.run(scenario())


async def deck_press(chat: ChatRecorder, value: str) -> None:
    assert chat._handle is not None
    await chat._handle(
        Incoming(
            transport="test", chat="test:chat", user="test:admin", press=Press("approval", value)
        )
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(texts=st.lists(hostile_text, max_size=6), presses=st.lists(st.text(max_size=40), max_size=3))
def test_dispatcher_survives_anything(texts: list[str], presses: list[str], tmp_path: Path) -> None:
    chat = run_messages(texts, presses, tmp_path)
    for posted in chat.posted:
        assert "Traceback" not in posted.text
        assert "internal error" not in posted.text


def test_shell_metacharacters_stay_one_argument(tmp_path: Path) -> None:
    evil = f"; touch {tmp_path}/pwned && echo $(id) `id` | cat > {tmp_path}/x"
    chat = run_messages([f"/ask argv {evil}"], [], tmp_path)
    assert any(evil + "|" in p.text for p in chat.posted)
    assert list(tmp_path.glob("pwned")) == []
    assert list(tmp_path.glob("x")) == []


def test_forged_presses_never_run_the_gated_agent(tmp_path: Path) -> None:
    target = tmp_path / "ran"
    chat = run_messages(
        [f"/ask gated {target}"],
        ["00000000:approve", ":approve", "x" * 500, "../../:approve"],
        tmp_path,
    )
    assert any("Approval needed" in p.text for p in chat.posted)
    assert not target.exists()
    assert chat.press_answers == [("No such approval request.", True)] * 4


def test_a_100_kb_message_gets_a_short_answer(tmp_path: Path) -> None:
    chat = run_messages(["y" * 100_000], [], tmp_path)
    assert [p.text for p in chat.posted] == [
        "That message is 100,000 characters; the limit is 50,000. Send a shorter one."
    ]


toml_values = st.recursive(
    st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=False), st.booleans()),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    data=st.dictionaries(
        st.sampled_from(["deck", "llm", "agents", "users", "bindings", "telegram", "console", "x"]),
        toml_values,
        max_size=4,
    )
)
def test_config_loader_answers_with_a_config_or_one_clear_error(data: dict[str, object]) -> None:
    try:
        parse_config(data, source="fuzz.toml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("fuzz.toml: ")
        assert "\n" not in message


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_toml_text_is_answered(text: str) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    try:
        parse_config(data, source="t.toml")
    except ConfigError as exc:
        assert str(exc).startswith("t.toml: ")  # noqa: PT017  (only some inputs raise)
