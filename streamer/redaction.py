"""Keeps camera passwords out of logs, errors, events and pages.

Every secret the config resolves (URL passwords, ``${ENV}`` values in a
password position) is registered here once; ``redact`` then masks it in any
text, including exception messages produced by PyAV, which embed the URL.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
# user:password@ inside any URL-looking text, even if the password was never registered.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@")


def register_secret(value: str | None) -> None:
    if value and len(value) >= 3:
        # Percent-encoded forms appear in URLs; register both.
        from urllib.parse import quote

        with _lock:
            _secrets.add(value)
            _secrets.add(quote(value, safe=""))


def redact(text: str) -> str:
    """Returns ``text`` with URL passwords and every registered secret masked."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def checked_url(url: str, schemes: tuple[str, ...], kind: str) -> str:
    """``url`` if it is one of ``schemes`` with a host (else a ValueError saying ``kind``, the URL redacted); a
    password in it is registered as a secret first."""
    parts = urlsplit(url)
    register_secret(parts.password)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be {kind} URL, got {redact(url)}")
    return url


def redact_url(url: str) -> str:
    """``rtsp://admin:pw@cam/x`` -> ``rtsp://admin:***@cam/x``; other URLs unchanged."""
    parts = urlsplit(url)
    if parts.password is None:
        return redact(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:{MASK}@{host}"
    return redact(urlunsplit(parts._replace(netloc=netloc)))


class RedactingFilter(logging.Filter):
    """Masks secrets in every record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
