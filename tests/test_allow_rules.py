"""Allow rules name exact argvs, and message words may not smuggle options in.

The attack: `approval = "rules"` with `allow = [[..., "log"]]` let an operator append
`--output=<site-packages>/x.pth --format=<code>` to an allowed command line; it ran
unasked and wrote a file that Python executes at its next start. The program here is a
small script standing in for git: with `--output=PATH` it writes `--format` to PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import open_deck
from bot.deck import Deck
from bot.errors import ConfigError
from roster.agent import needs_approval
from roster.command import CommandAgent
from roster.errors import ToolError
from roster.refs import NoSecrets
from roster.spec import AllowRule, ApprovalMode, CommandAgentSpec, Extra, Policy
from roster.toolkit.http import HttpRequestTool
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.decks import audit_actions
from tests.support.telegram import ADMIN, OPERATOR

SCRIPT = """
import sys
output = format_ = None
for word in sys.argv[1:]:
    if word.startswith("--output="):
        output = word.split("=", 1)[1]
    elif word.startswith("--format="):
        format_ = word.split("=", 1)[1]
if output:
    with open(output, "w") as f:
        f.write(format_ or "")
print("log:", " ".join(sys.argv[1:]))
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "fakegit.py"
    path.write_text(SCRIPT)
    return path


def config_text(fake: FakeTelegram, program: Path, agent_extra: str = "") -> str:
    argv = f'["{sys.executable}", "{program}", "-C", "/srv/repo", "log"]'
    return f"""
[deck]
default_agent = "gitlog"
[telegram]
token = "env:TG_TOKEN"
base_url = "{fake.base_url}"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[users]]
id = "telegram:{OPERATOR}"
role = "operator"
[[agents]]
name = "gitlog"
kind = "command"
command = {argv}
approval = "rules"
allow = [{argv}]
approvers = ["telegram:{ADMIN}"]
{agent_extra}
"""


@contextlib.asynccontextmanager
async def running(text: str) -> AsyncIterator[Deck]:
    async with asyncio.timeout(30), open_deck(make_config(text)) as (deck, _):
        yield deck


def said(fake: FakeTelegram, needle: str) -> bool:
    return any(needle in text for text in fake.sent_texts(OPERATOR))


async def test_appended_options_are_refused_and_write_nothing(
    fake_telegram: FakeTelegram, program: Path, tmp_path: Path
) -> None:
    pth = tmp_path / "site-packages" / "x.pth"
    pth.parent.mkdir()
    attack = f"/ask gitlog --output={pth} \"--format=import os; os.system('id')\""
    async with running(config_text(fake_telegram, program)) as deck:
        fake_telegram.user_says(attack, user=OPERATOR)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "starts with '-'"))
        fake_telegram.user_says("/ask gitlog main", user=OPERATOR)  # more than the rule names
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"))
        await deck.tasks.drain()
        seen = await audit_actions(deck)
    assert not pth.exists()
    assert seen.count("approval.requested") == 1  # for "main"; the attack got no card
    (refusal,) = [t for t in fake_telegram.sent_texts(OPERATOR) if "starts with '-'" in t]
    assert "accept_options" in refusal  # says what an admin could change


async def test_with_options_accepted_extra_words_need_a_card(
    fake_telegram: FakeTelegram, program: Path, tmp_path: Path
) -> None:
    pth = tmp_path / "x.pth"
    attack = f"/ask gitlog --output={pth} --format=import os"
    text = config_text(fake_telegram, program, "accept_options = true")
    async with running(text) as deck:
        fake_telegram.user_says(attack, user=OPERATOR)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"))
        await deck.tasks.drain()
    assert not pth.exists()


async def test_end_of_options_puts_a_double_dash_before_message_words(
    fake_telegram: FakeTelegram, program: Path
) -> None:
    rule = f'[{{ argv = ["{sys.executable}", "{program}", "-C", "/srv/repo", "log"], extra = "no-options" }}]'
    text = config_text(fake_telegram, program, "end_of_options = true").replace(
        "allow = [[", "allow = " + rule + "\n# [["
    )
    async with running(text) as deck:
        fake_telegram.user_says("/ask gitlog src/main.py", user=OPERATOR)
        await fake_telegram.wait_until(
            lambda: said(fake_telegram, "log: -C /srv/repo log -- src/main.py")
        )
        fake_telegram.user_says("/ask gitlog -p", user=OPERATOR)  # after "--": not an option
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"))
        await deck.tasks.drain()
        assert "approval.requested" in await audit_actions(deck)


# -- the matcher, mode by mode -------------------------------------------------------


def rules(*allow: object) -> Policy:
    return Policy.model_validate({"approval": "rules", "allow": list(allow)})


def test_a_plain_list_allows_exactly_that_argv() -> None:
    policy = rules(["git", "status"])
    assert policy.allow == (AllowRule(argv=("git", "status"), extra=Extra.NONE),)
    assert not needs_approval(policy, ("git", "status"))
    assert needs_approval(policy, ("git", "status", "--porcelain"))
    assert needs_approval(policy, ("git", "status", "x"))
    assert needs_approval(policy, ("git",))


def test_extra_any_allows_whatever_follows() -> None:
    policy = rules({"argv": ["git", "log"], "extra": "any"})
    assert not needs_approval(policy, ("git", "log"))
    assert not needs_approval(policy, ("git", "log", "--output=/x", "-p"))
    assert needs_approval(policy, ("git", "push"))


def test_extra_no_options_allows_plain_words_and_a_lone_double_dash() -> None:
    policy = rules({"argv": ["git", "log"], "extra": "no-options"})
    assert not needs_approval(policy, ("git", "log"))
    assert not needs_approval(policy, ("git", "log", "main", "--", "src"))
    assert needs_approval(policy, ("git", "log", "--output=/x"))
    assert needs_approval(policy, ("git", "log", "main", "-p"))
    assert needs_approval(policy, ("git", "log", "--", "-p"))


def test_an_unknown_extra_mode_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"allow\[0\]\.extra: Input should be 'none', 'any'"):
        make_config(
            '[[agents]]\nname = "x"\nkind = "command"\ncommand = ["true"]\n'
            'approval = "rules"\nallow = [{ argv = ["true"], extra = "some" }]\n'
        )


def test_http_request_still_allows_any_get_and_asks_for_a_post() -> None:
    tool = HttpRequestTool()
    assert not tool.needs_approval({"url": "https://example.org/a?b=c"})
    assert not tool.needs_approval({"url": "https://example.org/", "method": "HEAD"})
    assert tool.needs_approval({"url": "https://example.org/", "method": "POST"})


# -- the command agent's argv ----------------------------------------------------------


def agent(**keys: object) -> CommandAgent:
    spec = CommandAgentSpec.model_validate({"name": "a", "kind": "command", **keys})
    return CommandAgent(spec, secrets=NoSecrets())


def test_message_words_starting_with_a_dash_are_refused_unless_accepted() -> None:
    with pytest.raises(ToolError, match="starts with '-'"):
        agent(command=["ls"]).argv("-la /")
    with pytest.raises(ToolError, match="starts with '-'"):
        agent(command=["grep", "{input}", "/var/log/syslog"]).argv("-f/etc/shadow")
    with pytest.raises(ToolError, match="starts with '-'"):
        agent(command=["grep", "{input}", "f"], shell=True).argv("-f/etc/shadow")  # noqa: S604
    assert agent(command=["ls"], accept_options=True).argv("-la /") == ("ls", "-la", "/")
    assert agent(command=["ls"]).argv("/tmp x-y") == ("ls", "/tmp", "x-y")
    # In place, inside a longer word, it cannot be an option: as [[tools]] do.
    assert agent(command=["echo", "said: {input}"]).argv("-x") == ("echo", "said: -x")


def test_a_double_dash_before_the_input_lets_dash_words_through() -> None:
    assert agent(command=["grep", "-e", "x", "--", "{input}"]).argv("-f") == (
        "grep",
        "-e",
        "x",
        "--",
        "-f",
    )
    assert agent(command=["git", "log"], end_of_options=True).argv("-p src") == (
        "git",
        "log",
        "--",
        "-p",
        "src",
    )
    assert agent(command=["git", "log"], end_of_options=True).argv("") == ("git", "log")


def test_actions_pick_a_line_and_their_input_follows_the_same_rule() -> None:
    host = agent(actions={"disk": ["df", "-h"], "find": ["find", "{input}"]})
    assert host.argv("disk") == ("df", "-h")
    assert host.argv("find /srv") == ("find", "/srv")
    with pytest.raises(ToolError, match="starts with '-'"):
        host.argv("find -delete")


def test_the_example_roster_still_works_as_documented() -> None:
    from bot.config import load_config

    config = load_config(None)
    host = next(a for a in config.agents if a.name == "host")
    shell = next(a for a in config.agents if a.name == "shell")
    assert isinstance(host, CommandAgentSpec)
    assert isinstance(shell, CommandAgentSpec)
    assert agent(**host.model_dump(include={"actions"})).argv("disk") == ("df", "-h")
    assert host.policy.approval is ApprovalMode.NEVER
    assert agent(command=list(shell.command)).argv("ls -la | wc -l") == (
        "/bin/sh",
        "-c",
        "ls -la | wc -l",
    )
