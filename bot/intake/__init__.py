"""Stage 1 of a message's way: what came in, and what it sets off.

`dispatcher` takes every message and button press from every transport, `ratelimit`
holds back a user who sends too fast, commands go to `bot.commands`, a press to
`actions`, and a plain message to `actions.route_text`, which asks `routing` for the
agent.
Imports `bot.runs` and `bot.delivery`, never the other way round.
"""
