"""Several model providers: an agent's fallback chain across two OpenAI-compatible servers.

Two fake OpenAI servers on 127.0.0.1 stand for two providers (say OpenAI and a local
vLLM). The first answering 429, 500 or too slowly hands the call to the next model of
the chain, and the answer says which model gave it; a refusal (400) is not passed on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.errors import ConfigError
from bot.findings import CheckStatus
from storage.models import RunState
from tests.fakes.openai_server import FakeOpenAI, Step, fail, say
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.runs import finished_runs  # FIXME tsupport

PRIMARY_KEY = "sk-primary-0123456789"
BACKUP_KEY = "sk-backup-9876543210"


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIMARY_KEY", PRIMARY_KEY)
    monkeypatch.setenv("BACKUP_KEY", BACKUP_KEY)


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


def two_providers(
    first: FakeOpenAI, second: FakeOpenAI, *, fallback: str, timeout: float = 5, extra: str = ""
) -> str:
    return f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{first.base_url}"
api_key = "env:PRIMARY_KEY"
timeout = {timeout}
max_retries = 0
[llm.providers.backup]
base_url = "{second.base_url}"
api_key = "env:BACKUP_KEY"
timeout = 5
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "primary"
fallback = {fallback}
{extra}
"""


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_failing_first_model_hands_over_and_the_answer_names_the_fallback(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, backup: FakeOpenAI, status: int
) -> None:
    fake_openai.by_model["primary"] = [fail(status)]
    backup.by_model["spare"] = [say("from the spare")]
    config = make_config(two_providers(fake_openai, backup, fallback='["backup:spare"]'))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("hi")
        answer = await chat.wait_for("bot: from the spare")
    assert f"(answered by backup:spare (primary: answered {status}" in answer.text
    assert [r["model"] for r in fake_openai.requests] == ["primary"]
    assert [r["model"] for r in backup.requests] == ["spare"]
    # Each provider gets its own key, and only its own.
    assert (fake_openai.keys, backup.keys) == ([PRIMARY_KEY], [BACKUP_KEY])


async def test_a_first_model_too_slow_hands_over(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    fake_openai.by_model["primary"] = [Step(content="too late", delay=5)]
    backup.by_model["spare"] = [say("in time")]
    config = make_config(
        two_providers(fake_openai, backup, fallback='["backup:spare"]', timeout=0.5)
    )
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("hi")
        answer = await chat.wait_for("bot: in time")
    assert "primary: did not answer within 0.5 s" in answer.text


async def test_the_first_model_that_answers_is_not_named(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    fake_openai.by_model["primary"] = [say("first try")]
    config = make_config(two_providers(fake_openai, backup, fallback='["backup:spare"]'))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("hi")
        answer = await chat.wait_for("bot: first try")
    assert "answered by" not in answer.text
    assert not backup.requests


async def test_a_refusal_is_not_passed_to_the_next_model(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    """A 400 (a bad request, a wrong key: 401) would fail on the next model as well, and
    trying it would hide the mistake."""
    fake_openai.by_model["primary"] = [fail(400)]
    config = make_config(two_providers(fake_openai, backup, fallback='["backup:spare"]'))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("hi")
        await chat.wait_for("bot: The model API answered 400")
    assert not backup.requests


async def test_the_chain_is_tried_in_order_and_the_last_failure_is_told(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    fake_openai.by_model = {"primary": [fail(503)], "second": [fail(500)]}
    backup.by_model["llama3:8b"] = [fail(429)]
    fallback = '["second", "backup:llama3:8b"]'  # a model name with a colon of its own
    config = make_config(two_providers(fake_openai, backup, fallback=fallback))
    async with deck_with_chat(config) as (deck, chat):
        await chat.say("hi")
        await chat.wait_for("bot: The model API answered 429")
        (run,) = await finished_runs(deck, 1)
    assert [r["model"] for r in fake_openai.requests] == ["primary", "second"]
    assert [r["model"] for r in backup.requests] == ["llama3:8b"]
    assert run.status == RunState.FAILED


async def test_the_cost_is_the_answering_models(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    """Priced as `[prices."<provider>:<model>"]` when listed so, else by the model's name."""
    fake_openai.by_model["primary"] = [fail(500), say("cheap")]
    backup.by_model["spare"] = [say("dear")]
    prices = """
[prices.primary]
input = 1_000_000
[prices."backup:spare"]
input = 5_000_000
"""
    config = make_config(
        two_providers(fake_openai, backup, fallback='["backup:spare"]', extra=prices)
    )
    async with deck_with_chat(config) as (deck, chat):
        await chat.say("one")
        await chat.wait_for("bot: dear")
        await chat.say("two")
        await chat.wait_for("bot: cheap")
        costs = [r.cost for r in await finished_runs(deck, 2)]
    assert sorted(costs) == [pytest.approx(11 * 1.0), pytest.approx(11 * 5.0)]


async def test_a_provider_whose_key_names_nothing_leaves_its_agents_unavailable(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    text = two_providers(fake_openai, backup, fallback="[]").replace(
        'api_key = "env:BACKUP_KEY"', 'api_key = "secret:nothing_here"'
    )
    text += '\n[[agents]]\nname = "other"\nkind = "llm"\nmodel = "m"\nprovider = "backup"\n'
    async with deck_with_chat(make_config(text)) as (_deck, chat):
        await chat.say("/ask other hi")
        await chat.wait_for("Agent 'other' is unavailable: no API key: set [llm.providers.backup]")
        await chat.say("/ask bot hi")
        await chat.wait_for("bot: echo: hi")  # the default provider's agent still answers
    assert not backup.requests


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ('provider = "nowhere"', "agents[0].provider: no provider named 'nowhere'"),
        ("[llm.providers.default]\nbase_url = 'http://127.0.0.1:1/v1'", "providers.default"),
        ("[llm.models]\nnowhere = ['x']", "models.nowhere: no provider named 'nowhere'"),
        (
            "[llm.providers.plain]\nbase_url = 'http://127.0.0.1:1/v1'\napi_key = 'sk-in-the-file'",
            "llm.providers.plain.api_key",
        ),
    ],
)
def test_provider_config_mistakes_name_the_key(extra: str, error: str) -> None:
    agent = '[[agents]]\nname = "bot"\nkind = "llm"\nmodel = "m"\n'
    with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace(".", r"\.")):
        make_config(agent + extra + "\n")


async def test_provider_keys_are_scrubbed_like_vault_values(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    text = two_providers(fake_openai, backup, fallback="[]")
    text += '\n[[agents]]\nname = "echo"\nkind = "echo"\n'
    async with deck_with_chat(make_config(text)) as (_deck, chat):
        await chat.say(f"/ask echo the key is {BACKUP_KEY}")
        answer = await chat.wait_for("echo: the key is")
    assert BACKUP_KEY not in answer.text
    assert "[redacted:env:BACKUP_KEY]" in answer.text


async def test_doctor_checks_each_provider_for_the_models_asked_of_it(
    fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    from bot.doctor import examine

    fake_openai.models = ["primary"]
    backup.models = ["spare"]
    text = two_providers(fake_openai, backup, fallback='["backup:spare", "backup:absent"]')
    findings = {f.check: f for f in await examine(make_config(text))}
    assert findings["llm"].verdict == CheckStatus.OK
    assert "primary among them" in findings["llm"].detail
    assert findings["llm.backup"].verdict == CheckStatus.WARN
    assert "does not list absent" in findings["llm.backup"].detail
