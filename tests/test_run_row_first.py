"""A run acts only once its row is stored: a refused row means nothing runs.

The scheduler names a job's run in advance; if the same run id came round twice (a
claim handed over twice), the second insert is refused by the primary key, and the
command must not start a second time on the strength of a row that is not its own.
"""

from __future__ import annotations

from pathlib import Path

from bot.runs.runner import Origin
from tests.support.config import make_config
from tests.support.decks import DeckFactory


async def test_a_run_whose_row_is_refused_never_starts_its_command(
    deck_with_chat: DeckFactory, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    config = make_config(
        f"""
[[users]]
id = "test:ada"
role = "admin"
[[agents]]
name = "deploy"
kind = "command"
command = ["/bin/sh", "-c", "echo \\"$1\\" >> {ran}; echo done", "sh", "{{input}}"]
"""
    )
    async with deck_with_chat(config) as (deck, chat):
        agent = deck.roster.runnable("deploy")
        origin = Origin(chat="test:chat", user="test:ada", run_id="job-run-1")
        await deck.runner.start(agent, origin, "first")
        await chat.wait_for("done")
        await deck.runner.flush()
        await deck.runner.start(agent, origin, "second")  # the same run id again
        await deck.runner.flush()
    assert ran.read_text().splitlines() == ["first"]
