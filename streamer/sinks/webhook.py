"""Events to an HTTP endpoint: POSTed as JSON batches from a thread of their own, retried with
backoff until the receiver takes them, from a bounded backlog.

Nothing is dropped silently: when the receiver stays away so long that the backlog is full, the
oldest events are dropped, counted (``dropped``, the live view's metrics), logged, and the next
batch delivered starts with an ``events_dropped`` event saying how many and since when. Every
event is also in the store and the JSON-lines file, written before it gets here.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, field_validator, model_validator

from streamer.config_base import StrictModel
from streamer.records import Sighting
from streamer.redaction import checked_url, redact, register_secret

log = logging.getLogger(__name__)


class WebhookConfig(StrictModel):
    url: str = Field(description="http(s):// endpoint; events are POSTed as {\"events\": [...]}")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. Authorization: Bearer ${HOOK_TOKEN}")
    timeout_s: float = Field(5.0, gt=0, le=120)
    batch: int = Field(100, ge=1, le=10000, description="events per request at most")
    max_backlog: int = Field(10000, ge=1, le=10_000_000, description="undelivered events kept; beyond, the "
                             "oldest are dropped and reported")
    retry_initial_s: float = Field(0.5, gt=0, le=60)
    retry_max_s: float = Field(30.0, gt=0, le=3600)
    drain_s: float = Field(5.0, ge=0, le=600, description="at the end of a run, keep delivering this long")

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        return checked_url(url, ("http", "https"), "an http:// or https://")

    @model_validator(mode="after")
    def _retry_order(self):
        if self.retry_initial_s > self.retry_max_s:
            raise ValueError(f"retry_initial_s ({self.retry_initial_s:g}) must be at most retry_max_s "
                             f"({self.retry_max_s:g})")
        return self

    @field_validator("headers")
    @classmethod
    def _secret_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name.lower() in ("authorization", "proxy-authorization", "x-api-key"):
                register_secret(value)
                register_secret(value.split(" ", 1)[-1])
        return headers


class WebhookEvents:
    def __init__(self, config: WebhookConfig):
        self.config = config
        self._url, self._headers = _without_credentials(config.url)
        self._headers = {"Content-Type": "application/json", **self._headers, **config.headers}
        self.delivered = 0
        self.dropped = 0
        self.failures = 0  # failed requests (each retried)
        self.rejected = 0  # events the receiver refused for good (a 4xx answer): not sent again
        self._backlog: collections.deque[dict] = collections.deque()
        self._dropped_unreported = 0
        self._dropped_since: str | None = None
        self._lock = threading.Condition()
        self._closing = False  # stop now: close() has drained what it could
        self._draining = False  # close() is waiting for the backlog: retry without waiting out the backoff
        self._in_flight = 0
        self._thread = threading.Thread(target=self._deliver, name="webhook", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Events not delivered yet, the request in flight included."""
        with self._lock:
            return len(self._backlog) + self._in_flight

    def emit(self, sightings: Sequence[Sighting]) -> None:
        self.send([s.json for s in sightings])

    def alert(self, alerts: list[dict]) -> None:
        """Alerts go in the same batches, in order (``"type": "alert"``)."""
        self.send(alerts)

    def send(self, events: list[dict]) -> None:
        """Queues JSON events for delivery, in order; never waits for the receiver."""
        with self._lock:
            self._backlog.extend(events)
            self._trim()
            self._lock.notify_all()  # the deliverer, if idle; a backoff wait goes back to sleep (_backoff)

    def outcome(self) -> str:
        return (f"webhook: {self.delivered} events delivered, {self.failures} failed requests retried, "
                f"{self.dropped} dropped (backlog full), {self.rejected} refused by the receiver, "
                f"{self.backlog} undelivered")

    def _trim(self) -> None:
        """Drops the oldest events beyond ``max_backlog`` (under the lock), counting and logging them."""
        while len(self._backlog) > self.config.max_backlog:
            lost = self._backlog.popleft()
            self.dropped += 1
            self._dropped_unreported += 1
            self._dropped_since = self._dropped_since or lost.get("time")
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("webhook %s: backlog full (%d): %d oldest events dropped so far",
                            redact(self.config.url), self.config.max_backlog, self.dropped)

    def close(self, drain: bool = True) -> None:
        """Delivers what it can within ``drain_s`` (not at all without ``drain``: the run was aborted);
        reports what stayed undelivered."""
        deadline = time.monotonic() + (self.config.drain_s if drain else 0.0)
        with self._lock:
            self._draining = True
            self._lock.notify_all()  # a backoff in progress ends: the drain time is for delivering
            while (self._backlog or self._in_flight) and time.monotonic() < deadline and self._thread.is_alive():
                self._lock.wait(0.05)
            self._closing = True
            self._lock.notify_all()
        self._thread.join(timeout=self.config.timeout_s)  # a request in flight ends within its timeout
        if self._backlog:
            log.error("webhook %s: %d events not delivered (they are in the store and events.jsonl)",
                      redact(self.config.url), len(self._backlog))

    def _next_batch(self) -> list[dict] | None:
        """Takes up to ``batch`` events off the backlog (they are given back if delivery fails)."""
        with self._lock:
            while not self._backlog and not self._closing:
                self._lock.wait()
            if self._closing:
                return None
            batch = [self._backlog.popleft() for _ in range(min(self.config.batch, len(self._backlog)))]
            self._in_flight = len(batch)
            return batch

    def _deliver(self) -> None:
        wait = self.config.retry_initial_s
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            with self._lock:
                dropped = self._dropped_unreported
                notice = [{"type": "events_dropped", "count": dropped, "since": self._dropped_since}] if dropped else []
            answer = self._post(notice + batch)
            if answer is not _RETRY:
                wait = self.config.retry_initial_s
                with self._lock:
                    if answer is _DELIVERED:
                        self.delivered += len(batch)
                    else:
                        self.rejected += len(batch)
                    self._in_flight = 0
                    self._dropped_unreported -= dropped
                    if not self._dropped_unreported:
                        self._dropped_since = None
                    self._lock.notify_all()
                continue
            self.failures += 1
            with self._lock:
                self._backlog.extendleft(reversed(batch))
                self._in_flight = 0
                self._trim()
                if not self._backoff(wait * random.uniform(0.8, 1.2)):
                    return
            wait = min(wait * 2, self.config.retry_max_s)

    def _backoff(self, seconds: float) -> bool:
        """(Under the lock.) Waits ``seconds`` before the next attempt; False when the sink is closing.

        New events notify the same condition; they must not cut the wait short, or a receiver that is
        down gets a request per event instead of one per backoff step. Only close() ends it early: at the
        start of the drain (deliver now) and at the end (stop).
        """
        deadline = time.monotonic() + seconds
        draining = self._draining
        while not self._closing and (self._draining == draining):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._lock.wait(left)
        return not self._closing

    def _post(self, batch: list[dict]) -> object:
        """_DELIVERED, _REFUSED (a 4xx answer: sending it again would get the same) or _RETRY."""
        body = json.dumps({"events": batch}, separators=(",", ":")).encode()
        request = urllib.request.Request(self._url, data=body, method="POST", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                return _DELIVERED if 200 <= response.status < 300 else _RETRY
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 425, 429):
                log.error("webhook %s: the receiver refused %d events with %d %s; they are not sent again "
                          "(they are in the store and events.jsonl)", redact(self.config.url), len(batch), exc.code,
                          redact(str(exc.reason)))
                return _REFUSED
            self._note_failure(exc)
        except Exception as exc:  # noqa: BLE001 - any failure to deliver (a garbled answer too) is retried
            self._note_failure(exc)
        return _RETRY

    def _note_failure(self, exc: Exception) -> None:
        if self.failures == 0 or self.failures % 20 == 0:
            log.warning("webhook %s: %s (retrying)", redact(self.config.url), redact(str(exc) or type(exc).__name__))


_DELIVERED, _REFUSED, _RETRY = object(), object(), object()


def _without_credentials(url: str) -> tuple[str, dict[str, str]]:
    """``http://user:pw@host/`` -> (``http://host/``, a basic-auth header): urllib takes no credentials in URLs."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, {}
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
    register_secret(token)
    return urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}
