"""The deck's model providers, built from `[llm]` and `[llm.providers.<name>]`.

Each provider's key is a reference (`env:`/`secret:`) resolved here, once, at start and
at each reload; a key that names nothing leaves that provider without one, and the
agents on it are listed as unavailable with the reason (the rest of the bot runs).
"""

from __future__ import annotations

import os

from bot.config import Config
from roster.errors import ReferenceNotFound
from roster.model_client import ModelClient, ModelSettings
from roster.providers import DEFAULT, Providers, ProviderSpec
from roster.refs import SecretSource, resolve


def model_settings(config: Config, secrets: SecretSource) -> ModelSettings:
    """The default provider: `[llm]` (OPENAI_BASE_URL when it names no base_url)."""
    return ModelSettings(
        base_url=config.llm.base_url or os.environ.get("OPENAI_BASE_URL") or None,
        api_key=_key(config.llm.api_key, secrets),
        timeout=config.llm.timeout,
        max_retries=config.llm.max_retries,
    )


def provider_settings(
    name: str, spec: ProviderSpec, config: Config, secrets: SecretSource
) -> ModelSettings:
    # A local server may want no key; the SDK wants some string, and sends it as is.
    key = _key(spec.api_key, secrets) if spec.api_key else "none"
    return ModelSettings(
        base_url=spec.base_url,
        api_key=key,
        timeout=spec.timeout or config.llm.timeout,
        max_retries=config.llm.max_retries if spec.max_retries is None else spec.max_retries,
        section=f"[llm.providers.{name}]",
    )


def providers_for(config: Config, secrets: SecretSource) -> Providers:
    clients = {DEFAULT: ModelClient(model_settings(config, secrets))}
    for name, spec in config.llm.providers.items():
        clients[name] = ModelClient(provider_settings(name, spec, config, secrets))
    return Providers(clients, models=config.llm.models)


def _key(reference: str, secrets: SecretSource) -> str | None:
    try:
        return (resolve(reference, secrets) if reference else None) or None
    except ReferenceNotFound:
        return None  # its agents are listed as unavailable, with the reason
