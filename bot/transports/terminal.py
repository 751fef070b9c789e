"""The interactive console's line: editing and history (GNU readline, through the
stdlib), a prompt, and the bot's messages printed above the line being typed.

Used only when stdin and stdout are a terminal; a script on stdin reads plainly. The
history lives in the data directory (mode 0600) and never keeps a command whose
arguments are private (`/secret set NAME value`): those are typed, used, and forgotten.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bot.commands import Commands, keeps_args_private
from storage.private import private_file

PROMPT = "you> "
HISTORY_LINES = 1000
CLEAR_LINE = "\r\x1b[K"


class Terminal:
    """Lines typed at a prompt (in a reader thread); `show` prints above the prompt."""

    def __init__(
        self, *, history: Path | None, commands: Commands, stdout: TextIO | None = None
    ) -> None:
        import readline  # line editing and history: loaded only for a person at a terminal

        self._readline = readline
        self._history = history
        self._commands = commands  # which lines hold private arguments (never kept)
        self._stdout = stdout or sys.stdout
        self._lock = threading.Lock()
        self._reading = False
        self._partial = ""  # a streamed answer's line being written (where the prompt was)

    def lines(self) -> Iterator[str]:
        """What is typed, line by line, until Ctrl-D (blocks: run it in a thread)."""
        self._load_history()
        while True:
            try:
                self._reading = True
                line = input(PROMPT)
            except EOFError:
                return
            finally:
                self._reading = False
            self._remember(line)
            yield line

    def show(self, text: str) -> None:
        """Print a message; a prompt with a half-typed line is drawn again below it."""
        with self._lock:
            if self._partial:  # a message in the middle of an answer: on a line of its own
                self._stdout.write(f"{CLEAR_LINE}{self._partial}\n")
                self._partial = ""
            if not self._reading:
                self._stdout.write(text + "\n")
            else:
                typed = self._readline.get_line_buffer()
                self._stdout.write(f"{CLEAR_LINE}{text}\n{PROMPT}{typed}")
            self._stdout.flush()

    def stream(self, piece: str) -> None:
        """Print a piece of a streamed answer: its finished lines once, the line being
        written in place of the prompt (drawn again below the answer when it ends)."""
        with self._lock:
            *done, self._partial = (self._partial + piece).split("\n")
            self._stdout.write(CLEAR_LINE + "".join(line + "\n" for line in done) + self._partial)
            self._stdout.flush()

    def end_stream(self) -> None:
        with self._lock:
            ended = f"{CLEAR_LINE}{self._partial}\n" if self._partial else CLEAR_LINE
            self._partial = ""
            if self._reading:
                ended += PROMPT + self._readline.get_line_buffer()
            self._stdout.write(ended)
            self._stdout.flush()

    def _remember(self, line: str) -> None:
        readline = self._readline
        if not line.strip() or keeps_args_private(line, self._commands):
            return
        readline.add_history(line)
        if self._history is not None:
            with contextlib.suppress(OSError):  # a full disk costs the history, not the chat
                readline.append_history_file(1, str(self._history))

    def _load_history(self) -> None:
        readline = self._readline
        readline.set_auto_history(False)  # `_remember` decides what is kept
        readline.set_history_length(HISTORY_LINES)
        if self._history is None:
            return
        with contextlib.suppress(OSError):
            private_file(self._history)
            readline.clear_history()
            readline.read_history_file(str(self._history))
            readline.write_history_file(str(self._history))  # cut to HISTORY_LINES
