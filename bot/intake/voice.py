"""Voice notes and audio files in: fetched, written down, and handed on as typed text.

The file comes through the platform's API (the transport that made the attachment
downloads it, within `[deck] max_file_mb`), the model at `[llm] transcription_model`
writes it down, and the transcript is shown back in a short quote ("🎤 …"). The
dispatcher then handles the transcript exactly as text the same person typed: routing,
commands, roles and approvals all apply, nothing more is allowed. A command whose
arguments are private (`/secret set`) is refused when spoken: a transcript is echoed
and cannot be deleted the way a typed secret is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot import messages
from bot.config import CurrentConfig
from bot.intake.actions import Actions
from bot.intake.files import Files
from bot.text import Span
from bot.types import Attachment, AttachmentKind, Incoming
from roster.errors import ModelError
from roster.providers import Providers
from storage.audit import AuditLog

log = logging.getLogger(__name__)

SPOKEN = frozenset({AttachmentKind.VOICE, AttachmentKind.AUDIO})
SHOWN_CHARS = 300  # the quote of the transcript; the whole of it is what is handled
MIC = "🎤 "


def recording(incoming: Incoming) -> Attachment | None:
    return next((a for a in incoming.attachments if a.kind in SPOKEN), None)


class Voice:
    """Voice notes in: written down, shown back, handed on as text (`transcript`)."""

    def __init__(
        self,
        *,
        config: CurrentConfig,
        providers: Providers,
        audit: AuditLog,
        files: Files,
        actions: Actions,
    ) -> None:
        self._config = config
        self._providers = providers
        self._audit = audit
        self._files = files
        self._actions = actions

    async def transcript(self, incoming: Incoming, private: Callable[[str], bool]) -> str | None:
        """The words of the message's recording, shown back; None when there are none to
        hand on (the person was told why). `private(text)`: the text is a command whose
        arguments are private (the dispatcher asks its commands; intake does not import them)."""
        audio = recording(incoming)
        if audio is None:
            return None
        text = await self._written_down(incoming, audio)
        if text is None:
            return None
        if private(text):
            self._audit.record(incoming.user, "refused.spoken_private", incoming.chat)
            await self._actions.reply(incoming, messages.SPOKEN_PRIVATE_COMMAND)
            return None
        self._audit.record(incoming.user, "voice.transcribed", incoming.chat, chars=len(text))
        shown = text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"
        await self._actions.reply(incoming, Span(MIC + shown, quote=True))
        return text

    async def _written_down(self, incoming: Incoming, audio: Attachment) -> str | None:
        model = self._config().llm.transcription_model
        if not model:
            await self._refuse(incoming, "no_model", messages.NO_TRANSCRIPTION)
            return None
        reason = self._providers.default.unavailable_reason()
        if reason is not None:
            await self._refuse(incoming, "no_model", messages.not_transcribed(reason))
            return None
        data = await self._files.fetch(incoming, audio)
        if data is None:
            return None
        try:
            text = await self._providers.default.transcribe(model, data, audio.name)
        except ModelError as exc:
            await self._refuse(incoming, "model", messages.not_transcribed(str(exc)))
            return None
        if not text.strip():
            await self._refuse(incoming, "empty", messages.HEARD_NOTHING)
            return None
        return text.strip()

    async def _refuse(self, incoming: Incoming, why: str, text: str) -> None:
        self._audit.record(incoming.user, "refused.voice", incoming.chat, reason=why)
        await self._actions.reply(incoming, text)
