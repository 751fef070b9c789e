"""Log redaction: a filter on every log handler that scrubs stored secrets' values.

A filter on the root logger would only see records logged on the root logger itself;
records of `bot.runs.runner` and friends reach the handlers by propagation, so the filter
sits on the handlers. Tracebacks are formatted and scrubbed here too, before the
formatter would format them unscrubbed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

Redact = Callable[[str], str]


class RedactingFilter(logging.Filter):
    def __init__(self, redact: Redact) -> None:
        super().__init__()
        self._redact = redact
        self._formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        scrubbed = self._redact(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redact(record.stack_info)
        return True


@contextlib.contextmanager
def redacting_logs(redact: Redact, logger: logging.Logger | None = None) -> Iterator[None]:
    """Scrub every record that the (root) logger's handlers emit, until exit."""
    handlers = list((logger or logging.getLogger()).handlers)
    log_filter = RedactingFilter(redact)
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(log_filter)
