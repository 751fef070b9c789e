"""What the scheduler hands the bot (a `Fire`) and what the bot does for it (`JobHooks`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from storage.jobs import Claim
from storage.models import Job


@dataclass(frozen=True, slots=True)
class Fire:
    """A claimed firing, handed to the bot: the job as it was, and the claim."""

    job: Job
    claim: Claim

    @property
    def run_id(self) -> str | None:
        return self.claim.run_id


class JobHooks(Protocol):
    """What the bot does for the scheduler; none of these may block."""

    def launch(self, fire: Fire) -> asyncio.Future[Any]:
        """Start the job's run (its id is `fire.run_id`); the future ends with the run."""
        ...

    def skipped(self, fire: Fire) -> None:
        """Tell the job's chat that missed runs were too old to run."""
        ...

    def alert(self, text: str) -> None:
        """Tell the admin chat."""
        ...
