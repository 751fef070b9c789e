"""kill -9 with Telegram polling. During `sleep 60`: the next start stops the group the run
left, reports the run once with a Run again button, and only an approver's press runs it
again, once. Right after a command that acts (/every): the restart does not act again.

A real `agentdeck run` on SQLite, polling the fake Telegram Bot API; the command counts
its runs in a file and writes its pid (its process group: it runs in a session of its
own) to another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from storage.db import Database, sqlite_url
from storage.models import AuditEvent, Run, RunState
from tests.fakes.telegram_server import FakeTelegram
from tests.support.chaos import SLEEPY, BotProcess
from tests.support.process_groups import group_alive, read_pid
from tests.support.telegram import ADMIN, GROUP, OPERATOR
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow  # real agentdeck processes (started, killed, restarted)


class Sleepy:
    """The bot, its files, and the fake Telegram it polls."""

    def __init__(self, tmp: Path, fake: FakeTelegram) -> None:
        self.fake = fake
        self.count = tmp / "count.txt"
        self.pid = tmp / "pid.txt"
        script = tmp / "sleepy.sh"
        script.write_text(SLEEPY.format(count=self.count, pid=self.pid, mark=tmp / "mark"))
        script.chmod(0o755)
        config = tmp / "deck.toml"
        config.write_text(f"""
[deck]
admin_chat = "telegram:{ADMIN}"
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[users]]
id = "telegram:{OPERATOR}"
role = "operator"
[[agents]]
name = "sleepy"
kind = "command"
command = ["{script}", "{{input}}"]
timeout = 120
""")
        self.bot = BotProcess(tmp / "data", config, {"TG_TOKEN": fake.token})
        self.url = sqlite_url(tmp / "data")

    async def start(self) -> None:
        self.fake.first_poll_at = None
        await self.bot.start()
        await eventually(lambda: self.fake.first_poll_at is not None, 60)

    def runs(self) -> list[str]:
        return self.count.read_text().split() if self.count.exists() else []

    async def stored_run(self) -> Run:
        """The run, once its process group is recorded."""
        async with Database(self.url) as db:

            async def recorded() -> Run | None:
                async with db.session() as session:
                    runs = (await session.exec(select(Run))).all()
                return runs[0] if runs and runs[0].process_group is not None else None

            return await eventually(recorded)

    async def audit(self) -> list[str]:
        async with Database(self.url) as db, db.session() as session:
            return [event.action for event in (await session.exec(select(AuditEvent))).all()]

    def card(self) -> tuple[int, dict[str, Any]]:
        """The message with the Run again button: (message id, message)."""
        for (chat, message_id), message in self.fake.messages.items():
            if chat == GROUP and "interrupted by a restart" in message.get("text", ""):
                return message_id, message
        raise LookupError("no report")

    async def press(self, data: str, user: int) -> dict[str, Any]:
        """Press the card's button as `user`; what the press was answered."""
        message_id, _ = self.card()
        query = self.fake.press(data, message_id=message_id, chat=GROUP, user=user)

        def answered() -> list[dict[str, Any]]:
            return [
                call.params
                for call in self.fake.calls_to("answerCallbackQuery")
                if call.params.get("callback_query_id") == query
            ]

        await eventually(lambda: bool(answered()), 20)
        return answered()[0]


@pytest.fixture
async def sleepy(tmp_path: Path) -> AsyncIterator[Sleepy]:
    fake = await FakeTelegram().start()
    deck = Sleepy(tmp_path, fake)
    try:
        yield deck
    finally:
        await deck.bot.kill_if_running()
        await fake.stop()


async def test_a_run_cut_by_kill_9_is_stopped_reported_and_run_again_by_an_approver(
    sleepy: Sleepy,
) -> None:
    await sleepy.start()
    sleepy.fake.user_says("/ask sleepy job1", user=ADMIN, chat=GROUP)
    pgid = await read_pid(sleepy.pid)
    run = await sleepy.stored_run()
    assert run.process_group == pgid
    await sleepy.bot.kill()
    assert group_alive(pgid)  # the orphan goes on without the bot

    await sleepy.start()
    await eventually(lambda: _has_card(sleepy), 20)
    assert not group_alive(pgid)
    _, card = sleepy.card()
    said = "sleepy: this run was interrupted by a restart and did not finish (job1);"
    assert card["text"].startswith(f"{said} its processes were stopped.")
    ((button,),) = card["reply_markup"]["inline_keyboard"]
    assert button["text"] == "Run again"

    refused = await sleepy.press(button["callback_data"], OPERATOR)
    assert refused["text"] == "You are not one of the approvers of this request."
    forged = await sleepy.press("approval|0badc0de:approve", ADMIN)
    assert forged["text"] == "No such approval request."
    assert sleepy.runs() == ["job1"]

    await sleepy.press(button["callback_data"], ADMIN)
    await eventually(lambda: any("done job1" in t for t in sleepy.fake.sent_texts(GROUP)), 20)
    assert sleepy.runs() == ["job1", "job1"]  # once more, not twice more
    _, card = sleepy.card()
    assert f"Run again by telegram:{ADMIN} at" in card["text"]
    assert "reply_markup" not in card

    late = await sleepy.press(button["callback_data"], ADMIN)
    assert late["text"].endswith("was already decided: approved.")
    sleepy.fake.user_says("/status", user=ADMIN, chat=GROUP)  # handled after any duplicate
    await eventually(
        lambda: any("Running: nothing" in t for t in sleepy.fake.sent_texts(GROUP)), 20
    )
    assert await sleepy.bot.stop() == 0
    assert sleepy.runs() == ["job1", "job1"]
    actions = await sleepy.audit()
    for action in ("run.interrupted", "approval.refused", "approval.forged", "approval.late"):
        assert action in actions
    assert actions.count("approval.approved") == 1


def _has_card(sleepy: Sleepy) -> bool:
    try:
        sleepy.card()
    except LookupError:
        return False
    return True


async def test_stored_runs_name_their_update_and_process(sleepy: Sleepy) -> None:
    """A run answered normally keeps the update it came from and its process group."""
    sleepy.pid.parent.joinpath("mark").touch()  # no sleeping
    await sleepy.start()
    said = sleepy.fake.user_says("/ask sleepy quick", user=ADMIN, chat=GROUP)
    await eventually(lambda: any("done quick" in t for t in sleepy.fake.sent_texts(GROUP)), 20)
    assert await sleepy.bot.stop() == 0
    async with Database(sleepy.url) as db, db.session() as session:
        (run,) = (await session.exec(select(Run))).all()
    assert run.status == RunState.DONE
    assert run.update_key == f"telegram:{said}"
    assert run.process_group == await read_pid(sleepy.pid)
    assert run.process_host  # (its start time too, unless it had ended before it was read)


async def test_a_command_that_acts_once_is_not_repeated_after_kill_9(sleepy: Sleepy) -> None:
    """/every creates a job: killed right after its answer, the restart creates none."""
    await sleepy.start()
    sleepy.fake.user_says("/every 1h sleepy tick", user=ADMIN)
    await eventually(lambda: any("every 1h" in t for t in sleepy.fake.sent_texts(ADMIN)), 20)
    await sleepy.bot.kill()
    await sleepy.start()
    await eventually(
        lambda: any("agentdeck is back" in t for t in sleepy.fake.sent_texts(ADMIN)), 20
    )
    sleepy.fake.user_says("/jobs", user=ADMIN)
    await eventually(lambda: any("Jobs (" in t for t in sleepy.fake.sent_texts(ADMIN)), 20)
    assert await sleepy.bot.stop() == 0
    texts = sleepy.fake.sent_texts(ADMIN)
    assert next(t for t in texts if "Jobs (" in t).startswith("Jobs (1)")
    assert len([t for t in texts if t.endswith("/unschedule " + t[:6])]) == 1  # answered once
