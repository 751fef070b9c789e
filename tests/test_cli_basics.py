"""The installed `agentdeck` command's own manners: version, help, `--data-dir`.

Run as a user would: the console script in the venv, in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real agentdeck process per command

AGENTDECK = str(Path(sys.executable).with_name("agentdeck"))


def agentdeck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENTDECK, *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_version_names_the_installed_release() -> None:
    done = agentdeck("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"agentdeck {version('agentdeck')}")


def test_bare_command_and_short_help_print_help_and_succeed() -> None:
    bare, short = agentdeck(), agentdeck("-h")
    assert (bare.returncode, short.returncode) == (0, 0)
    assert bare.stdout == short.stdout
    for word in ("run", "check", "doctor", "audit", "secrets", "--data-dir", "--version"):
        assert word in bare.stdout
    assert agentdeck("run", "-h").stdout.startswith("Usage: agentdeck run")


def test_data_dir_flag_wins_over_the_environment(tmp_path: Path) -> None:
    flagged, ignored = tmp_path / "flagged", tmp_path / "from-env"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AGENTDECK_DATA_DIR": str(ignored)}
    done = agentdeck("--data-dir", str(flagged), "audit", "verify", env=env)
    assert (done.returncode, done.stdout.strip()) == (0, "audit chain intact: 0 rows checked")
    assert (flagged / "agentdeck.db").exists()
    assert not ignored.exists()


def test_unknown_option_is_one_line_and_nonzero() -> None:
    done = agentdeck("--no-such-flag")
    assert done.returncode == 2
    assert "No such option '--no-such-flag'" in done.stderr
    assert "Traceback" not in done.stderr
