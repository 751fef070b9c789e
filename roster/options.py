"""Words a program would read as options, where a message or a model supplied them.

A word that starts with "-" is an option to most programs: `--output=<path>` appended
to an allowed `git log` made git write a file. So a word from a message or a tool
argument that stands as an argument of its own may not start with "-", unless it
follows a `--` (the end of options, for programs that understand it) or the agent or
tool says `accept_options = true`. Allow rules use the same test (`extra = "no-options"`).
"""

from __future__ import annotations

from roster.errors import ToolError

END_OF_OPTIONS = "--"
SHOWN_CHARS = 40


def is_option(word: str) -> bool:
    """Whether a program would take `word` for an option (a lone `--` ends them)."""
    return word.startswith("-") and word != END_OF_OPTIONS


def refuse_options(words: tuple[str, ...], *, what: str, hint: str) -> None:
    """Raise `ToolError` for the first word that would be read as an option."""
    for word in words:
        if word.startswith("-"):
            shown = word if len(word) <= SHOWN_CHARS else word[:SHOWN_CHARS] + "…"
            raise ToolError(
                f"{what} {shown!r} starts with '-', so the program would take it as an "
                f"option; nothing ran. {hint}"
            )
