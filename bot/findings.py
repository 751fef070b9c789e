"""One line of a diagnosis (`agentdeck doctor`, `check`): what, how it stands, what to do."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CheckStatus(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but worth a look; does not fail the doctor
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    verdict: CheckStatus
    detail: str

    def line(self) -> str:
        return f"{self.verdict.value:<4}  {self.check}: {self.detail}"


def ok(check: str, detail: str) -> Finding:
    return Finding(check, CheckStatus.OK, detail)


def warn(check: str, detail: str) -> Finding:
    return Finding(check, CheckStatus.WARN, detail)


def fail(check: str, detail: str) -> Finding:
    return Finding(check, CheckStatus.FAIL, detail)


def failed(findings: list[Finding]) -> bool:
    return any(f.verdict is CheckStatus.FAIL for f in findings)
