"""Webhook triggers: a signed HTTP delivery starts an agent's run that reports to a chat.

`spec` is the config (`[[triggers]]`, `[webhooks]`), `template` makes the input from
the JSON body, `verify` checks the signature or token, `service` stores the delivery
once and starts the run, `server` is the aiohttp side (routes and its own listener).
"""
