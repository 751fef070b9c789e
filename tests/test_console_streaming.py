"""A streamed answer in the console (#19 point 6): printed as it comes, each new piece
once (no re-print of the whole text), while the fake OpenAI is still streaming; the
script's output stays one line per message (a card after an answer starts on its own
line) and the run stores the final text.

Attack: a secret's value streamed in pieces is never printed, not even its first half
(only whole words are printed, after the scrub).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

import pytest
from sqlmodel import select

from bot.app import open_deck
from storage.models import Run
from tests.fakes.openai_server import FakeOpenAI, stream
from tests.support.config import make_config
from tests.support.waiting import eventually

SECRET = "sk-streamed-secret-0a9b8c7d6e5f"
ANSWER = f"The disk is fine: 42% used on /, 17% on /var. The key is {SECRET} and all good."
CONFIG = """
[deck]
default_agent = "writer"
[llm]
base_url = "OPENAI_URL"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "writer"
kind = "llm"
model = "fake-model"
"""


class Screen:
    """stdout of a script (not a terminal): each write, with how many streams had ended."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self._fake = fake
        self.writes: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.writes.append((text, self._fake.streams_ended))
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    @property
    def text(self) -> str:
        with self._lock:
            return "".join(text for text, _ in self.writes)


@contextmanager
def typed() -> Iterator[tuple[TextIO, TextIO]]:
    """A pipe as stdin: what the test writes is what a script feeds."""
    read, write = os.pipe()
    with os.fdopen(read, "r") as stdin, os.fdopen(write, "w") as feed:
        yield stdin, feed


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", SECRET)  # the agent's key: a value the bot scrubs


async def test_a_streamed_answer_is_printed_as_it_comes_and_once(
    fake_openai: FakeOpenAI, data_dir: object
) -> None:
    fake_openai.script = [stream(ANSWER, delay=0.1, chars=5)]
    config = make_config(CONFIG.replace("OPENAI_URL", fake_openai.base_url))
    screen = Screen(fake_openai)
    with typed() as (stdin, feed):
        async with open_deck(config, stdin=stdin, stdout=screen) as (deck, _):  # type: ignore[arg-type]
            feed.write("how is the disk?\n")
            feed.flush()
            await eventually(lambda: "all good." in screen.text or None, timeout=30)
            feed.write("/help\n")
            feed.flush()
            await eventually(lambda: "what I can do" in screen.text or None, timeout=30)

            async def stored() -> Run | None:
                await deck.runner.flush()
                async with deck.db.session() as session:
                    runs = (await session.exec(select(Run))).all()
                return runs[0] if runs and runs[0].finished_at is not None else None

            run = await eventually(stored, timeout=30)
    pieces = [(text, ended) for text, ended in screen.writes if text]
    answer_pieces = [text for text, ended in pieces if ended == 0 and "working" not in text]
    assert len(answer_pieces) >= 5, pieces  # printed while the fake was still streaming
    assert answer_pieces[0].startswith("writer: The ")
    out = screen.text
    assert out.count("The disk is fine") == 1  # never printed twice
    line = next(line for line in out.splitlines() if line.startswith("writer: "))
    scrubbed = ANSWER.replace(SECRET, "[redacted:env:TEST_OPENAI_KEY]")
    assert line == f"writer: {scrubbed}"
    assert SECRET[:10] not in out  # not even the first half of the value
    assert out.endswith("\n")  # the answer's line is ended; the next message has its own
    assert out.index(line + "\n") < out.index("what I can do")
    assert run.output == scrubbed  # the final text is what is stored
