"""Who bolt's listeners act as: the identity `auth.test` gave at start, never asked again.

bolt's single-workspace authorization calls `auth.test` on a request while it has no
answer cached, and it caches only once an answer is back: a burst of events right after
a start asked Slack 300 times at once (Slack rate-limits the method, and bolt acks a
failed check with a 200 and drops the event). We checked the token before listening
(`SlackTransport.start`), so every request is authorized with that result, in memory.
"""

from __future__ import annotations

from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext

from bot.transports.slack.inbound import SlackBotIdentity


class KnownIdentity(AsyncAuthorize):
    def __init__(self, me: SlackBotIdentity, bot_token: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # bolt is untyped here
        self._result = AuthorizeResult(
            enterprise_id=me.enterprise_id or None,
            team_id=me.team_id or None,
            bot_user_id=me.user_id,
            bot_id=me.bot_id,
            bot_token=bot_token,
        )

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult:
        return self._result
