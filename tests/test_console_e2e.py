"""The embedded default, end to end: `agentdeck run` in a subprocess with piped stdin."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bot_process import run_console

pytestmark = pytest.mark.slow  # real agentdeck processes, restarted


async def test_the_quick_start_script(data_dir: Path) -> None:
    code, out, err = await run_console(
        ["/agents", "/ask host uptime", "/ask shell echo hi", "1"], data_dir
    )
    assert code == 0, err
    assert "host (command, ready)" in out
    assert "assistant (llm, unavailable: no API key" in out
    assert "load average" in out  # real uptime output
    assert "Approval needed" in out
    assert "[1] Approve  [2] Approve for this conversation  [3] Deny  [4] Deny with reason" in out
    assert out.rstrip().splitlines()[-2].strip() == "hi"
    assert out.index("Approval needed") < out.index("Approved by console:local")


async def test_denied_command_does_not_run(data_dir: Path) -> None:
    marker = data_dir.parent / "ran"
    code, out, _ = await run_console([f"/ask shell touch {marker}", "deny"], data_dir)
    assert code == 0
    assert "Denied by console:local" in out
    assert "Nothing ran." in out
    assert not marker.exists()


async def test_unknown_command_and_agent_are_answered(data_dir: Path) -> None:
    code, out, _ = await run_console(["/frobnicate", "/ask nobody hi", "@host disk"], data_dir)
    assert code == 0
    assert "Unknown command /frobnicate. Commands:" in out
    assert "No agent named 'nobody'. Agents: host, shell, assistant." in out
    assert "Filesystem" in out  # df -h through @host


async def test_pending_approval_survives_a_restart(data_dir: Path) -> None:
    _, first, _ = await run_console(["/ask shell echo after-restart"], data_dir)
    assert "Approval needed" in first
    code, second, err = await run_console(["1"], data_dir)
    assert code == 0, err
    assert "Approval needed" in second  # the card is offered again
    assert "after-restart" in second.rstrip().splitlines()[-2]


async def test_bad_config_is_one_line_and_exit_2(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[agents]]\nname = "x"\nkind = "command"\ncommand = ["true"]\ntimeout = "soon"\n'
    )
    code, out, err = await run_console([], data_dir, "--config", str(config))
    assert code == 2
    assert err.strip().splitlines() == [
        f"agentdeck: {config}: agents[0].timeout: Input should be a valid number, unable to parse string as a number"
    ]
    assert "Traceback" not in err + out
