"""Documents as text for a model: text-like files up to 1 MB, and PDFs through pypdf.

Anything else (an archive, a binary, a text file that does not decode) stays a file,
given to the agent by its path. Blocking work (PDF parsing): call `as_text` in a thread.
"""

from __future__ import annotations

import io
import logging
from pathlib import PurePath

log = logging.getLogger(__name__)

TEXT_LIMIT = 1_000_000  # bytes of a text file given to a model as text
PDF_TEXT_CHARS = 200_000  # what is kept of a PDF's extracted text
TEXT_SUFFIXES = frozenset(
    {
        ".txt", ".md", ".markdown", ".rst", ".log", ".csv", ".tsv", ".json", ".jsonl",
        ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".env.example", ".xml",
        ".html", ".htm", ".css", ".py", ".js", ".ts", ".tsx", ".jsx", ".go", ".rs",
        ".java", ".kt", ".c", ".h", ".cpp", ".hpp", ".cs", ".rb", ".php", ".sh", ".sql",
        ".diff", ".patch", ".tf", ".dockerfile",
    }
)  # fmt: skip
TEXT_MIMES = frozenset({"application/json", "application/xml", "application/x-yaml"})
PDF = "application/pdf"


def as_text(name: str, mime: str, data: bytes) -> str | None:
    """The document's text when a model should read it as text, else None."""
    suffix = PurePath(name.lower()).suffix
    if mime == PDF or suffix == ".pdf":
        return _pdf_text(data)
    textual = suffix in TEXT_SUFFIXES or mime.startswith("text/") or mime in TEXT_MIMES
    if not textual or len(data) > TEXT_LIMIT or b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _pdf_text(data: bytes) -> str | None:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = []
        size = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            pages.append(text)
            size += len(text)
            if size >= PDF_TEXT_CHARS:
                break
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        log.info("a PDF could not be read as text (%s): given as a file", type(exc).__name__)
        return None
    text = "\n\n".join(pages).strip()[:PDF_TEXT_CHARS]
    return text or None
