"""The operator console's API: review face sightings, name or reject them, keep the face library, search by face.

Served by the live view's server, under its token (see server.py for the guards on changes: a CSRF header and
the request's origin). Every change goes through GalleryStore, so it is logged for every run's index (the next
sighting of that face is named accordingly) and audited with who made it. Identity names arrive in URLs and
bodies and are data: they are checked as names, used as SQL parameters, and never touch a path.

A search is not a decision: it reads, and names nobody.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np

from streamer.errors import StreamerError
from streamer.identify.gallery import largest_face_in
from streamer.identify.names import check_person_name, name_problem
from streamer.store.database import Database
from streamer.store.gallery import GalleryStore
from streamer.store.review import ReviewFilter, ReviewReader, SightingSearch, unknown_groups
from streamer.web.uploads import UploadRefused, decode_photo

log = logging.getLogger(__name__)

API = "/api/console/"
PAGE_ROWS = 50


@dataclass(frozen=True)
class ConsoleRequest:
    method: str  # GET | POST | DELETE
    parts: tuple[str, ...]  # the path below /api/console/, split at "/" and each part unquoted
    query: dict[str, str]
    body: bytes = b""
    content_type: str = ""
    operator: str = ""  # who the console's user said they are (X-Operator): claimed, not authenticated
    client: str = ""  # the client's address
    filename: str = ""  # an upload's file name (X-Filename), for its message only


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, value) -> Reply:
        return cls(status, json.dumps(value).encode())

    @classmethod
    def error(cls, status: int, message: str) -> Reply:
        return cls.json(status, {"error": message})


class _Models:
    """The detector and embedder for uploaded photos: the run's configuration, this console's own instances
    (the run's are busy on its threads), built on first use and used one request at a time."""

    def __init__(self, build: Callable[[], tuple]):
        self._build, self._models, self.lock = build, None, threading.Lock()

    def __enter__(self):
        self.lock.acquire()
        try:
            if self._models is None:
                self._models = self._build()
        except BaseException:
            self.lock.release()
            raise
        return self._models

    def __exit__(self, *exc) -> None:
        self.lock.release()


class _Slots:
    """A bounded semaphore whose ``take()`` waits a while and says whether it got a slot."""

    def __init__(self, count: int, wait_s: float = 10.0):
        self._semaphore, self.wait_s = threading.BoundedSemaphore(count), wait_s

    @contextlib.contextmanager
    def take(self) -> Iterator[bool]:
        got = self._semaphore.acquire(timeout=self.wait_s)
        try:
            yield got
        finally:
            if got:
                self._semaphore.release()


class Console:
    def __init__(self, db: Database, model_id: str | None, crop_size: int, build_models: Callable[[], tuple],
                 max_upload_bytes: int, on_change: Callable[[], None] = lambda: None, threshold: float | None = None):
        """``db``: the store, opened for this console (used from the server's threads one at a time);
        ``model_id``: the embedder whose sighting embeddings the search compares (None: the console's own
        embedder's, known once it is built: a cluster's driver runs no embedder of its own);
        ``on_change``: called after each gallery change (the run reads it at once rather than within a second);
        ``threshold``: the run's naming threshold, which groups unknown faces that look alike (None: the
        console's embedder's default)."""
        self._threshold = threshold
        self.db, self.crop_size, self.max_upload_bytes = db, crop_size, max_upload_bytes
        self.on_change = on_change
        self._db_lock = threading.Lock()
        self.reader = ReviewReader(db)
        self._search_index = SightingSearch(self.reader, model_id) if model_id else None
        self.models = _Models(build_models)
        self.upload_slots = _Slots(2)  # photos read and decoded at once (up to web.max_upload_mb and 40 MP each)
        self.csrf_token = secrets.token_urlsafe(32)  # in the console page; required on every change
        self.search_ready = threading.Event()
        # Every stored embedding read into memory now, not at the first search (seconds over 100,000 sightings).
        threading.Thread(target=self._warm_search, name="console-search-warm-up", daemon=True).start()

    def _warm_search(self) -> None:
        """In chunks, so the review list is answered between them."""
        try:
            index = self.search_index()
            while True:
                with self._db_lock:
                    if not index.refresh(chunk=10_000):
                        break
        except Exception:  # the store away, closed: the first search reads them
            log.debug("console: the search's warm-up failed", exc_info=True)
        finally:
            self.search_ready.set()

    def search_index(self) -> SightingSearch:
        if self._search_index is None:
            with self.models as (_, embedder):
                if self._search_index is None:
                    self._search_index = SightingSearch(self.reader, embedder.model_id)
        return self._search_index

    def close(self) -> None:
        with self._db_lock:
            self.db.close()

    # --- routing ---------------------------------------------------------------------------

    def handle(self, request: ConsoleRequest) -> Reply:
        parts = request.parts
        key = (request.method, parts[0], len(parts))
        try:
            route = _ROUTES.get(key)
            if route is None:
                allowed = sorted({k[0] for k in _ROUTES if k[1:] == key[1:]})
                reply = Reply.error(405 if allowed else 404, f"no such console API: {request.method} {API}"
                                    f"{'/'.join(parts)}")
                return Reply(reply.status, reply.body, headers={"Allow": ", ".join(allowed)} if allowed else {})
            reply = route(self, request, *parts[1:])
            if request.method != "GET" and reply.status < 300 and key[1] != "search":
                self.on_change()
            return reply
        except UploadRefused as exc:
            return Reply.error(exc.status, f"{request.filename or 'upload'}: {exc}")
        except (StreamerError, ValueError) as exc:
            return Reply.error(_status_of(exc), str(exc))

    # --- reads -----------------------------------------------------------------------------

    def _sightings(self, request: ConsoleRequest) -> Reply:
        f = _review_filter(request.query)
        with self._db_lock:
            items = self.reader.sightings(f)
        more = len(items) == f.limit
        return Reply.json(200, {"items": [i.to_json() for i in items],
                                "next": f"{items[-1].time!r}:{items[-1].id}" if more else None})

    def _sighting(self, request: ConsoleRequest, sighting: str, picture: str | None = None) -> Reply:
        number = _number(sighting, "sighting")
        if picture is None:
            with self._db_lock:
                item = self.reader.sighting(number)
            return Reply.error(404, f"no sighting {number}") if item is None else Reply.json(200, item.to_json())
        if picture not in ("face.jpg", "synthetic.jpg"):
            return Reply.error(404, f"no such picture: {picture}")
        with self._db_lock:
            data = self.reader.picture(number, synthetic=picture == "synthetic.jpg")
        return Reply.error(404, f"sighting {number} has no {picture}") if data is None else Reply(200, data,
                                                                                                   "image/jpeg")

    def _streams(self, request: ConsoleRequest) -> Reply:
        with self._db_lock:
            return Reply.json(200, self.reader.streams())

    def _identities(self, request: ConsoleRequest) -> Reply:
        """Every identity, and the unknown faces grouped (those that look alike, and the person closest)."""
        index = self.search_index()
        if self._threshold is None:
            with self.models as (_, embedder):
                self._threshold = embedder.default_threshold
        with self._db_lock:
            identities = self.reader.identities()
            faces = self.reader.face_vectors(index.model_id)
        groups = unknown_groups(faces, self._threshold)  # outside the lock: the review list is answered meanwhile
        return Reply.json(200, {"identities": identities, "unknown_groups": groups, "threshold": self._threshold})

    def _face(self, request: ConsoleRequest, picture: str) -> Reply:
        crop = _number(picture.removesuffix(".jpg"), "face")
        with self._db_lock:
            data = self.reader.face(crop)
        return Reply.error(404, f"no face {crop}") if data is None else Reply(200, data, "image/jpeg")

    def _audit(self, request: ConsoleRequest) -> Reply:
        before = request.query.get("before")
        with self._db_lock:
            rows = GalleryStore(self.db).audit_log(100, _number(before, "before") if before else None,
                                                   people_only=request.query.get("all") != "1")
        return Reply.json(200, rows)

    # --- changes (each audited) --------------------------------------------------------------

    def _gallery(self, request: ConsoleRequest) -> GalleryStore:
        operator = request.operator.strip()
        if not operator or name_problem(operator):
            operator = "(no name given)"
        return GalleryStore(self.db, actor=f"console {operator} from {request.client}")

    def _assign(self, request: ConsoleRequest, sighting: str, action: str) -> Reply:
        number = _number(sighting, "sighting")
        if action == "reject":
            with self._db_lock:
                name = self._gallery(request).reject(number)
            return Reply.json(200, {"sighting": number, "not": name})
        if action != "assign":
            return Reply.error(404, f"no such action on a sighting: {action} (assign, reject)")
        name = _person_name(_body_json(request).get("name"))
        with self._db_lock:
            outcome = self._gallery(request).assign(number, name)
        return Reply.json(200, {"sighting": number, "name": name, "outcome": outcome})

    def _enrol(self, request: ConsoleRequest, name: str, what: str) -> Reply:
        if what != "faces":
            return Reply.error(404, f"no such action on an identity: {what}")
        name = _person_name(name)
        data = self._upload(request)
        crop, vector, model_id = self._face_of(data)
        # The photo's own hash, not its file name: the same photo uploaded again is found, whatever it is called.
        source = f"upload {hashlib.sha256(data).hexdigest()[:24]}"
        with self._db_lock:
            _, crop_id = self._gallery(request).enroll_face(name, crop, source, model_id, vector)
        if crop_id is None:
            return Reply.json(200, {"name": name, "enrolled": False, "face": None,
                                    "message": f"{_printable(request.filename)}: already enrolled for {name}"})
        return Reply.json(201, {"name": name, "enrolled": True, "face": crop_id,
                                "message": f"{_printable(request.filename)}: enrolled for {name}"})

    def _rename(self, request: ConsoleRequest, name: str, what: str) -> Reply:
        if what != "rename":
            return Reply.error(404, f"no such action on an identity: {what}")
        new_name = _person_name(_body_json(request).get("name"))
        with self._db_lock:
            outcome = self._gallery(request).rename(name, new_name)
        return Reply.json(200, {"name": name, "new_name": new_name, "outcome": outcome})

    def _remove(self, request: ConsoleRequest, name: str) -> Reply:
        with self._db_lock:
            counts = self._gallery(request).erase(name)
        return Reply.json(200, {"erased": name, **counts})

    def _search(self, request: ConsoleRequest) -> Reply:
        """By an uploaded photo (POST) or by a sighting's face (GET ?sighting=N). Reads only."""
        track = None
        if request.method == "GET":
            sighting = _number(request.query.get("sighting", ""), "sighting")
            with self._db_lock:
                found, item = self.reader.embedding(sighting), self.reader.sighting(sighting)
            if found is None or item is None:
                return Reply.error(404, f"sighting {sighting} has no face to search with")
            model_id, vector = found
            track = item.track  # its own track's other sightings are not news
            index = self.search_index()
            if model_id != index.model_id:
                return Reply.error(409, f"sighting {sighting} was embedded by {model_id}; this run searches "
                                        f"{index.model_id}'s")
        else:
            _, vector, _ = self._face_of(self._upload(request))
        top = min(max(int(_number(request.query.get("top", "24"), "top")), 1), 200)
        index = self.search_index()
        with self._db_lock:
            index.refresh()
            hits = index.search(vector, top, exclude_track=track)
        return Reply.json(200, {"searched": len(index),
                                "hits": [{**h.item.to_json(), "similarity": round(h.score, 4)} for h in hits]})

    def _face_of(self, photo: bytes) -> tuple[np.ndarray, np.ndarray, str]:
        """(aligned crop, embedding, model id) of an uploaded photo's largest face, as the stream finds them."""
        image = decode_photo(photo)
        with self.models as (detector, embedder):
            crop = largest_face_in(image, detector, self.crop_size)
            if crop is None:
                raise UploadRefused("no usable face found in this photo", 422)
            return crop, embedder.embed(crop[None])[0], embedder.model_id

    def _upload(self, request: ConsoleRequest) -> bytes:
        if not request.body:
            raise UploadRefused("an empty upload: send the photo's bytes as the request body", 400)
        if len(request.body) > self.max_upload_bytes:
            raise UploadRefused(f"larger than {self.max_upload_bytes // 2**20} MiB (web.max_upload_mb)", 413)
        return request.body


def open_console(config, model_id: str | None, on_change: Callable[[], None] = lambda: None,
                 threshold: float | None = None) -> Console:
    """The console of a run configured by ``config`` (a Config) whose embedder is ``model_id``: the run's store,
    opened again for the server's threads; its own detector and embedder, built when a photo first comes
    (or at once, without ``model_id``)."""
    from streamer.identify import open_database

    def build_models() -> tuple:
        from streamer.detect import build_detector
        from streamer.embed import build_embedder

        device = config.engine.select_device()
        return build_detector(config.detector, device), build_embedder(config.embedder, device)

    db = open_database(config.store, config.output.dir, shared=True)
    return Console(db, model_id, config.pipeline.crop_size, build_models, int(config.web.max_upload_mb * 2**20),
                   on_change, threshold if threshold is not None else config.gallery.threshold)


def _review_filter(query: dict[str, str]) -> ReviewFilter:
    older_than = None
    if query.get("older_than"):
        at, _, row = query["older_than"].rpartition(":")
        older_than = (_real(at, "older_than"), _number(row, "older_than"))
    occluded = query.get("occluded")
    if occluded not in (None, "", "0", "1"):
        raise ValueError("occluded: 1 (occluded faces only) or 0 (clear faces only)")
    limit = _number(query.get("limit", str(PAGE_ROWS)), "limit")
    return ReviewFilter(stream=query.get("stream") or None, person=query.get("person") or None,
                        unknown=query.get("unknown") == "1",
                        occluded=None if occluded in (None, "") else occluded == "1",
                        after=_real(query["after"], "after") if query.get("after") else None,
                        before=_real(query["before"], "before") if query.get("before") else None,
                        older_than=older_than, limit=min(max(limit, 1), 500))


def _person_name(name) -> str:
    """The name as ``check_person_name`` accepts it; a refusal is the client's mistake (400)."""
    if not isinstance(name, str):
        raise ValueError("name: a person's name is required")
    try:
        return check_person_name(name, "name")
    except StreamerError as exc:
        raise ValueError(str(exc)) from None


def _number(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what}: not a number: {text[:40]!r}") from None


def _real(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{what}: not a time in epoch seconds: {text[:40]!r}")
    return value


def _body_json(request: ConsoleRequest) -> dict:
    if request.content_type != "application/json":
        raise ValueError("expected Content-Type: application/json")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


def _printable(filename: str) -> str:
    from streamer.identify.names import printable

    return printable(filename)[:80] or "unnamed"


def _status_of(exc: Exception) -> int:
    text = str(exc)
    if "no identity named" in text or text.startswith("gallery: no sighting"):
        return 404
    return 400 if isinstance(exc, ValueError) else 409


_ROUTES: dict[tuple[str, str, int], Callable[..., Reply]] = {
    ("GET", "sightings", 1): Console._sightings,
    ("GET", "sightings", 2): Console._sighting,
    ("GET", "sightings", 3): Console._sighting,
    ("POST", "sightings", 3): Console._assign,
    ("GET", "streams", 1): Console._streams,
    ("GET", "identities", 1): Console._identities,
    ("POST", "identities", 3): lambda c, r, name, what: (c._enrol if what == "faces" else c._rename)(r, name, what),
    ("DELETE", "identities", 2): Console._remove,
    ("GET", "faces", 2): Console._face,
    ("GET", "audit", 1): Console._audit,
    ("GET", "search", 1): Console._search,
    ("POST", "search", 1): Console._search,
}


def split_path(path: str) -> tuple[str, ...]:
    """The console path below API in parts, each unquoted after the split (a name may hold a "/", as %2F)."""
    return tuple(unquote(part) for part in path[len(API):].split("/"))
