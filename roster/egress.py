"""Egress: may a tool call send what it carries to where it goes? One policy for all.

Every tool that reaches outside the deck names where a call goes (a `Destination`: a
web origin for `http_request`, a chat for `notify`; an MCP server will be one too)
and asks here. The answer is a `Ruling` the approval card and the model can show:

- `ALLOW`: it runs unasked;
- `ASK`: an approver decides; the card says why ("sends secret API_TOKEN to
  https://evil.example");
- `REFUSE`: nothing runs; the model reads why.

The rules:
- A `secret:NAME` anywhere in a call's arguments is resolved only after approval,
  unless every secret it names is bound to the call's web origin (`[[secrets]]
  name = "API_TOKEN", hosts = ["api.example.com"]`). Origins match exactly: scheme,
  host and port (a bare host means https on 443), the host compared in its ASCII
  (IDNA) form without a trailing dot. Other tools name no origin, so a secret in
  their arguments always asks.
- A web request to an address that is not public (`roster.addresses`) is refused
  unless the agent lists it in `private_networks`; names are refused by every
  address they resolve to, when the connection is made (`roster.toolkit.resolver`).
  URLs with user info (`https://api.example.com@evil.example`) are refused.
- `notify` posts unasked to the chat the request came from and to the chats its
  policy lists (`[tool_policy.notify] chats`); anywhere else asks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import yarl
from pydantic import Field, field_validator

from roster.addresses import (
    METADATA_ADDRESSES,
    METADATA_NAMES,
    Address,
    Network,
    allowed,
    kind,
    looks_numeric,
    parse_address,
)
from roster.spec import SECRET_NAME, Strict

WEB_SCHEMES = ("http", "https")


class Verdict(StrEnum):
    ALLOW = "allow"
    ASK = "ask"
    REFUSE = "refuse"


_STRICTNESS = {Verdict.ALLOW: 0, Verdict.ASK: 1, Verdict.REFUSE: 2}


@dataclass(frozen=True, slots=True)
class Ruling:
    verdict: Verdict
    reason: str = ""  # for the card (ASK) or the model (REFUSE)

    def stricter(self, other: Ruling) -> Ruling:
        """The stricter of two rulings; two that ask give both reasons."""
        if _STRICTNESS[other.verdict] > _STRICTNESS[self.verdict]:
            return other
        if other.verdict is self.verdict is Verdict.ASK and other.reason:
            return Ruling(Verdict.ASK, "; ".join(r for r in (self.reason, other.reason) if r))
        return self


ALLOWED = Ruling(Verdict.ALLOW)


def ask(reason: str = "") -> Ruling:
    return Ruling(Verdict.ASK, reason)


def refuse(reason: str) -> Ruling:
    return Ruling(Verdict.REFUSE, reason)


class DestinationKind(StrEnum):
    WEB = "web"  # an origin: scheme, host, port
    CHAT = "chat"  # a chat id with its transport prefix
    TOOL = "tool"  # somewhere only the tool knows (a command line, a plugin)


@dataclass(frozen=True, slots=True)
class Destination:
    kind: DestinationKind
    address: str  # `https://api.example.com:443`, `slack:C0123`, a tool's name
    shown: str = ""  # how a person reads it, when not `address`

    def __str__(self) -> str:
        label = self.shown or self.address
        return f"tool {label}" if self.kind is DestinationKind.TOOL else label


@dataclass(frozen=True, slots=True)
class WebTarget:
    """A URL as the HTTP client will use it (yarl parses for both), and its origin."""

    url: yarl.URL
    host: str  # ASCII, lower case, no trailing dot
    address: Address | None  # when the host is an IP address
    destination: Destination


def web_target(url: str) -> WebTarget:
    """Parse a request URL; `ValueError` says why it cannot be used."""
    parsed = yarl.URL(url)
    if parsed.scheme not in WEB_SCHEMES or not parsed.raw_host:
        raise ValueError(f"{url!r} is not an http(s) URL with a host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise ValueError(
            "URLs with a user name or password (user@host) are refused; send credentials "
            "in a header"
        )
    host = parsed.raw_host.lower().rstrip(".")
    address = parse_address(host)
    if address is None and looks_numeric(host):
        raise ValueError(f"{host} is not an address in its usual form (write e.g. 10.0.0.1)")
    origin = _origin(parsed.scheme, host, parsed.port)
    shown = f"{parsed.scheme}://{_bracketed(host)}"
    if parsed.port != _default_port(parsed.scheme):
        shown = origin
    return WebTarget(parsed, host, address, Destination(DestinationKind.WEB, origin, shown))


def parse_origin(entry: str) -> str:
    """A `[[secrets]] hosts` entry as an origin: `api.example.com` is https on 443."""
    text = entry if "://" in entry else f"https://{entry}"
    problem = ValueError(
        f"{entry!r}: write a host (api.example.com, meaning https on port 443) or an "
        "origin (https://api.example.com:8443, http://10.0.0.5:8080), nothing more"
    )
    try:
        url = yarl.URL(text)
    except ValueError:
        raise problem from None
    if url.scheme not in WEB_SCHEMES or not url.raw_host or _has_more_than_origin(url):
        raise problem
    return _origin(url.scheme, url.raw_host.lower().rstrip("."), url.port)


def _has_more_than_origin(url: yarl.URL) -> bool:
    extras = (url.raw_user, url.raw_password, url.raw_query_string, url.raw_fragment)
    return any(extras) or url.raw_path not in ("", "/")


def _origin(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{_bracketed(host)}:{port or _default_port(scheme)}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


class SecretBinding(Strict):
    """`[[secrets]]`: the origins a vault secret may be sent to without asking."""

    name: str = Field(pattern=SECRET_NAME)
    hosts: tuple[str, ...] = Field(min_length=1)

    @field_validator("hosts")
    @classmethod
    def _origins(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for entry in hosts:
            parse_origin(entry)
        return hosts


@dataclass(frozen=True, slots=True)
class Egress:
    """Where one agent's tool calls may send things unasked: `[[secrets]]` hosts and the
    agent's `private_networks`."""

    bindings: Mapping[str, frozenset[str]] = field(default_factory=dict)  # name -> origins
    private_networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, bindings: Iterable[SecretBinding], private_networks: Sequence[Network]) -> Egress:
        origins = {b.name: frozenset(parse_origin(host) for host in b.hosts) for b in bindings}
        return cls(origins, tuple(private_networks))

    def carry(self, names: Sequence[str], destination: Destination) -> Ruling:
        """Secrets a call names may go unasked only to a web origin they are bound to."""
        web = destination.kind is DestinationKind.WEB
        loose = [
            name
            for name in dict.fromkeys(names)
            if not (web and destination.address in self.bindings.get(name, ()))
        ]
        if not loose:
            return ALLOWED
        reason = f"sends secret {', '.join(loose)} to {destination}"
        bound = [
            f"{name} may go to {', '.join(sorted(self.bindings[name]))}"
            for name in loose
            if name in self.bindings
        ]
        return ask(f"{reason} ({'; '.join(bound)})" if bound else reason)

    def web(self, target: WebTarget) -> Ruling:
        """What the URL alone shows: an address or a metadata name that is off limits."""
        listed = any(allowed(a, self.private_networks) for a in METADATA_ADDRESSES)
        if target.host in METADATA_NAMES and not listed:
            return refuse(f"{target.host} is a cloud metadata address")
        if target.address is None:
            return ALLOWED  # a name: judged by what it resolves to, at connect time
        return self.address(target.host, target.address)

    def address(self, host: str, address: Address) -> Ruling:
        """An address a request would connect to (`host`: how the URL named it)."""
        what = kind(address)
        if what is None or allowed(address, self.private_networks):
            return ALLOWED
        subject = str(address) if host == str(address) else f"{host} resolves to {address}, which"
        return refuse(f"{subject} is {what}; list it in the agent's private_networks to reach it")


def chat_ruling(target: str, origin: str, listed: Iterable[str]) -> Ruling:
    """A post to the chat the request came from, or to a listed chat, goes unasked."""
    if target == origin or target in listed:
        return ALLOWED
    return ask(f"posts to {target}, not to the chat this request came from")
