"""Slack: the only package that imports `slack_bolt` and `slack_sdk`."""

from bot.transports.slack.transport import SlackTransport

__all__ = ["SlackTransport"]
