"""Log set-up: a file in the data directory, warnings on stderr, text or JSON lines.

With `[deck] log_format = "json"` every line of the log file is one JSON object:
time, level, logger, message, and the run id and chat when the line was written
while handling one (`bound()` sets them for the current task and the tasks it
starts: asyncio copies the context into each new task).

The secret-redaction filter (`bot.redaction`) sits on the same handlers and runs
before any formatter; the JSON formatter therefore reads the scrubbed message and
the scrubbed traceback text, never `exc_info` itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from bot.config import LogFormat
from storage.private import private_dir, private_file

LOG_FILE = "agentdeck.log"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# APScheduler logs every job it adds at INFO: thousands of lines at each start.
NOISY = (
    "httpx",
    "httpx2",
    "httpcore",
    "aiosqlite",
    "telegram.ext.Updater",
    "apscheduler",
    "aiohttp.access",
)

_where: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "agentdeck_log_where", default=()
)


Token = contextvars.Token[tuple[tuple[str, str], ...]]


def enter(**fields: str | None) -> Token:
    """Name what the current task works on (`run=`, `chat=`) until `leave(token)`."""
    current = dict(_where.get())
    current.update({key: value for key, value in fields.items() if value})
    return _where.set(tuple(current.items()))


def leave(token: Token) -> None:
    _where.reset(token)


@contextlib.contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """`enter()` for a `with` block."""
    token = enter(**fields)
    try:
        yield
    finally:
        leave(token)


def where() -> dict[str, str]:
    """What the current task is bound to (empty outside any `bound()`)."""
    return dict(_where.get())


class JsonFormatter(logging.Formatter):
    """One JSON object per record; the message and traceback as the filters left them."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(where())
        for key in ("run", "chat"):  # given explicitly: `log.info(..., extra={"run": id})`
            value = getattr(record, key, None)
            if isinstance(value, str) and value:
                line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    if log_format is LogFormat.JSON:
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


def setup_logging(data_dir: Path, log_format: LogFormat) -> None:
    """The log file (text or JSON) at INFO, warnings also on stderr as one short line."""
    log_file = private_file(private_dir(data_dir) / LOG_FILE)  # 0600, whatever the umask
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(formatter_for(log_format))
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("agentdeck: %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler, console], force=True)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def terminal_for_chat(data_dir: Path) -> Iterator[None]:
    """While a person chats in this terminal, nothing else prints there.

    Log records (the stderr handler's warnings), Python warnings and stray tracebacks
    written to `sys.stderr` (a thread's uncaught exception) go to the log file only;
    all is put back when the chat ends, so errors of the stop are seen again.
    """
    root = logging.getLogger()
    on_terminal = [
        handler
        for handler in root.handlers
        if isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
    ]
    for handler in on_terminal:
        root.removeHandler(handler)
    logging.captureWarnings(True)
    saved = sys.stderr
    log_file = private_file(private_dir(data_dir) / LOG_FILE)
    with log_file.open("a", encoding="utf-8", buffering=1) as stream:
        sys.stderr = stream
        try:
            yield
        finally:
            sys.stderr = saved
            logging.captureWarnings(False)
            for handler in on_terminal:
                root.addHandler(handler)
