"""`[[triggers]]` and `[webhooks]`: what a webhook may start, and where it is served."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.trigger_template import TemplateError, fields

GITHUB_SIGNATURE = "X-Hub-Signature-256"
GITHUB_DELIVERY = "X-GitHub-Delivery"


class Verification(StrEnum):
    HMAC_SHA256 = "hmac_sha256"  # a signature of the body in a header (GitHub's `sha256=<hex>`)
    BEARER = "bearer"  # `Authorization: Bearer <token>`


class TriggerEntry(BaseModel):
    """A webhook that starts an agent: `POST <path>`, verified, its JSON body made into input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    path: str = Field(pattern=r"^/[A-Za-z0-9/_.-]{1,200}$")
    verify: Verification
    # The HMAC key or the bearer token: a reference, never a value in the file.
    secret: str = Field(pattern=r"^(env|secret):.+$")
    header: str = Field(default=GITHUB_SIGNATURE, pattern=r"^[A-Za-z0-9-]{1,100}$")
    # The header naming the delivery (a retry repeats it); without it, the body's hash.
    delivery_header: str = Field(default=GITHUB_DELIVERY, pattern=r"^[A-Za-z0-9-]{1,100}$")
    agent: str
    # The agent's input: `{alert.title}` is that field of the JSON body; `{{` is a brace.
    input: str = Field(min_length=1, max_length=4000)
    # The chat (or channel) that gets the run, its answer and its approval cards.
    report: str = Field(pattern=r"^[a-z]+:.+$")

    @field_validator("input")
    @classmethod
    def _readable_template(cls, value: str) -> str:
        try:
            fields(value)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return value


class WebhooksSection(BaseModel):
    """The listener triggers are served on when no Telegram webhook listener is configured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1"
    port: int = Field(default=8780, ge=0, le=65535)  # 0: any free port (tests)
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
