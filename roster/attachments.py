"""Files sent with a message, as each agent takes them.

An llm agent with `vision = true` gets a photo inside its request, as an image part of
the user's message; any llm agent gets a text-like document (up to 1 MB) or a PDF's
text in its message (`roster.documents`). Every other agent gets the file's path in
its input: a line `[attached: /…/photo.jpg]` after the text (so it is stored with the
run, shown on the dashboard, and kept when a run waits for an approval), and a command
template's `{files}` stands for the paths. Paths only ever come from the bot's own download
(`AgentRequest.files`), never from text someone typed.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from roster.agent import Received
from roster.spec import AgentBase, LLMAgentSpec

PHOTO = "photo"
DOCUMENT = "document"


def takes_inline(spec: AgentBase, file: Received) -> bool:
    """Whether the agent gets this file inside its request rather than as a path."""
    if not isinstance(spec, LLMAgentSpec):
        return False
    return (spec.vision and file.kind == PHOTO) or file.text is not None


def text_blocks(files: Sequence[Received]) -> str:
    """Documents read as text, each under a line naming it, for the user's message."""
    return "".join(f"\n\n--- {f.name} ---\n{f.text}" for f in files if f.text is not None)


def as_input(spec: AgentBase, text: str, files: Sequence[Received]) -> str:
    """The text with a line naming each file the agent does not get inline."""
    lines = [f"[attached: {f.path}]" for f in files if not takes_inline(spec, f)]
    if not lines:
        return text
    return "\n\n".join(part for part in (text.strip(), "\n".join(lines)) if part)


def image_parts(files: Sequence[Received]) -> list[dict[str, Any]]:
    """Photos as OpenAI image parts (data URLs). Blocking file reads: run in a thread."""
    parts: list[dict[str, Any]] = []
    for file in files:
        if file.kind != PHOTO:
            continue
        data = base64.b64encode(Path(file.path).read_bytes()).decode()
        mime = file.mime if file.mime.startswith("image/") else "image/jpeg"
        parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}})
    return parts
