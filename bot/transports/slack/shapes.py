"""What a Slack payload must look like before bolt and `inbound` read it.

bolt's middleware and our conversions take Slack's word for the types of the fields
they read (`event.user` is a string, `actions` a list of objects). A payload that breaks
that can only come from Slack or the holder of the signing secret, but it must still
get a clear 400, not a traceback. `problem()` names the first thing that is off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Top-level fields read as strings (or absent / null).
_STRINGS = (
    "type",
    "token",
    "team_id",
    "enterprise_id",
    "api_app_id",
    "event_id",
    "challenge",
    "command",
    "text",
    "user_id",
    "channel_id",
    "channel_name",
    "trigger_id",
    "response_url",
)
# Fields that are an id or an object with an `id`.
_IDS = ("user", "team", "channel", "enterprise")
_OBJECTS = ("container", "message", "view")
_EVENT_STRINGS = (
    "type",
    "subtype",
    "user",
    "bot_id",
    "text",
    "channel",
    "channel_type",
    "ts",
    "thread_ts",
    "event_ts",
    "team",
    "user_team",
    "source_team",
)
_ACTION_STRINGS = ("type", "action_id", "block_id", "value", "action_ts")
_FORMS = ("view_submission", "view_closed")
_INTERACTIONS = ("block_actions", *_FORMS)
_VIEW_STRINGS = ("id", "type", "callback_id", "private_metadata")


def problem(body: Any) -> str | None:
    """What keeps this body from being a payload we read; None when it is fine."""
    if not isinstance(body, dict):
        return f"a JSON {type(body).__name__}, not an object"
    if "type" not in body and "command" not in body and "ssl_check" not in body:
        return "neither an event, an interaction nor a command"
    return (
        _strings(body, _STRINGS)
        or _ids(body)
        or _objects(body, _OBJECTS)
        or _kind(body)
        or _event(body.get("event"))
        or _actions(body.get("actions"))
        or _view(body.get("view"))
    )


def _view(view: Any) -> str | None:
    if view is None:
        return None
    found = _strings(view, _VIEW_STRINGS, where="view.")
    if found:
        return found
    state = view.get("state")
    if state is not None and not isinstance(state, dict):
        return "view.state is not an object"
    return None


def _kind(body: dict[str, Any]) -> str | None:
    kind = body.get("type")
    if kind == "url_verification" and not body.get("challenge"):
        return "url_verification without a challenge"
    if kind == "event_callback" and not isinstance(body.get("event"), dict):
        return "event_callback without an event"
    if kind in _INTERACTIONS and not isinstance(body.get("user"), dict):
        return f"{kind} without a user"
    if kind in _FORMS and not isinstance(body.get("view"), dict):
        return f"{kind} without a view"
    if "command" in body and not (body.get("user_id") and body.get("channel_id")):
        return "a command without user_id and channel_id"
    return None


def _event(event: Any) -> str | None:
    if event is None:
        return None
    if not isinstance(event, dict):
        return "event is not an object"
    return _strings(event, _EVENT_STRINGS, where="event.")


def _actions(actions: Any) -> str | None:
    if actions is None:
        return None
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        return "actions is not a list of objects"
    for action in actions:
        found = _strings(action, _ACTION_STRINGS, where="actions[].")
        if found:
            return found
    return None


def _ids(body: dict[str, Any]) -> str | None:
    for key in _IDS:
        value = body.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, dict):
            return f"{key} is neither an id nor an object"
        found = _strings(value, ("id", "team_id", "enterprise_id"), where=f"{key}.")
        if found:
            return found
    return None


def _objects(body: dict[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        if body.get(key) is not None and not isinstance(body[key], dict):
            return f"{key} is not an object"
    return None


def _strings(data: dict[str, Any], keys: Iterable[str], where: str = "") -> str | None:
    for key in keys:
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{where}{key} is not a string"
    return None
