"""Files and Claude Code (#19 points 3 to 5): through the fake Bot API to the real CLI.

A photo and a document sent to a claude agent reach the fake Anthropic API as paths in
the prompt (`[attached: …]`), their folder given to the CLI as a directory it may read
(`--add-dir`); a Bash command the model runs leaves a file in `$AGENTDECK_OUTBOX_DIR`,
which arrives in the chat as a document when the turn ends.

Attack: another chat's attachments are not a directory the CLI is given (only this
message's folder), and nothing of the bot's environment but the outbox variable is added.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import open_deck
from bot.intake.files import FOLDER
from tests.fakes.anthropic_server import FakeAnthropic, all_text, last_user_text, say, use
from tests.fakes.telegram_server import FakeTelegram
from tests.support.agent_clis import claude_config_text, without_foreign_env
from tests.support.config import make_config

pytestmark = pytest.mark.slow  # each test starts the Claude Code CLI

ADMIN = 1001


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = await FakeAnthropic().start()
    yield server
    await server.stop()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    without_foreign_env(monkeypatch)
    path = tmp_path / "work"
    path.mkdir()
    return path


def telegram_config(fake: FakeAnthropic, workdir: Path, telegram: FakeTelegram) -> str:
    return claude_config_text(fake, workdir).replace(
        '[[users]]\nid = "test:admin"',
        f'[telegram]\ntoken = "env:TG_TOKEN"\nbase_url = "{telegram.base_url}"\n'
        f'base_file_url = "{telegram.base_file_url}"\n'
        f'[[users]]\nid = "telegram:{ADMIN}"\nrole = "admin"\n'
        '[[users]]\nid = "test:admin"',
    )


def system_text(body: dict[str, object]) -> str:
    system = body.get("system") or []
    assert isinstance(system, list)
    return "\n".join(str(block.get("text", "")) for block in system if isinstance(block, dict))


async def test_a_photo_and_a_document_reach_claude_as_paths_it_may_read(
    fake: FakeAnthropic,
    workdir: Path,
    fake_telegram: FakeTelegram,
    data_dir: Path,
) -> None:
    fake.script += [say("A photo, seen."), say("A document, seen.")]
    async with (
        asyncio.timeout(90),
        open_deck(make_config(telegram_config(fake, workdir, fake_telegram))),
    ):
        photo = [{**fake_telegram.add_file(b"\x89PNG photo"), "width": 800, "height": 600}]
        fake_telegram.user_sends({"photo": photo, "caption": "what is it?"}, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("A photo, seen." in t for t in fake_telegram.sent_texts(ADMIN)), timeout=60
        )
        document = {**fake_telegram.add_file(b"quarterly numbers"), "file_name": "q3.txt"}
        fake_telegram.user_sends({"document": document, "caption": "sum it up"}, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("A document, seen." in t for t in fake_telegram.sent_texts(ADMIN)),
            timeout=60,
        )
    saved = sorted((data_dir / FOLDER).rglob("*.*"), key=lambda p: p.stat().st_mtime)
    photo_path = next(p for p in saved if p.read_bytes() == b"\x89PNG photo")
    text_path = next(p for p in saved if p.name == "q3.txt")
    first, second = fake.requests[0], fake.requests[-1]
    assert last_user_text(first) == f"what is it?\n\n[attached: {photo_path}]"
    assert last_user_text(second) == f"sum it up\n\n[attached: {text_path}]"
    # The CLI was given this message's folder (it lists its working directories to the
    # model) and the run's outbox, never the folder of all attachments; the next
    # message's run drops the first message's folder.
    outboxes = sorted((data_dir / "outbox").iterdir(), key=lambda p: p.stat().st_mtime)
    assert (
        f" - Additional working directories:\n  - {photo_path.parent}\n  - {outboxes[0]}\n"
        in all_text(first)
    )
    told = all_text(second)
    assert f"added:\n  - {text_path.parent}\n  - {outboxes[1]}\n" in told
    assert f"removed:\n  - {photo_path.parent}\n" in told
    assert f"  - {data_dir / FOLDER}\n" not in all_text(first) + told
    assert "AGENTDECK_OUTBOX_DIR" in system_text(second)
    assert fake.unhandled == []


async def test_a_file_claude_writes_to_the_outbox_arrives_in_telegram(
    fake: FakeAnthropic,
    workdir: Path,
    fake_telegram: FakeTelegram,
    data_dir: Path,
) -> None:
    fake.script += [
        use("Bash", command='echo hi > "$AGENTDECK_OUTBOX_DIR/report.txt"'),
        say("Report written."),
    ]
    async with (
        asyncio.timeout(90),
        open_deck(make_config(telegram_config(fake, workdir, fake_telegram))),
    ):
        fake_telegram.user_says("write a report", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("Approval needed" in t for t in fake_telegram.sent_texts(ADMIN)),
            timeout=60,
        )
        card = next(
            m
            for m in fake_telegram.messages.values()
            if "Approval needed" in m.get("text", "") and m.get("reply_markup")
        )
        buttons = {
            b["text"]: b["callback_data"]
            for row in card["reply_markup"]["inline_keyboard"]
            for b in row
        }
        fake_telegram.press(
            buttons["Approve"], message_id=card["message_id"], chat=ADMIN, user=ADMIN
        )
        await fake_telegram.wait_for("sendDocument", timeout=60)
    (sent,) = fake_telegram.calls_to("sendDocument")
    assert sent.params["caption"] == "coder: report.txt"
    assert list(fake_telegram.documents.values()) == [b"hi\n"]
    assert not (workdir / "report.txt").exists()
    assert fake.unhandled == []
