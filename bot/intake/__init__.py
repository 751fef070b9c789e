"""Stage 1 of a message's way: what came in, and what it sets off.

`dispatcher` takes every message and button press from every transport, `ratelimit`
holds back a user who sends too fast, commands go to `bot.commands` (what a command is
to the dispatcher is declared in `command_spec`), a press to `Actions`, and a plain
message to `Actions.route_text`, which asks `routing` for the agent. Each part is given
the deck's parts it uses, never the deck (`bot.graph` builds them).
Imports `bot.runs` and `bot.delivery`, never the other way round.
"""
