"""Streaming: time from a model's first token to the first visible text in Telegram, and
the edits per answer (#19 point 6).

The bot (a SQLite deck, the real Telegram transport) runs in this process against the
fake Bot API and a fake OpenAI that streams each answer in `--chunks` pieces
`--delay` seconds apart; `--chats` people ask at once. It prints a Markdown table:

    .venv/bin/python -m bench.streaming [--chats 10] [--chunks 60] [--delay 0.05]

"first visible" runs from the first chunk leaving the fake OpenAI to the first
`sendMessage` into that chat; "edits" counts `editMessageText` per answer (the growing
text and the final one) and the shortest gap between two edits in one chat (Telegram
allows about one a second per chat).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time

from bot.app import open_deck
from bot.config import parse_config
from tests.fakes.openai_server import FakeOpenAI, stream
from tests.fakes.telegram_server import FakeTelegram

FIRST_USER = 5001


def config(telegram: FakeTelegram, openai: FakeOpenAI, chats: int) -> dict[str, object]:
    users = [{"id": f"telegram:{FIRST_USER + n}", "role": "operator"} for n in range(chats)]
    return {
        "deck": {"default_agent": "writer", "rate_limit_per_minute": 0},
        "telegram": {"token": "env:TG_TOKEN", "base_url": telegram.base_url,
                     "messages_per_second": 0, "group_messages_per_minute": 0},
        "llm": {"base_url": openai.base_url, "api_key": "env:BENCH_OPENAI_KEY", "max_retries": 0},
        "users": users,
        "agents": [{"name": "writer", "kind": "llm", "model": "fake-model"}],
    }  # fmt: skip


async def run(chats: int, chunks: int, delay: float) -> dict[str, float]:
    telegram = await FakeTelegram().start()
    openai = await FakeOpenAI().start()
    os.environ["TG_TOKEN"] = telegram.token
    os.environ["BENCH_OPENAI_KEY"] = "sk-bench"
    answer = " ".join(f"word{n}" for n in range(chunks))
    openai.script = [stream(answer, delay=delay, chars=len(answer) // chunks) for _ in range(chats)]
    deck_config = parse_config(config(telegram, openai, chats), source="bench")
    try:
        async with open_deck(deck_config):
            for n in range(chats):
                telegram.user_says(f"question {n}", user=FIRST_USER + n)
            final = f"writer: {answer}"
            await telegram.wait_until(
                lambda: sum(t == final for t in telegram.sent_texts()) == chats, timeout=120
            )
    finally:
        await openai.stop()
        await telegram.stop()
    return measure(telegram, openai, chats)


def measure(telegram: FakeTelegram, openai: FakeOpenAI, chats: int) -> dict[str, float]:
    starts = {text.removeprefix("question "): at for text, at in openai.stream_starts}
    first_visible: list[float] = []
    edits: list[int] = []
    gaps: list[float] = []
    for n in range(chats):
        chat = FIRST_USER + n
        sends = [c.at for c in telegram.calls_to("sendMessage") if int(c.params["chat_id"]) == chat]
        chat_edits = [
            c.at for c in telegram.calls_to("editMessageText") if int(c.params["chat_id"]) == chat
        ]
        first_visible.append((sends[0] - starts[str(n)]) * 1000)
        edits.append(len(chat_edits))
        gaps += [b - a for a, b in itertools.pairwise(chat_edits)]
    return {
        "first_p50": statistics.median(first_visible),
        "first_max": max(first_visible),
        "edits_p50": statistics.median(edits),
        "edits_max": max(edits),
        "gap_min": min(gaps) if gaps else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=60)
    parser.add_argument("--delay", type=float, default=0.05)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        os.environ["AGENTDECK_DATA_DIR"] = data
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        figures = asyncio.run(run(options.chats, options.chunks, options.delay))
        took = time.perf_counter() - started
        load_after = os.getloadavg()[0]
    seconds = options.chunks * options.delay
    print(
        f"| {options.chats} chats at once, {options.chunks} chunks over {seconds:.1f} s "
        f"| {figures['first_p50']:.0f} / {figures['first_max']:.0f} ms "
        f"| {figures['edits_p50']:.0f} / {figures['edits_max']:.0f} "
        f"| {figures['gap_min']:.2f} s |"
    )
    print(f"(load average {load_before:.1f} before, {load_after:.1f} after; {took:.1f} s in all)")


if __name__ == "__main__":
    main()
