"""Files out (#19 point 5, command agents): a run's `$AGENTDECK_OUTBOX_DIR` is sent to the
chat when the run ends, each file as a photo or a document, through the outbox (once,
retried); a symlink (to a file the bot can read) and a file above the limit are named
as not sent, never followed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.decks import audit_actions, running
from tests.support.slack import CONFIG as SLACK_CONFIG
from tests.support.slack import slack_deck
from tests.support.telegram import ADMIN, CONFIG

MAKER = """
[[agents]]
name = "maker"
kind = "command"
shell = true
command = ["SCRIPT"]
"""
SCRIPT = (
    'cd "$AGENTDECK_OUTBOX_DIR" && echo "disk report" > report.txt && '
    "printf PNGBYTES > chart.png && ln -s SECRET leak && head -c 5000 /dev/zero > big.bin "
    "&& echo made"
)


def with_maker(text: str, secret: Path) -> str:
    """The config text with the maker agent and a file limit of about 1 KB."""
    maker = MAKER.replace("SCRIPT", SCRIPT.replace("SECRET", str(secret)).replace('"', '\\"'))
    return text.replace("[deck]\n", "[deck]\nmax_file_mb = 0.001\n", 1) + maker


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "bot-only.key"
    path.write_text("THE-BOTS-OWN-KEY")
    return path


async def test_files_a_command_agent_leaves_arrive_in_telegram(
    fake_telegram: FakeTelegram, secret_file: Path, data_dir: Path
) -> None:
    fake_telegram.fail_next("sendDocument", status=429, retry_after=1)  # retried, sent once
    text = CONFIG.replace("BASE_URL", fake_telegram.base_url)
    async with running(make_config(with_maker(text, secret_file))) as deck:
        fake_telegram.user_says("@maker go", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("not sent" in t for t in fake_telegram.sent_texts(ADMIN)), timeout=15
        )
        await fake_telegram.wait_for("sendDocument")
        actions = await audit_actions(deck)
    (document,) = fake_telegram.calls_to("sendDocument")
    (photo,) = fake_telegram.calls_to("sendPhoto")
    assert document.params["caption"] == "maker: report.txt"
    assert photo.params["caption"] == "maker: chart.png"
    contents = sorted(fake_telegram.documents.values())
    assert contents == [b"PNGBYTES", b"disk report\n"]
    (note,) = [t for t in fake_telegram.sent_texts(ADMIN) if "not sent" in t]
    assert "big.bin (5,000 bytes, above the limit)" in note
    assert "leak (not a regular file)" in note
    assert "THE-BOTS-OWN-KEY" not in "".join(fake_telegram.sent_texts())
    assert b"THE-BOTS-OWN-KEY" not in b"".join(contents)
    assert "run.files_sent" in actions
    texts = fake_telegram.sent_texts(ADMIN)
    assert texts.index(next(t for t in texts if "made" in t)) < texts.index(note)


async def test_files_arrive_in_slack_as_uploads(fake_slack: FakeSlack, secret_file: Path) -> None:
    async with slack_deck(fake_slack, with_maker(SLACK_CONFIG, secret_file)) as (_deck, slack):
        await slack.mention("@maker go")
        await fake_slack.wait_for_text("not sent")
        await fake_slack.wait_for(lambda fake: len(fake.uploads) >= 2)
    assert sorted(fake_slack.uploads.values()) == [b"PNGBYTES", b"disk report\n"]


FILER = """
[llm]
base_url = "OPENAI_URL"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "filer"
kind = "llm"
model = "fake-model"
tools = ["send_file"]
"""


async def test_an_llm_agent_sends_back_only_its_messages_files(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """send_file takes a file name among the message's files; anything else (the
    database, a path) is refused to the model, and nothing is sent."""
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    fake_openai.script = [
        call("send_file", file="agentdeck.db"),
        call("send_file", file="../../agentdeck.db"),
        call("send_file", file="notes.txt"),
        say("sent it back"),
    ]
    text = CONFIG.replace(
        "BASE_URL", f'{fake_telegram.base_url}"\nbase_file_url = "{fake_telegram.base_file_url}'
    )
    config = make_config(text + FILER.replace("OPENAI_URL", fake_openai.base_url))
    async with running(config):
        document = {**fake_telegram.add_file(b"my notes"), "file_name": "notes.txt"}
        fake_telegram.user_sends({"document": document, "caption": "@filer return it"}, user=ADMIN)
        await fake_telegram.wait_until(
            lambda: "filer: sent it back" in fake_telegram.sent_texts(ADMIN)
        )
        await fake_telegram.wait_for("sendDocument")
    (sent,) = fake_telegram.calls_to("sendDocument")
    assert sent.params["caption"] == "filer: notes.txt"
    assert list(fake_telegram.documents.values()) == [b"my notes"]
    results = [m["content"] for m in fake_openai.requests[3]["messages"] if m["role"] == "tool"]
    assert "no file 'agentdeck.db'" in results[0]
    assert "no file '../../agentdeck.db'" in results[1]
    assert results[2] == "sent notes.txt"
