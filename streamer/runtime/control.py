"""Adding and removing a run's cameras while it runs (``web.control``), as DeepStream's REST API does.

A request is checked on the web server's thread (the entry validated as a config ``sources`` item, a file
opened), then carried out on the loop's thread between two batches, so a stream's state is only ever
touched by the loop: an added stream joins detection and the live view; a removed one stops, its tracks
end (their events are written), and its recording is finished, playable. A stream's name stays taken for
the rest of the run: its recording and events keep that name, and a later stream must not write over them.

Entries come from the network: ``${VAR}`` is not expanded in them (that would hand the server's environment
to whoever may post), and a password in a URI is redacted wherever the entry is said again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError

from streamer.config import SourceConfig, format_validation_error
from streamer.errors import StreamerError
from streamer.records import StreamStatus
from streamer.sources import ThreadedSource

log = logging.getLogger(__name__)
APPLY_WAIT_S = 10.0  # how long a request waits for the loop to carry it out before answering "accepted"


def parse_entry(entry: object) -> SourceConfig:
    """A posted entry as a source's config, or a 400 naming the key at fault."""
    if not isinstance(entry, dict):
        raise ControlError(400, "expected a JSON object: one entry of the config's 'sources'")
    try:
        return SourceConfig.model_validate(entry)
    except ValidationError as exc:
        raise ControlError(400, f"source: {format_validation_error(exc)}") from None


def name_taken(name: str) -> ControlError:
    return ControlError(409, f"a stream named {name!r} is in this run, or was: its recording and events keep that "
                        f"name; choose another")


class ControlError(Exception):
    """A request refused; ``status`` is the HTTP status that says why (400 bad entry, 404 no such stream,
    409 name taken, 422 the source cannot be opened)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class _Request:
    kind: str  # "add" | "remove"
    name: str
    source: ThreadedSource | None = None
    done: threading.Event = field(default_factory=threading.Event)
    status: StreamStatus | None = None
    error: tuple[int, str] | None = None  # (HTTP status, why) when it could not be carried out


class StreamControl:
    """``add`` and ``remove`` are called from other threads (the web server's, a cluster worker's); ``apply``
    from the loop's, which hands each request to ``on_add`` / ``on_remove`` (they return the stream's status).
    The run binds it to its sources (``bind``) before anything can be asked."""

    def __init__(self) -> None:
        self._make: Callable[[SourceConfig], ThreadedSource] | None = None
        self._names_taken: Callable[[], set[str]] = set
        self._bound = threading.Event()
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # names of streams being added, not yet taken by the loop
        self._closed = False
        self.changes: list[dict] = []  # what was added and removed, when (for run.json)

    def bind(self, make: Callable[[SourceConfig], ThreadedSource], names_taken: Callable[[], set[str]]) -> None:
        """``make``: an unopened source for an entry; ``names_taken``: the run's stream names, removed ones too."""
        self._make, self._names_taken = make, names_taken
        self._bound.set()

    def add(self, entry: object) -> tuple[StreamStatus | None, bool]:
        """Validates and opens a source; (its status, True) once the loop runs it, or (None, False) when the
        loop has not taken it within APPLY_WAIT_S (it will)."""
        config = parse_entry(entry)
        if not self._bound.wait(APPLY_WAIT_S):  # a cluster worker still loading its models
            raise ControlError(503, "the run is starting: try again in a moment")
        with self._lock:
            if self._closed:
                raise ControlError(503, "the run is stopping")
            if config.name in self._pending or config.name in self._names_taken():
                raise name_taken(config.name)
            self._pending.add(config.name)
        submitted = False
        try:
            try:
                source = self._make(config)
                source.open()  # a file that does not exist or decode is refused now, as at start-up
            except StreamerError as exc:
                raise ControlError(422, str(exc)) from None
            submitted = True  # the name is the loop's to free now, once the stream runs or failed to
            return self._submit(_Request("add", config.name, source))
        finally:
            if not submitted:
                with self._lock:
                    self._pending.discard(config.name)

    def remove(self, name: str) -> tuple[StreamStatus | None, bool]:
        return self._submit(_Request("remove", name))

    def _submit(self, request: _Request) -> tuple[StreamStatus | None, bool]:
        with self._lock:
            if self._closed:  # checked under the lock close() drains under: nothing is left in the queue
                self._abandon(request)
            else:
                self._requests.put(request)
        if not request.done.wait(APPLY_WAIT_S):
            return None, False
        if request.error is not None:
            raise ControlError(request.error[0], request.error[1])
        if request.status is None:
            raise ControlError(404, f"no stream named {request.name!r} is running")
        return request.status, True

    def apply(self, on_add: Callable[[ThreadedSource], StreamStatus],
              on_remove: Callable[[str], StreamStatus | None]) -> None:
        """On the loop's thread: carries out the requests that came since the last call. A request that fails is
        answered so (its source closed), and the run goes on."""
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                if request.kind == "add":
                    request.status = on_add(request.source)
                else:
                    request.status = on_remove(request.name)
                if request.status is not None:
                    self.changes.append({"at": time.time(), request.kind: request.name})
            except StreamerError as exc:  # a sink that cannot start, the store refusing a track's end
                log.error("stream %r could not be %sed: %s", request.name, request.kind.removesuffix("e"), exc)
                request.error = (500, str(exc))
                if request.kind == "add":
                    request.source.stop(0)
            finally:
                if request.kind == "add":
                    with self._lock:
                        self._pending.discard(request.name)
                request.done.set()

    def close(self) -> None:
        """The run is ending: later requests are refused, and those not carried out are answered so."""
        with self._lock:
            self._closed = True
            while True:
                try:
                    request = self._requests.get_nowait()
                except queue.Empty:
                    break
                self._abandon(request)

    def _abandon(self, request: _Request) -> None:
        if request.source is not None:
            request.source.stop(0)
        self._pending.discard(request.name)
        request.error = (503, "the run is stopping")
        request.done.set()
