"""Whether the person behind a Slack update belongs to the workspace the bot is installed in.

Slack Connect puts people of other organisations into channels shared with ours, and a
workspace has guests. Neither may act with the role `channel_members` gives those who
write in a bound channel (only `[[users]]` can give them one). Two sources, both
answering with a reason, or "" for a member:

- `outsider_in_payload`: the team ids the payload names for the person acting (events:
  `event.user_team` / `event.team`; button presses and forms: `user.team_id` /
  `team.id`; slash commands: `team_id`). Free, but Slack does not always send them.
- `Members.vet`: `users.info` (its team, `is_restricted` / `is_ultra_restricted` for
  guests, `is_stranger`). Asked only for people whose role would come from the channel
  alone, remembered for a while; if Slack cannot answer (no `users:read` scope, an
  outage) the person is refused, with that as the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from bot.errors import TransportError
from bot.transports.slack.inbound import Payload, SlackBotIdentity
from bot.transports.slack.web import SlackWeb

log = logging.getLogger(__name__)

REMEMBER_SECONDS = 600.0  # a guest made a member (or the reverse) counts after this long
RETRY_SECONDS = 30.0  # after a failed look-up, ask Slack again no sooner than this
MAX_REMEMBERED = 10_000


def outsider_in_payload(body: Payload, me: SlackBotIdentity) -> str:
    """Why the payload's own team ids say the actor is not one of ours; "" if they do not."""
    event = body.get("event")
    if isinstance(event, dict):
        named = [event.get("user_team"), event.get("team")]
    elif body.get("type") in ("block_actions", "view_submission", "view_closed"):
        user, team = body.get("user") or {}, body.get("team")
        named = [user.get("team_id"), team.get("id") if isinstance(team, dict) else team]
    else:  # a slash command
        named = [body.get("team_id")]
    return _foreign(named, me)


def _foreign(named: Iterable[Any], me: SlackBotIdentity) -> str:
    ours = {me.team_id, me.enterprise_id} - {""}
    for team in named:
        if team and ours and team not in ours:
            return f"from another workspace ({team})"
    return ""


def from_profile(person: dict[str, Any], me: SlackBotIdentity) -> str:
    """Why `users.info` says the person is not a full member of our workspace; "" if not."""
    if person.get("is_stranger"):
        return "from another workspace (not visible to ours)"
    foreign = _foreign([person.get("team_id")], me)
    if foreign:
        return foreign
    if person.get("is_restricted") or person.get("is_ultra_restricted"):
        return "a guest of the workspace"
    return ""


class Members:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._known: dict[str, tuple[str, float]] = {}  # user -> (reason, until)

    async def vet(self, web_api: SlackWeb, me: SlackBotIdentity, user: str) -> str:
        """ "" for a full member of our workspace, else why not (asks Slack, remembers)."""
        now = self._clock()
        known = self._known.get(user)
        if known is not None and now < known[1]:
            return known[0]
        try:
            reason, keep = from_profile(await web_api.user_info(user), me), REMEMBER_SECONDS
        except TransportError as exc:
            hint = " (the app needs the users:read scope)" if "missing_scope" in str(exc) else ""
            log.warning("slack: cannot tell whether %s is a member: %s%s", user, exc, hint)
            reason, keep = f"membership could not be checked: {exc}{hint}", RETRY_SECONDS
        if len(self._known) >= MAX_REMEMBERED:
            self._known.clear()
        self._known[user] = (reason, now + keep)
        return reason
