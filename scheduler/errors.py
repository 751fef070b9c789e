"""Errors the scheduler raises; their texts are shown to users as they are.

SchedulerError(Exception)
├── ScheduleError(ValueError)     a schedule expression that cannot be read; shows an example
├── JobNotFound(LookupError)      no job with that id
├── JobFromConfig(PermissionError) config jobs can be paused from chat, not removed
└── JobNotRunnable                the job is done or removed
"""

from __future__ import annotations


class SchedulerError(Exception):
    pass


class ScheduleError(SchedulerError, ValueError):
    def __init__(self, problem: str, example: str) -> None:
        super().__init__(f"{problem} Example: {example}")
        self.problem = problem
        self.example = example


class JobNotFound(SchedulerError, LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"No job {job_id!r}. /jobs lists them.")
        self.job_id = job_id


class JobFromConfig(SchedulerError, PermissionError):
    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"Job {job_id} comes from the config file: /pause it here, or remove it "
            "from [[jobs]] and restart."
        )


class JobNotRunnable(SchedulerError):
    pass
