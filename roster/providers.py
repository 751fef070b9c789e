"""Model providers: `[llm.providers.<name>]`, the models an agent may use, and its chain.

A provider is an OpenAI-compatible endpoint (OpenAI, OpenRouter, a local vLLM or Ollama)
with its own base URL and key; `[llm]` itself is the provider named `default`. An llm
agent names its provider, the models a chat may switch it to (`models`, else the
provider's list in `[llm.models]`), and `fallback`: `"<provider>:<model>"` entries tried
in order when a model is rate-limited, failing or too slow (`roster.fallback`).

A model name may itself hold a colon (Ollama's `llama3:8b`): the part before the first
colon is read as a provider only when a provider has that name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from roster.model_client import ModelClient
from roster.spec import LLMAgentSpec

DEFAULT = "default"  # the provider `[llm]` describes
PROVIDER_NAME = r"^[a-z][a-z0-9_-]{0,39}$"


class ProviderSpec(BaseModel):
    """`[llm.providers.<name>]`: an OpenAI-compatible endpoint and its key (a reference)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = Field(pattern=r"^https?://\S+$")
    # `env:NAME` or `secret:NAME`; empty for a local server that wants none.
    api_key: str = Field(default="", pattern=r"^((env|secret):.+)?$")
    timeout: float | None = Field(default=None, gt=0)  # default: [llm] timeout
    max_retries: int | None = Field(default=None, ge=0, le=10)  # default: [llm] max_retries


@dataclass(frozen=True, slots=True)
class ModelName:
    """A model on a provider: what `fallback` entries and `/model` choices name."""

    provider: str
    model: str

    @property
    def label(self) -> str:
        """How chat and logs show it: the bare model on the default provider."""
        return self.model if self.provider == DEFAULT else f"{self.provider}:{self.model}"


def parse_model(text: str, *, own: str, providers: Iterable[str]) -> ModelName:
    """`"openrouter:gpt-4o"` on provider openrouter, if there is one; else a model on `own`."""
    head, colon, rest = text.partition(":")
    if colon and rest and (head == DEFAULT or head in set(providers)):
        return ModelName(head, rest)
    return ModelName(own, text)


@dataclass(frozen=True, slots=True)
class Target:
    """One model to ask, and the client of its provider."""

    name: ModelName
    client: ModelClient

    @property
    def label(self) -> str:
        return self.name.label


class ModelChoices(Protocol):
    """Which model a chat picked for an agent (`/model`), if it picked one."""

    async def chosen(self, chat: str, agent: str) -> str | None: ...


class NoChoices:
    async def chosen(self, chat: str, agent: str) -> str | None:
        return None


class Providers:
    """Every provider's client, by name, and the model lists `[llm.models]` gives them."""

    def __init__(
        self,
        clients: Mapping[str, ModelClient],
        *,
        models: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if DEFAULT not in clients:
            raise ValueError("the default provider ([llm]) needs a client")
        self._clients = dict(clients)
        self._models = {name: tuple(listed) for name, listed in (models or {}).items()}

    @classmethod
    def single(cls, client: ModelClient) -> Providers:
        """Just `[llm]`: for tests and tools that talk to one endpoint."""
        return cls({DEFAULT: client})

    @property
    def default(self) -> ModelClient:
        return self._clients[DEFAULT]

    def names(self) -> list[str]:
        return list(self._clients)

    def client(self, provider: str) -> ModelClient:
        return self._clients[provider]

    def parse(self, text: str, own: str) -> ModelName:
        return parse_model(text, own=own, providers=self._clients)

    def choices(self, spec: LLMAgentSpec) -> list[ModelName]:
        """What a chat may switch the agent to: its own model first, no repeats."""
        listed = spec.models or self._models.get(spec.provider, ())
        names = [ModelName(spec.provider, spec.model)]
        names += [self.parse(text, spec.provider) for text in listed]
        return list(dict.fromkeys(names))

    def allowed(self, spec: LLMAgentSpec, text: str) -> ModelName | None:
        """The choice `text` names (as a label or bare model name), if it is allowed."""
        for name in self.choices(spec):
            if text in (name.label, f"{name.provider}:{name.model}"):
                return name
        return None

    def chain(self, spec: LLMAgentSpec, chosen: str | None = None) -> list[Target]:
        """The models to try in order: the chat's choice (if still allowed) or the agent's
        model, then its fallbacks; each model once."""
        first = self.allowed(spec, chosen) if chosen else None
        names = [first or ModelName(spec.provider, spec.model)]
        if spec.fallback_model:
            names.append(ModelName(spec.provider, spec.fallback_model))
        names += [self.parse(text, spec.provider) for text in spec.fallback]
        return [Target(name, self._clients[name.provider]) for name in dict.fromkeys(names)]

    def unavailable_reason(self, spec: LLMAgentSpec) -> str | None:
        """Why the agent's own provider cannot answer (no key, not started), or None."""
        client = self._clients.get(spec.provider)
        if client is None:  # added by a reload: providers are read at start
            return f"provider {spec.provider!r} is new; restart to use it"
        return client.unavailable_reason()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
