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

APPLY_WAIT_S = 10.0  # how long a request waits for the loop to carry it out before answering "accepted"


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
        self.changes: list[dict] = []  # what was added and removed, when (for run.json)

    def bind(self, make: Callable[[SourceConfig], ThreadedSource], names_taken: Callable[[], set[str]]) -> None:
        """``make``: an unopened source for an entry; ``names_taken``: the run's stream names, removed ones too."""
        self._make, self._names_taken = make, names_taken
        self._bound.set()

    def add(self, entry: object) -> tuple[StreamStatus | None, bool]:
        """Validates and opens a source; (its status, True) once the loop runs it, or (None, False) when the
        loop has not taken it within APPLY_WAIT_S (it will)."""
        if not isinstance(entry, dict):
            raise ControlError(400, "expected a JSON object: one entry of the config's 'sources'")
        try:
            config = SourceConfig.model_validate(entry)
        except ValidationError as exc:
            raise ControlError(400, f"source: {format_validation_error(exc)}") from None
        with self._lock:
            if config.name in self._pending or config.name in self._names_taken():
                raise ControlError(409, f"a stream named {config.name!r} is in this run, or was: its recording "
                                   f"and events keep that name; choose another")
            self._pending.add(config.name)
        if not self._bound.wait(APPLY_WAIT_S):  # a cluster worker still loading its models
            raise ControlError(503, "the run is starting: try again in a moment")
        try:
            source = self._make(config)
            source.open()  # a file that does not exist or decode is refused now, as at start-up
        except StreamerError as exc:
            with self._lock:
                self._pending.discard(config.name)
            raise ControlError(422, str(exc)) from None
        return self._submit(_Request("add", config.name, source))  # the loop frees the name once it is a stream

    def remove(self, name: str) -> tuple[StreamStatus | None, bool]:
        return self._submit(_Request("remove", name))

    def _submit(self, request: _Request) -> tuple[StreamStatus | None, bool]:
        self._requests.put(request)
        if not request.done.wait(APPLY_WAIT_S):
            return None, False
        if request.status is None:
            raise ControlError(404, f"no stream named {request.name!r} is running")
        return request.status, True

    def apply(self, on_add: Callable[[ThreadedSource], StreamStatus],
              on_remove: Callable[[str], StreamStatus | None]) -> None:
        """On the loop's thread: carries out the requests that came since the last call."""
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            try:
                if request.kind == "add":
                    request.status = on_add(request.source)
                    with self._lock:
                        self._pending.discard(request.name)
                else:
                    request.status = on_remove(request.name)
                if request.status is not None:
                    self.changes.append({"at": time.time(), request.kind: request.name})
            finally:
                request.done.set()
