"""Stage 2 of a message's way: an agent's run, from its row to its outcome.

`runner` records the run and drives it; `brakes` (with `budget` and `breaker`) stop
what may not go on; `approvals` and `cards` make a risky action wait for a press (a
decider's `reasons` included); `progress` shows what the run does; `conversation` is
what the agent remembers of the chat; `interrupted` and `orphans` deal with runs a crash
cut short. Imports `bot.delivery`, never `bot.intake`.
"""
