"""The bot: chat in, agents run, answers out. The way of a message, stage by stage:

1. `bot.transports` — Telegram, Slack and the console turn platform updates into neutral
   `types.Incoming` and neutral `types.Outgoing` back into platform calls.
2. `bot.intake` — the dispatcher stores each update in the inbox (exactly once), checks
   who sent it (`access`), and sends it to a command (`bot.commands`: groups of commands,
   each given the deck's parts it uses), a button's action (`Actions`), or an agent
   chosen by routing.
3. `bot.runs` — the runner records a run, applies the brakes (budget, breaker, clock),
   waits for approvals where the policy asks, shows progress, and ends with an outcome.
4. `bot.delivery` — the postman (durable: through the outbox) and the direct sender
   (through the transports) deliver the answer once, through outages and retries.

Beside the way: `graph` builds the deck's objects in one place (each given what it uses
to its constructor: the transports first, then the direct sender from them; the
commands, actions and dashboard pages never get the whole deck), `app` starts them (one
exit stack), `recovery` picks up what the last process left, `deck` is what a running
deck shares, `jobruns` connects the scheduler's runs to the runner, `triggers` starts
runs from signed webhook deliveries, `providers` builds the model endpoints, `toolhost`
gives tools that reach outside one agent their bot side, `access` and `invites` say who
may do what (`[[users]]` and people added by `/invite` codes), `dashboard` and `metrics`
are the web pages and the Prometheus endpoint, and `cli`, `doctor`, `reload`,
`liveness`, `logs` the process around it all.
"""
