"""`http_request`: one HTTP call, its status and the start of its body back to the model.

Approval follows the `rules` mode over (METHOD, url): by default GET and HEAD run
unasked (to any URL: `extra = "any"`) and anything that changes something waits for a
human. Where the request may
go is the egress policy's (`roster.egress`): addresses that are not public are
refused unless the agent lists them, by the URL and by every address a name resolves
to (`GuardedResolver`); a `secret:` in the arguments asks unless the secret is bound to
the URL's origin. Redirects are not followed: the model gets the status and
`Location`, and a new call to that place is judged again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import aiohttp

from roster.agent import Action, needs_approval
from roster.egress import ALLOWED, Destination, DestinationKind, Ruling, Verdict, ask, web_target
from roster.errors import EgressRefused, ToolError
from roster.spec import AllowRule, ApprovalMode, Extra, Policy
from roster.toolkit.resolver import GuardedResolver
from roster.toolkit.schema import validate_schema
from roster.tools import Tool, ToolCallContext

MAX_BODY = 16_000  # characters of the body the model reads
# Read this much more than is shown: the body is scrubbed before it is cut, so a
# secret that straddles the cut is scrubbed whole instead of showing its start.
READ_AHEAD = 16_000
MAX_LOCATION = 2_000
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
DEFAULT_POLICY = Policy(
    approval=ApprovalMode.RULES,
    allow=(AllowRule(argv=("GET",), extra=Extra.ANY), AllowRule(argv=("HEAD",), extra=Extra.ANY)),
)


class HttpRequestTool(Tool):
    name = "http_request"
    description = (
        "Make an HTTP request and return the status and body. `headers` and `body` are "
        "optional; a header value or body that is `secret:NAME` is replaced by that "
        "secret. Redirects are not followed."
    )
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": "^https?://"},
            "method": {"type": "string", "enum": list(METHODS), "default": "GET"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "string"},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def __init__(self, policy: Policy | None = None, timeout: float = 30) -> None:
        self.policy = policy or DEFAULT_POLICY
        self.timeout = timeout

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)

    def action(self, agent: str, arguments: dict[str, Any]) -> Action:
        return Action(agent=agent, kind="tool", tool=self.name, arguments=arguments)

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        return needs_approval(self.policy, (_method(arguments), arguments["url"]))

    def destination(self, arguments: dict[str, Any]) -> Destination:
        try:
            return web_target(arguments["url"]).destination
        except ValueError:  # refused by `ruling`; named as written meanwhile
            return Destination(DestinationKind.WEB, str(arguments["url"]))

    def ruling(self, arguments: dict[str, Any], ctx: ToolCallContext) -> Ruling:
        try:
            target = web_target(arguments["url"])
        except ValueError as exc:
            return Ruling(Verdict.REFUSE, str(exc))
        reached = ctx.egress.web(target)
        if reached.verdict is Verdict.REFUSE:
            return reached
        if any(name.lower() == "host" for name in arguments.get("headers") or {}):
            # Behind a shared front end the Host header, not the URL, picks the site.
            return Ruling(Verdict.REFUSE, "the Host header is set from the URL, not by a header")
        return ask() if self.needs_approval(arguments) else ALLOWED

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        ruling = self.ruling(arguments, ctx)  # again: this tool keeps its own limits
        if ruling.verdict is Verdict.REFUSE:
            raise EgressRefused(ruling.reason)
        resolver = GuardedResolver(ctx.egress)
        try:
            head, body = await self._fetch(arguments, resolver)
        finally:
            await resolver.close()
        return ctx.redact(head) + ctx.redact(body)[:MAX_BODY]

    async def _fetch(self, arguments: dict[str, Any], resolver: GuardedResolver) -> tuple[str, str]:
        """The status line (and where a redirect points), and the start of the body."""
        target = web_target(arguments["url"])
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False)
        try:
            async with (
                # trust_env=False: no proxy from the environment sees or forwards it.
                aiohttp.ClientSession(
                    timeout=timeout, connector=connector, trust_env=False
                ) as session,
                session.request(
                    _method(arguments),
                    target.url,
                    headers=arguments.get("headers"),
                    data=arguments.get("body"),
                    allow_redirects=False,
                ) as response,
            ):
                body = await response.content.read(MAX_BODY + READ_AHEAD)
                location = response.headers.get("Location", "")[:MAX_LOCATION]
                moved = f"Location: {location}\n" if location else ""
                return f"HTTP {response.status}\n{moved}", body.decode(errors="replace")
        except TimeoutError:
            return f"error: no answer within {self.timeout:g} s", ""
        except (aiohttp.ClientError, ValueError) as exc:  # ValueError: a header aiohttp refused
            raise ToolError(f"request failed: {type(exc).__name__}: {exc}"[:300]) from exc


def _method(arguments: Mapping[str, Any]) -> str:
    return str(arguments.get("method") or "GET")
