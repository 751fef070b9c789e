"""The egress policy's rules on their own: addresses, origins, bindings, config errors.

The attacks through a model's tool call are in `test_egress.py`; here every address
form and URL trick is put to the same functions those calls go through.
"""

from __future__ import annotations

import re
from ipaddress import ip_network

import pytest

from bot.errors import ConfigError
from roster.addresses import parse_address
from roster.egress import (
    Destination,
    DestinationKind,
    Egress,
    SecretBinding,
    Verdict,
    ask,
    chat_ruling,
    refuse,
    web_target,
)
from tests.support.config import make_config


@pytest.mark.parametrize(
    ("address", "what"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped
        ("2002:7f00:1::", "a loopback address"),  # 6to4 of 127.0.0.1
        ("64:ff9b::7f00:1", "a loopback address"),  # NAT64 of 127.0.0.1
        ("0.0.0.0", "the unspecified address"),
        ("::", "the unspecified address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a shared (CGNAT) address"),
        ("fd12:3456::1", "a private address"),  # unique local
        ("169.254.1.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("::ffff:169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("192.0.2.1", "a private address"),  # documentation
        ("64:ff9b:1::1", "not a public address"),
    ],
)
def test_addresses_that_are_not_public_are_refused(address: str, what: str) -> None:
    parsed = parse_address(address)
    assert parsed is not None
    ruling = Egress().address(str(parsed), parsed)  # named as the URL parser writes it
    assert ruling.verdict is Verdict.REFUSE
    assert ruling.reason.startswith(f"{parsed} is {what};")


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert Egress().address(address, parse_address(address)).verdict is Verdict.ALLOW  # type: ignore[arg-type]


def test_listed_networks_pass_but_metadata_only_when_listed_by_itself() -> None:
    wide = Egress(private_networks=(ip_network("10.0.0.0/8"), ip_network("169.254.0.0/16")))
    assert wide.address("10.9.8.7", parse_address("10.9.8.7")).verdict is Verdict.ALLOW  # type: ignore[arg-type]
    assert wide.address("169.254.1.1", parse_address("169.254.1.1")).verdict is Verdict.ALLOW  # type: ignore[arg-type]
    metadata = parse_address("169.254.169.254")
    assert wide.address("169.254.169.254", metadata).verdict is Verdict.REFUSE  # type: ignore[arg-type]
    exact = Egress(private_networks=(ip_network("169.254.169.254/32"),))
    assert exact.address("169.254.169.254", metadata).verdict is Verdict.ALLOW  # type: ignore[arg-type]
    assert exact.web(web_target("http://metadata.google.internal/")).verdict is Verdict.ALLOW


def test_a_name_is_judged_by_what_it_resolves_to() -> None:
    ruling = Egress().address("rebind.example", parse_address("127.0.0.1"))  # type: ignore[arg-type]
    assert ruling == refuse(
        "rebind.example resolves to 127.0.0.1, which is a loopback address; list it in the "
        "agent's private_networks to reach it"
    )
    assert Egress().web(web_target("https://rebind.example/")).verdict is Verdict.ALLOW


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.example.com@evil.example/", "URLs with a user name or password"),
        ("https://user:pw@api.example.com/", "URLs with a user name or password"),
        ("http://127.1/", "127.1 is not an address in its usual form"),
        ("http://2130706433/", "2130706433 is not an address in its usual form"),
        ("http://017700000001/", "017700000001 is not an address in its usual form"),
        ("ftp://api.example.com/", "is not an http(s) URL with a host"),
    ],
)
def test_urls_that_hide_where_they_go_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        web_target(url)


def test_metadata_names_are_refused_by_name() -> None:
    ruling = Egress().web(web_target("http://metadata.google.internal./computeMetadata/v1/"))
    assert ruling == refuse("metadata.google.internal is a cloud metadata address")


def egress(*hosts: str) -> Egress:
    return Egress.of([SecretBinding(name="API_TOKEN", hosts=hosts)], ())


def carry(bound: Egress, url: str) -> Verdict:
    return bound.carry(["API_TOKEN"], web_target(url).destination).verdict


@pytest.mark.parametrize(
    ("url", "verdict"),
    [
        ("https://api.example.com/v1/x?y=1", Verdict.ALLOW),
        ("https://API.Example.COM./v1", Verdict.ALLOW),  # case and the trailing dot
        ("https://api.example.com:443/", Verdict.ALLOW),
        ("https://api.example.com:8443/", Verdict.ASK),  # another port
        ("http://api.example.com/", Verdict.ASK),  # plain http: another origin
        ("https://api.example.com.evil.example/", Verdict.ASK),
        ("https://evil.example/api.example.com", Verdict.ASK),
        ("https://sub.api.example.com/", Verdict.ASK),  # exact host, no subdomains
        ("https://\u0430pi.example.com/", Verdict.ASK),  # Cyrillic "a": another name
    ],
)
def test_a_bound_secret_goes_unasked_only_to_its_exact_origin(url: str, verdict: Verdict) -> None:
    assert carry(egress("api.example.com"), url) is verdict


def test_origins_are_compared_in_their_ascii_form_with_explicit_ports() -> None:
    assert carry(egress("bücher.example"), "https://xn--bcher-kva.example/") is Verdict.ALLOW
    assert carry(egress("https://BÜCHER.example"), "https://bücher.example/") is Verdict.ALLOW
    on_port = egress("http://10.0.0.5:8080")
    assert carry(on_port, "http://10.0.0.5:8080/x") is Verdict.ALLOW
    assert carry(on_port, "http://10.0.0.5/x") is Verdict.ASK
    assert carry(egress("http://[::1]:8080"), "http://[0:0::1]:8080/") is Verdict.ALLOW


def test_the_reason_names_the_secrets_and_where_they_would_go() -> None:
    bound = egress("api.example.com")
    target = web_target("https://xn--pi-7kc.example.com:8443/")
    assert bound.carry(["API_TOKEN", "OTHER", "API_TOKEN"], target.destination) == ask(
        "sends secret API_TOKEN, OTHER to https://xn--pi-7kc.example.com:8443 "
        "(API_TOKEN may go to https://api.example.com:443)"
    )
    tool = Destination(DestinationKind.TOOL, "deploy")
    assert bound.carry(["OTHER"], tool) == ask("sends secret OTHER to tool deploy")
    assert bound.carry([], tool).verdict is Verdict.ALLOW


def test_chats_the_request_came_from_or_listed_go_unasked() -> None:
    assert chat_ruling("slack:C1", "slack:C1", ()).verdict is Verdict.ALLOW
    assert chat_ruling("slack:C2", "slack:C1", ("slack:C2",)).verdict is Verdict.ALLOW
    assert chat_ruling("telegram:42", "slack:C1", ("slack:C2",)) == ask(
        "posts to telegram:42, not to the chat this request came from"
    )


def test_rulings_combine_to_the_stricter() -> None:
    assert ask("a").stricter(ask("b")) == ask("a; b")
    assert ask("a").stricter(refuse("r")) == refuse("r")
    assert refuse("r").stricter(ask("a")) == refuse("r")


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            {"secrets": [{"name": "API_TOKEN", "hosts": ["https://api.example.com/v1"]}]},
            "test.toml: secrets[0].hosts: 'https://api.example.com/v1': write a host",
        ),
        (
            {"secrets": [{"name": "API_TOKEN", "hosts": ["api@evil.example"]}]},
            "test.toml: secrets[0].hosts: 'api@evil.example': write a host",
        ),
        (
            {"secrets": [{"name": "API_TOKEN", "hosts": []}]},
            "test.toml: secrets[0].hosts: Tuple should have at least 1 item",
        ),
        (
            {"secrets": [{"name": "A", "hosts": ["a.example"]}, {"name": "A", "hosts": ["b.c"]}]},
            "test.toml: secrets: one entry per secret; repeated: A",
        ),
        (
            {"tool_policy": {"http_request": {"chats": ["slack:C1"]}}},
            "test.toml: tool_policy.http_request.chats: only notify posts to chats",
        ),
        (
            {"tool_policy": {"notify": {"chats": ["C0123"]}}},
            "test.toml: tool_policy.notify.chats[0]: String should match pattern",
        ),
    ],
)
def test_config_errors_name_the_key(section: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config("", **section)
    assert str(caught.value).startswith(problem), str(caught.value)


def test_private_networks_must_be_networks() -> None:
    text = '[[agents]]\nname = "bot"\nkind = "llm"\nmodel = "m"\nprivate_networks = ["10.0.0.1/8"]'
    with pytest.raises(ConfigError, match=r"agents\[0\]\.private_networks\[0\]: "):
        make_config(text)
    config = make_config(text.replace("10.0.0.1/8", "10.0.0.0/8"))
    assert [str(n) for n in config.agents[0].private_networks] == ["10.0.0.0/8"]  # type: ignore[union-attr]
