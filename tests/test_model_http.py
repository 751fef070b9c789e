"""The model client's own request path (`roster.model_http`): retries and errors as the SDK's.

Against the fake OpenAI server: a failure the SDK would retry is retried up to
`max_retries`, a refusal is not, and what comes back is the same `ModelError` family
the fallback chains and the runner tell apart.
"""

from __future__ import annotations

import socket

import pytest

from roster.errors import ModelError, ModelUnavailable
from roster.model_client import ModelClient, ModelSettings
from tests.fakes.openai_server import FakeOpenAI, fail, say, stream


def client(base_url: str, retries: int) -> ModelClient:
    return ModelClient(ModelSettings(base_url=base_url, api_key="sk-test", max_retries=retries))


async def test_a_server_error_is_retried_and_then_answered(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [fail(500), say("second try")]
    model = client(fake_openai.base_url, retries=1)
    try:
        reply = await model.complete("gpt-4o-mini", [{"role": "user", "content": "hi"}], [])
    finally:
        await model.close()
    assert reply.content == "second try"
    assert len(fake_openai.requests) == 2
    assert fake_openai.keys == ["sk-test", "sk-test"]


async def test_a_streamed_request_is_retried_before_the_stream_begins(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.script = [fail(503), stream("streamed answer")]
    model = client(fake_openai.base_url, retries=1)
    shown: list[str] = []

    async def on_text(text: str) -> None:
        shown.append(text)

    try:
        reply = await model.stream("gpt-4o-mini", [{"role": "user", "content": "hi"}], [], on_text)
    finally:
        await model.close()
    assert reply.content == "streamed answer"
    assert shown[-1] == "streamed answer"
    assert len(fake_openai.requests) == 2


async def test_a_refusal_is_not_retried_and_is_no_outage(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [fail(400), say("never asked")]
    model = client(fake_openai.base_url, retries=2)
    try:
        with pytest.raises(ModelError) as raised:
            await model.complete("gpt-4o-mini", [{"role": "user", "content": "hi"}], [])
    finally:
        await model.close()
    assert not isinstance(raised.value, ModelUnavailable)
    assert str(raised.value).startswith("The model API answered 400: Error code: 400 - ")
    assert "scripted failure 400" in str(raised.value)
    assert len(fake_openai.requests) == 1


async def test_retries_give_up_after_max_retries_with_an_outage(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = [fail(429), fail(429), say("too late")]
    model = client(fake_openai.base_url, retries=1)
    try:
        with pytest.raises(ModelUnavailable, match="answered 429"):
            await model.complete("gpt-4o-mini", [{"role": "user", "content": "hi"}], [])
    finally:
        await model.close()
    assert len(fake_openai.requests) == 2


async def test_a_closed_port_reads_as_out_of_reach() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = client(f"http://127.0.0.1:{port}/v1", retries=0)
    try:
        with pytest.raises(ModelUnavailable, match=r"cannot be reached; check \[llm\] base_url"):
            await model.complete("gpt-4o-mini", [{"role": "user", "content": "hi"}], [])
    finally:
        await model.close()


async def test_a_base_url_without_v1_is_named(fake_openai: FakeOpenAI) -> None:
    model = client(fake_openai.base_url.removesuffix("/v1"), retries=0)
    try:
        with pytest.raises(ModelError, match="does \\[llm\\] base_url need /v1 at its end"):
            await model.complete("gpt-4o-mini", [{"role": "user", "content": "hi"}], [])
    finally:
        await model.close()
