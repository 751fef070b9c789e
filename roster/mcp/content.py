"""What an MCP tool result becomes for the model: text, JSON, and notes for the rest.

Text parts are passed as they are; structured content as compact JSON (when the text
parts do not already carry it); images, audio and resources as a one-line note of what
was there (the chat model reads text). A result marked `isError` is the tool's error.
"""

from __future__ import annotations

import json

from mcp import types

from roster.errors import ToolError


def tool_result_text(result: types.CallToolResult) -> str:
    """The model's reading of `result`; `ToolError` with the server's words on `isError`."""
    parts = [_part(block) for block in result.content]
    texts = [part for part in parts if part]
    if result.structuredContent is not None:
        structured = json.dumps(result.structuredContent, ensure_ascii=False, sort_keys=True)
        if not any(_same_json(text, result.structuredContent) for text in texts):
            texts.append(structured)
    text = "\n".join(texts)
    if result.isError:
        raise ToolError(text or "the tool reported an error")
    return text or "(the tool returned nothing)"


def _part(block: types.ContentBlock) -> str:  # noqa: PLR0911 (one return per kind)
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent):
        return f"[image: {block.mimeType}, {_size(block.data)}; not shown to the model]"
    if isinstance(block, types.AudioContent):
        return f"[audio: {block.mimeType}, {_size(block.data)}; not shown to the model]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link: {block.uri} ({block.name})]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return f"[resource {resource.uri}]\n{resource.text}"
        return f"[resource {resource.uri}: {resource.mimeType or 'binary'}; not shown]"
    return ""


def _size(data: str) -> str:
    """The decoded size of base64 `data`, for a note."""
    return f"{len(data) * 3 // 4} bytes"


def _same_json(text: str, value: object) -> bool:
    try:
        return bool(json.loads(text) == value)
    except ValueError:
        return False
