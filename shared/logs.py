"""Logging set-up shared by every process: one line per record on stderr, secrets masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from shared.redact import mask_urls

_MASK = "[redacted]"


class SecretMaskingFilter(logging.Filter):
    """Replace any configured secret value in a record's final message, and show every URL in it without
    its credentials and query values (``shared/redact.py``): a second line of defence for the day someone
    logs a request object or an exception that carries a header, and for libraries' own lines."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_urls(message)
        for secret in self._secrets:
            masked = masked.replace(secret, _MASK)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_urls(record.exc_text)
            for secret in self._secrets:
                record.exc_text = record.exc_text.replace(secret, _MASK)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str, secrets: Iterable[str], process: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(SecretMaskingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request line at INFO; keep the stream readable.
    logging.getLogger("httpx").setLevel(logging.WARNING)
