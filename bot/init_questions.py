"""`agentdeck init` at a terminal: ask, check each answer at once, then write the config.

Asked in turn: the transports; for Telegram the Bot API URL and the bot token (checked
with `getMe`), the admin's numeric user id; for Slack the Web API URL, the bot and app
tokens (checked with `auth.test` and `apps.connections.open`), the admin's member id;
an OpenAI-compatible endpoint and key (checked with `GET /models`) and a model. A
wrong answer is said at once and asked again. Tokens and keys go into the vault, the
config file names them only (`bot.init_config`). Without a terminal, `init` writes the
commented starter instead (`bot.cli`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from bot.config import Config, LLMSection, SlackSection, TelegramSection
from bot.errors import BotError
from bot.init_config import (
    LLM_API_KEY,
    SLACK_APP_TOKEN,
    SLACK_BOT_TOKEN,
    TELEGRAM_TOKEN,
    Answers,
    render,
    validated,
)
from roster.errors import RosterError

TRANSPORTS = ("console", "telegram", "slack")
TELEGRAM_URL = "https://api.telegram.org/bot"
SLACK_URL = "https://slack.com/api/"
OPENAI_URL = "https://api.openai.com/v1"
TELEGRAM_ID = re.compile(r"[0-9]{1,20}")
SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
PREFERRED_MODEL = "gpt-4o-mini"


class Typed:
    """The values typed so far, as the `SecretSource` the transports' checks read."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def redact(self, text: str) -> str:
        for value in self.values.values():
            text = text.replace(value, "[secret]")
        return text


def interview(path: Path, config: Config) -> None:
    """Ask, check, store the secrets, write `path`, say the one command to run."""
    typed = Typed()
    chosen = ask_transports()
    admins: list[str] = []
    telegram_url = slack_url = ""
    if "telegram" in chosen:
        telegram_url = ask_telegram(typed)
        admins += ask_admin("Your Telegram user id (digits)", TELEGRAM_ID, "telegram")
    if "slack" in chosen:
        slack_url = ask_slack(typed)
        admins += ask_admin("Your Slack member id (U…)", SLACK_ID, "slack")
    llm_url, model = ask_llm(typed)
    answers = Answers(
        telegram="telegram" in chosen,
        telegram_base_url=telegram_url,
        slack="slack" in chosen,
        slack_base_url=slack_url,
        admins=tuple(admins),
        llm=bool(model),
        llm_base_url=llm_url,
        model=model,
    )
    text = render(answers)
    validated(text, str(path))
    _run(_store(config, typed.values))
    path.write_text(text, encoding="utf-8")
    say_what_next(path, answers)


# --- questions -----------------------------------------------------------------------


def ask_transports() -> list[str]:
    while True:
        raw = click.prompt(
            "Transports (console, telegram, slack; comma-separated)", default="console"
        )
        chosen = [word.strip().lower() for word in raw.split(",") if word.strip()]
        unknown = [word for word in chosen if word not in TRANSPORTS]
        if chosen and not unknown:
            return chosen
        click.echo(
            f"  Not a transport: {', '.join(unknown)[:80]}. Choose from {', '.join(TRANSPORTS)}."
        )


def ask_telegram(typed: Typed) -> str:
    """The Bot API URL ("" for the default) once a token works there."""
    url = ask_url("Telegram Bot API URL", TELEGRAM_URL, _telegram_section)
    section = _telegram_section(url)

    async def check() -> str:
        from bot.transports.telegram.probe import probe

        return await probe(section, typed)

    ask_secret("Telegram bot token (from @BotFather)", TELEGRAM_TOKEN, typed, check)
    return "" if url == TELEGRAM_URL else url


def ask_slack(typed: Typed) -> str:
    url = ask_url("Slack Web API URL", SLACK_URL, _slack_section)
    section = _slack_section(url)

    async def check() -> str:
        from bot.transports.slack.probe import probe

        return await probe(section, typed)

    typed.values[SLACK_APP_TOKEN] = "xapp-not-asked-yet"
    ask_secret("Slack bot token (xoxb-…)", SLACK_BOT_TOKEN, typed, check, blame="bot_token")
    ask_secret("Slack app token (xapp-…, for Socket Mode)", SLACK_APP_TOKEN, typed, check)
    return "" if url == SLACK_URL else url


def ask_admin(question: str, shape: re.Pattern[str], platform: str) -> list[str]:
    """The admin's id on this platform, or none (told how to add it later)."""
    while True:
        raw = click.prompt(f"{question}; Enter to add it later", default="", show_default=False)
        raw = raw.strip()
        if not raw:
            click.echo(
                f'  Later: add [[users]] id = "{platform}:<your id>" role = "admin" to the '
                "config; until then nobody may use the bot there."
            )
            return []
        if shape.fullmatch(raw):
            return [f"{platform}:{raw}"]
        click.echo(f"  That is not a {platform} user id (expected like {_example(platform)}).")


def ask_llm(typed: Typed) -> tuple[str, str]:
    """The endpoint ("" for OpenAI) and the model; ("", "") for no model at all."""
    url = ask_url(
        "OpenAI-compatible API URL ('none': no model)", OPENAI_URL, _llm_url, allow_none=True
    )
    if url == "none":
        return "", ""
    offered: list[str] = []

    async def check() -> str:
        from roster.model_client import ModelClient, ModelSettings

        client = ModelClient(
            ModelSettings(
                base_url=url, api_key=typed.values[LLM_API_KEY], timeout=10, max_retries=0
            )
        )
        try:
            offered[:] = await client.models()
        finally:
            await client.close()
        return f"{len(offered)} models offered"

    ask_secret("API key", LLM_API_KEY, typed, check)
    default = PREFERRED_MODEL if PREFERRED_MODEL in offered or not offered else offered[0]
    model = click.prompt("Model", default=default).strip()
    if offered and model not in offered:
        click.echo(f"  Note: the endpoint does not list {model[:80]}; some gateways list fewer.")
    return ("" if url == OPENAI_URL else url), model


# --- asking, checking ----------------------------------------------------------------


def ask_url(
    question: str, default: str, check: Callable[[str], object], *, allow_none: bool = False
) -> str:
    while True:
        url = click.prompt(question, default=default).strip()
        if allow_none and url.lower() == "none":
            return "none"
        try:
            check(url)
        except ValidationError as exc:
            click.echo(f"  {_first_error(exc)}")
            continue
        return url


def ask_secret(
    question: str,
    name: str,
    typed: Typed,
    check: Callable[[], Coroutine[Any, Any, str]],
    *,
    blame: str = "",
) -> None:
    """A hidden answer, kept once `check` passes with it; a refusal is said and asked again."""
    while True:
        typed.values[name] = click.prompt(question, hide_input=True).strip()
        try:
            click.echo(f"  ok: {_run(check())}")
            return
        except (BotError, RosterError) as exc:
            said = typed.redact(str(exc))
            if blame and blame not in said:  # the check got past this answer: keep it
                return
            click.echo(f"  {said.rstrip('.')}. Try again.")
        except TimeoutError:
            click.echo("  No answer within 15 s: check the URL. Try again.")


def say_what_next(path: Path, answers: Answers) -> None:
    click.echo(f"Wrote {path}; tokens and keys are in the vault.")
    if (answers.telegram or answers.slack) and not answers.admins:
        click.echo("Add yourself under [[users]] first (see above), then:")
    click.echo(f"Start it: agentdeck run --config {path}")


# --- helpers -------------------------------------------------------------------------


def _telegram_section(url: str) -> TelegramSection:
    return TelegramSection(token=f"secret:{TELEGRAM_TOKEN}", base_url=url)


def _slack_section(url: str) -> SlackSection:
    return SlackSection(
        bot_token=f"secret:{SLACK_BOT_TOKEN}", app_token=f"secret:{SLACK_APP_TOKEN}", base_url=url
    )


def _llm_url(url: str) -> LLMSection:
    return LLMSection(base_url=url)


def _first_error(exc: ValidationError) -> str:
    message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
    if "pattern" in message:
        return "Not a URL: it starts with http:// or https://."
    return message


def _example(platform: str) -> str:
    return "123456789" if platform == "telegram" else "U012AB3CD"


def _run(work: Coroutine[Any, Any, Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(15):
            return await work

    return asyncio.run(bounded())


async def _store(config: Config, values: dict[str, str]) -> None:
    """The typed secrets into the vault of the deck's data directory."""
    import getpass

    from storage.audit import AuditLog
    from storage.clock import SystemClock
    from storage.db import Database
    from storage.secrets import Vault
    from storage.writer import WriteBehind

    by = f"cli:{getpass.getuser()}"
    clock = SystemClock()
    async with Database(config.deck.database()) as db, WriteBehind(db) as writer:
        vault = await Vault(db=db, data_dir=config.deck.data_path(), clock=clock).load()
        audit = AuditLog(db=db, writer=writer, clock=clock, redact=vault.redact)
        for name, value in values.items():
            await vault.set(name, value, by=by)
            audit.record(by, "secret.set", name, via="init")
