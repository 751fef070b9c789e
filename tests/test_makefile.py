"""The Makefile's promises, read by `make -n` (what it would run, nothing run): `make run`
needs nothing from apt (Chromium is for `make test`), and `make bench` names a module
that exists."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def planned(target: str) -> str:
    """The commands `make <target>` would run here, as if the venv had to be built anew."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        [make, "-n", "-B", target, "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_make_run_installs_nothing_from_apt() -> None:
    commands = planned("run")
    assert "agentdeck run" in commands
    assert "apt-get" not in commands
    assert "chromium" not in commands
    assert "apt-get install -y chromium" in planned("test")  # the browser tests' part


def test_make_bench_runs_a_module_that_exists() -> None:
    found = re.search(r"python -m ([\w.]+)", planned("bench"))
    assert found, planned("bench")
    assert importlib.util.find_spec(found[1]) is not None, found[1]
