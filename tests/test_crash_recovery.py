"""kill -9 in the middle: after a restart nothing is lost, interrupted runs are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bot_process import press_when_shown, run_console, start_then_kill
from tests.support.chaos import SLEEPY
from tests.support.process_groups import group_alive, read_pid

pytestmark = pytest.mark.slow  # real agentdeck processes (started, killed, restarted)

CONFIG = """
[deck]
admin_chat = "console:local"
[[agents]]
name = "sleeper"
kind = "command"
command = ["sleep", "{input}"]
[[agents]]
name = "shell"
kind = "command"
command = ["/bin/sh", "-c", "{input}"]
approval = "always"
"""


async def test_kill_during_a_run_reports_it_interrupted(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    await start_then_kill(["/ask sleeper 30"], "sleeper working", data_dir, config)
    code, out, err = await run_console(["/runs"], data_dir, "--config", str(config))
    assert code == 0, err
    said = "sleeper: this run was interrupted by a restart and did not finish (30);"
    assert f"{said} its processes were stopped." in out
    assert "[1] Run again" in out
    assert "agentdeck is back. Interrupted runs: 1" in out
    assert " sleeper interrupted " in out


async def test_kill_during_an_approval_wait_loses_nothing(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    first = await start_then_kill(["/ask shell echo survived"], "[1] Approve", data_dir, config)
    assert "Approval needed" in first
    # The operator presses once the card is back (a press typed before it is posted
    # again would race the card's own bookkeeping, which no chat user can do).
    code, out = await press_when_shown("[1] Approve", "1", data_dir, config)
    assert code == 0
    assert "approvals waiting: 1 (1 card(s) posted again)" in out
    assert "Approved by console:local" in out
    assert out.rstrip().splitlines()[-2].strip() == "survived"


def sleepy_config(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A counting command that sleeps 60 s the first time; the config, count and pid files."""
    count, pid = tmp_path / "count.txt", tmp_path / "pid.txt"
    script = tmp_path / "sleepy.sh"
    script.write_text(SLEEPY.format(count=count, pid=pid, mark=tmp_path / "mark"))
    script.chmod(0o755)
    config = tmp_path / "c.toml"
    config.write_text(f"""
[deck]
admin_chat = "console:local"
[[agents]]
name = "napper"
kind = "command"
command = ["{script}", "{{input}}"]
[[agents]]
name = "careful"
kind = "command"
command = ["{script}", "{{input}}"]
approval = "always"
[[jobs]]
name = "nap"
agent = "napper"
input = "nightly"
every = "1h"
report_to = "console:local"
""")
    return config, count, pid


def runs_counted(count: Path) -> list[str]:
    return count.read_text().split() if count.exists() else []


async def test_a_job_run_cut_short_is_reported_not_fired_again(
    data_dir: Path, tmp_path: Path
) -> None:
    config, count, pid = sleepy_config(tmp_path)
    await start_then_kill(["/run nap"], "napper working", data_dir, config)
    pgid = await read_pid(pid)
    code, out = await press_when_shown("[1] Run again", "1", data_dir, config)
    assert code == 0
    said = "napper: this run was interrupted by a restart and did not finish (nightly);"
    assert f"{said} its processes were stopped." in out
    assert not group_alive(pgid)
    assert out.count("[1] Run again") == 1  # (the card shows again, edited, once pressed)
    assert "Run again by console:local" in out
    assert runs_counted(count) == ["nightly", "nightly"]  # the job did not fire it again


async def test_a_run_cut_after_its_approval_is_reported_and_runs_again_on_one_press(
    data_dir: Path, tmp_path: Path
) -> None:
    config, count, _ = sleepy_config(tmp_path)
    await start_then_kill(["/ask careful deploy", "1"], "careful working", data_dir, config)
    assert runs_counted(count) == ["deploy"]
    code, out = await press_when_shown("[1] Run again", "1", data_dir, config)
    assert code == 0
    said = "careful: this run was interrupted by a restart and did not finish (deploy);"
    assert f"{said} its processes were stopped." in out
    assert "Approval needed" not in out  # the press on Run again was the approval
    # The run again's answer follows the report (the "back" note may come before or after).
    lines = [line.strip() for line in out.splitlines()]
    reported = next(i for i, line in enumerate(lines) if said in line)
    assert "done deploy" in lines[reported:]
    assert runs_counted(count) == ["deploy", "deploy"]
