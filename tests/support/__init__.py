"""What tests share; test modules import from here, never from each other or `conftest`.

- `config`: `make_config` (TOML text → a validated `Config`)
- `decks`: open a deck in-process (`chat_deck` with a `ChatRecorder`, `running`), `audit_actions`
- `waiting`: `eventually(condition, timeout)` — every poll has its deadline
- `network`: `free_port`, the loopback guard, the shared PostgreSQL's address
- `telegram`: the Telegram deck (`ADMIN`, `OPERATOR`, `GROUP`, `config_for`, `texts_to`)
- `slack`: plays Slack's side (`Slack`), the Slack deck (`slack_deck`)
- `outbox`: the outbox's rows, a deck on both transports (`delivery_config`)
- `approvals`: a deck of approvers (`USERS`, `gated`, `approval_id`)
- `scheduling`: `job()` rows for scheduler tests
- `data`: secrets stored in a data directory, the database files' bytes
- `llm`: what the fake OpenAI server was asked (`tool_results`)
- `fake_time`: a clock and sleep that move only when told, a call that fails first
- `bot_process`: real `agentdeck` processes (`started`/`Bot`, `run_console`, `agentdeck`,
  `start_then_kill`, `press_when_shown`)
- `log_lines`: what the bot logs that tests look for (`LEADING`, `DRAINING`, ...)
- `metrics`: `scrape` the Prometheus endpoint
- `process_groups`: `group_alive`, `read_pid`
- `dashkit`, `browser`: the dashboard over HTTP and in Chromium
- `chaos`, `cluster`, `pgserver`, `scheduler_process`, `pty_session`, `agent_clis`:
  kill experiments, two processes on one database, throwaway PostgreSQL servers, a
  scheduler in its own process, a terminal, the coding-agent CLIs

The fake remote services themselves (Telegram, Slack, OpenAI, Anthropic, Responses)
live in `tests/fakes/`; fixtures that start them live in `tests/conftest.py`.
"""
