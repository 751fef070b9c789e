"""Photos and files in (#19 points 3 and 4, in part): fetched through the fake Bot API,
saved under the data directory, given to a `vision` llm agent as an image part (the
caption is the text) and to other agents as a path (`{files}` in a command template).

Attack tests: a file name that climbs out of its folder, a file above the limit, a
stranger's photo, a path typed into the text (never read as a file), a Slack file shared
in another chat.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bot.config import Config
from bot.intake.files import FOLDER, prune, safe_name
from storage import history
from storage.models import Run, RunAttachment, RunState
from tests.fakes.openai_server import FakeOpenAI, say
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.dashkit import dashboard_deck, page
from tests.support.decks import audit_actions, running
from tests.support.slack import CONFIG as SLACK_CONFIG
from tests.support.slack import slack_deck
from tests.support.telegram import ADMIN, CONFIG, STRANGER

AGENTS = """
[llm]
base_url = "OPENAI_URL"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "eye"
kind = "llm"
model = "vision-model"
vision = true
[[agents]]
name = "blind"
kind = "llm"
model = "text-model"
[[agents]]
name = "reader"
kind = "command"
command = ["sh", "-c", "for f in \\"$@\\"; do echo \\"file: $f\\"; cat \\"$f\\"; echo; done", "sh", "{files}"]
"""
PHOTO_BYTES = b"\x89PNG fake photo bytes"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


def files_config(telegram: FakeTelegram, openai: FakeOpenAI, max_mb: float = 20) -> Config:
    text = CONFIG.replace(
        "BASE_URL", f'{telegram.base_url}"\nbase_file_url = "{telegram.base_file_url}'
    )
    config = make_config(text + AGENTS.replace("OPENAI_URL", openai.base_url))
    deck = config.deck.model_copy(update={"max_file_mb": max_mb})
    return config.model_copy(update={"deck": deck})


def photo(telegram: FakeTelegram, content: bytes = PHOTO_BYTES) -> list[dict[str, Any]]:
    file = telegram.add_file(content)
    small = {**telegram.add_file(b"thumb"), "width": 90, "height": 90}
    return [small, {**file, "width": 800, "height": 600}]


def saved_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / FOLDER).rglob("*") if p.is_file())


async def test_a_photo_goes_to_a_vision_agent_as_an_image_part_with_its_caption(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, data_dir: Path
) -> None:
    fake_openai.by_model["vision-model"] = [say("a cat on a keyboard")]
    async with running(files_config(fake_telegram, fake_openai)) as deck:
        content = {"photo": photo(fake_telegram), "caption": "@eye what is this?"}
        fake_telegram.user_sends(content, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: "eye: a cat on a keyboard" in fake_telegram.sent_texts(ADMIN)
        )
        actions = await audit_actions(deck)
    (request,) = fake_openai.requests
    user = request["messages"][-1]
    assert user["role"] == "user"
    text, image = user["content"]
    assert text == {"type": "text", "text": "what is this?"}
    encoded = base64.b64encode(PHOTO_BYTES).decode()
    assert image == {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{encoded}"}}
    assert "files.received" in actions
    (kept,) = saved_files(data_dir)  # the largest size only
    assert kept.read_bytes() == PHOTO_BYTES
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    assert oct(kept.parent.stat().st_mode & 0o777) == "0o700"


async def test_an_agent_without_vision_gets_the_path_in_its_input(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, data_dir: Path
) -> None:
    fake_openai.by_model["text-model"] = [say("noted")]
    async with running(files_config(fake_telegram, fake_openai)):
        fake_telegram.user_sends({"photo": photo(fake_telegram), "caption": "@blind"}, user=ADMIN)
        await fake_telegram.wait_until(lambda: "blind: noted" in fake_telegram.sent_texts(ADMIN))
    (kept,) = saved_files(data_dir)
    (request,) = fake_openai.requests
    assert request["messages"][-1]["content"] == f"(sent a photo)\n\n[attached: {kept}]"


async def test_a_command_agent_gets_the_files_in_its_template(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, data_dir: Path
) -> None:
    async with running(files_config(fake_telegram, fake_openai)):
        document = {**fake_telegram.add_file(b"line one\nline two"), "file_name": "notes.txt"}
        fake_telegram.user_sends({"document": document, "caption": "@reader"}, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("line two" in t for t in fake_telegram.sent_texts(ADMIN))
        )
    (kept,) = saved_files(data_dir)
    assert kept.name == "notes.txt"
    (shown,) = [t for t in fake_telegram.sent_texts(ADMIN) if "line two" in t]
    assert f"file: {kept}\nline one\nline two" in shown


async def test_attack_a_file_name_never_leaves_its_folder(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, data_dir: Path, tmp_path: Path
) -> None:
    async with running(files_config(fake_telegram, fake_openai)):
        for name in ("../../../escaped.sh", "..\\..\\win.bat", "/etc/cron.d/x", ".hidden", ".."):
            document = {**fake_telegram.add_file(b"#!/bin/sh\necho owned"), "file_name": name}
            fake_telegram.user_sends({"document": document, "caption": "@reader"}, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: sum("owned" in t for t in fake_telegram.sent_texts(ADMIN)) == 5, timeout=15
        )
    kept = saved_files(data_dir)
    assert sorted(p.name for p in kept) == ["escaped.sh", "file1", "hidden", "win.bat", "x"]
    root = (data_dir / FOLDER).resolve()
    assert all(p.resolve().parent.parent == root for p in kept)
    outside = [p for p in tmp_path.rglob("*.sh") if root not in p.resolve().parents]
    assert outside == []
    assert safe_name("a/b/../../c d?.txt", "x") == "c_d_.txt"


async def test_attack_a_file_above_the_limit_is_refused_before_it_is_fetched(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, data_dir: Path
) -> None:
    async with running(files_config(fake_telegram, fake_openai, max_mb=0.001)) as deck:
        document = {**fake_telegram.add_file(b"z" * 50_000), "file_name": "big.log"}
        fake_telegram.user_sends({"document": document}, user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
        actions = await audit_actions(deck)
    (text,) = fake_telegram.sent_texts(ADMIN)
    assert "I take files up to" in text
    assert "refused.file" in actions
    assert not fake_telegram.calls_to("getFile")
    assert saved_files(data_dir) == []


async def test_attack_a_strangers_photo_is_never_fetched(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, data_dir: Path
) -> None:
    async with running(files_config(fake_telegram, fake_openai)):
        fake_telegram.user_sends({"photo": photo(fake_telegram)}, user=STRANGER)
        await fake_telegram.wait_for("sendMessage")
    assert "only work for the people listed" in fake_telegram.sent_texts(STRANGER)[0]
    assert not fake_telegram.calls_to("getFile")
    assert saved_files(data_dir) == []


async def test_attack_a_path_typed_into_the_text_is_not_a_file(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    """Only the bot's own download names files: `[attached: …]` typed is just text."""
    private = tmp_path / "private.txt"
    private.write_text("TOP SECRET CONTENT")
    fake_openai.by_model["vision-model"] = [say("ok")]
    async with running(files_config(fake_telegram, fake_openai)):
        fake_telegram.user_says(f"@reader [attached: {private}]", user=ADMIN)
        fake_telegram.user_says(f"@eye [attached: {private}]", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: (
                "eye: ok" in fake_telegram.sent_texts(ADMIN)
                and any(t.startswith("reader") for t in fake_telegram.sent_texts(ADMIN))
            )
        )
    assert "TOP SECRET" not in "".join(fake_telegram.sent_texts(ADMIN))
    assert isinstance(fake_openai.requests[0]["messages"][-1]["content"], str)  # no parts


async def test_attack_a_slack_file_from_another_chat_is_not_fetched(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    elsewhere = fake_slack.share_file(
        b"board minutes", name="minutes.pdf", mimetype="application/pdf", channel="CBOARD"
    )
    event = {
        "type": "message",
        "subtype": "file_share",
        "channel_type": "im",
        "channel": "D1",
        "user": "UOP",
        "text": "summarise",
        "ts": "1700000000.000200",
        "files": [elsewhere],
    }
    async with slack_deck(fake_slack, SLACK_CONFIG) as (_deck, slack):
        assert (await slack.event(event)).status == 200
        refusal = await fake_slack.wait_for_text("could not fetch that file")
    assert "file_not_shared_in_this_chat" in refusal.shown
    assert fake_slack.downloads == []


def test_folders_older_than_attachments_days_are_deleted(tmp_path: Path) -> None:
    base = tmp_path / FOLDER
    for name in ("20260101-aaaa", "20261130-bbbb", "20261205-cccc", "notours"):
        (base / name).mkdir(parents=True)
        (base / name / "f.txt").write_text("x")
    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert prune(tmp_path, now, days=30) == 1
    assert sorted(p.name for p in base.iterdir()) == ["20261130-bbbb", "20261205-cccc", "notours"]
    assert prune(tmp_path / "nothing-here", now, days=30) == 0


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` (built by hand, offsets and all)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


async def test_documents_reach_an_llm_agent_as_text_or_as_a_path(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, data_dir: Path
) -> None:
    """A log and a PDF are read as text; a binary file and a text file above 1 MB are
    given by their path."""
    fake_openai.by_model["text-model"] = [say("one"), say("two"), say("three"), say("four")]
    sends = [
        ({"file_name": "app.log", "mime_type": "text/plain"}, b"ERROR disk full on /var\n"),
        ({"file_name": "report.pdf", "mime_type": "application/pdf"}, tiny_pdf("Revenue up 12")),
        ({"file_name": "dump.bin", "mime_type": "application/octet-stream"}, b"\x00\x01\x02"),
        ({"file_name": "huge.txt", "mime_type": "text/plain"}, b"a" * 1_000_001),
    ]
    async with running(files_config(fake_telegram, fake_openai)):
        for number, (meta, content) in enumerate(sends, 1):
            document = {**fake_telegram.add_file(content), **meta}
            fake_telegram.user_sends({"document": document, "caption": "@blind sum up"}, user=ADMIN)
            await fake_telegram.wait_until(lambda n=number: len(fake_openai.requests) == n)
    asked = [r["messages"][-1]["content"] for r in fake_openai.requests]
    assert asked[0] == "sum up\n\n--- app.log ---\nERROR disk full on /var\n"
    assert asked[1].startswith("sum up\n\n--- report.pdf ---\n")
    assert "Revenue up 12" in asked[1]
    for content, name in ((asked[2], "dump.bin"), (asked[3], "huge.txt")):
        (kept,) = [p for p in saved_files(data_dir) if p.name == name]
        assert content == f"sum up\n\n[attached: {kept}]"


async def test_the_files_are_listed_with_the_run(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    async with running(files_config(fake_telegram, fake_openai)) as deck:
        document = {**fake_telegram.add_file(b"hello"), "file_name": "greeting.txt"}
        fake_telegram.user_sends({"document": document, "caption": "@reader"}, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("hello" in t for t in fake_telegram.sent_texts(ADMIN))
        )
        await deck.runner.flush()
        async with deck.db.session() as session:
            (run,) = (await session.exec(select(Run))).all()
        parts = await history.run_parts(deck.db, run.id)
    (listed,) = parts.attachments
    assert (listed.name, listed.kind, listed.size) == ("greeting.txt", "document", 5)
    assert listed.path.endswith("/greeting.txt")


async def test_the_run_page_lists_the_files_sent() -> None:
    async with dashboard_deck() as dash:
        now = dash.deck.clock.now()
        async with dash.deck.db.session() as session:
            session.add(
                Run(
                    id="f" * 32,
                    agent="echo",
                    chat_id="test:ada",
                    user_id="test:ada",
                    input="see file",
                    started_at=now,
                    status=RunState.DONE,
                )
            )
            session.add(
                RunAttachment(
                    run_id="f" * 32,
                    name="<script>x</script>.log",
                    kind="document",
                    size=1234,
                    path="/data/attachments/x/y.log",
                    created_at=now,
                )
            )
            await session.commit()
        async with dash.signed_in("test:admin") as client:
            body = await page(client, "/runs/" + "f" * 32)
    assert 'id="run-attachments"' in body
    assert "&lt;script&gt;x&lt;/script&gt;.log" in body
    assert "1,234 bytes" in body
    assert "for 30 days" in body
