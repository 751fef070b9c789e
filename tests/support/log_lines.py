"""Lines the bot logs or prints that tests wait for or look for: each names where it is
written, so a change of wording there shows up here."""

from __future__ import annotations

LEADING = "runs the scheduler"  # scheduler.service: this process took the lead
DRAINING = "task(s) running; waiting up to"  # bot.app.finish_work: the drain began
GRACE_RAN_OUT = "cancelling it"  # bot.app.finish_work: the grace ended with work still running
BUSY = "still running at its next due time"  # scheduler.firing: a run skipped as busy
CAUGHT_UP = "while the scheduler was down"  # bot.jobruns: the headline of a catch-up run
