"""Who a face is: the gallery (in the store), quality-gated per-track decisions, pseudo-identities."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from streamer.config_base import StrictModel
from streamer.errors import StreamerError
from streamer.identify.calibration import measured_tail
from streamer.identify.frame import FrameSetting, frame_setting
from streamer.identify.gallery import GalleryConfig, GalleryIndex, enroll, photos_by_name, reconstruction_classes
from streamer.identify.sync import GallerySync
from streamer.identify.track_identity import IdentityConfig, IdentityResolver
from streamer.redaction import redact, register_secret
from streamer.store.database import Database, connect
from streamer.store.gallery import GalleryStore
from streamer.store.runs import RunRegistry
from streamer.store.sightings import SightingStore

log = logging.getLogger(__name__)


class StoreConfig(StrictModel):
    path: Path | None = Field(
        None, description="SQLite file holding gallery, tracks and sightings (default OUTPUT_DIR/streamer.db); "
        "give one path to every run for a gallery that lasts"
    )
    url: str | None = Field(
        None, description="a PostgreSQL server's database in place of the SQLite file, for one gallery and one "
        "store across machines: postgresql://USER:PASSWORD@HOST:PORT/DB (or the password in PGPASSWORD or "
        "~/.pgpass); needs pip install 'streamer[postgres]'"
    )
    retention_days: float | None = Field(
        30, gt=0, description="sightings, ended tracks and unseen pseudo-identities older than this are deleted"
    )
    buffer_events: int = Field(
        10000, ge=0, le=1_000_000, description="events kept in memory while a PostgreSQL store cannot be reached "
        "(a restart, a failover), written when it answers again; beyond this many the run stops rather than "
        "lose them"
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"must be a postgresql:// URL, got {redact(url)[:80]}")
        from urllib.parse import parse_qs, urlsplit

        try:
            parts = urlsplit(url)
            register_secret(parts.password)
            for secret in parse_qs(parts.query).get("password", []):  # libpq also takes ?password=
                register_secret(secret)
        except ValueError:
            raise ValueError("is not a valid URL") from None
        return url

    @model_validator(mode="after")
    def _one_store(self):
        if self.url is not None and self.path is not None:
            raise ValueError("store.path and store.url: give one (a SQLite file, or a PostgreSQL database)")
        return self


def store_path(store: StoreConfig, output_dir: Path) -> Path:
    return store.path if store.path is not None else output_dir / "streamer.db"


def open_database(store: StoreConfig, output_dir: Path, shared: bool = False) -> Database:
    """The configured store: the PostgreSQL database of ``store.url``, else the SQLite file. ``shared``: used
    from several threads, one at a time."""
    if store.url is not None:
        from streamer.store.postgres import PostgresDatabase

        return PostgresDatabase(store.url)
    return connect(store_path(store, output_dir), shared=shared)


@dataclass
class Identification:
    """The store a run writes to and the resolver that names its tracks: opened by a run, never by
    building the models (``streamer doctor`` must not change a production store)."""

    conn: Database
    resolver: IdentityResolver
    path: Path | str  # the SQLite file, or the PostgreSQL database's location (without its password)
    sync: GallerySync

    def describe(self) -> str:
        index, resolver = self.resolver.index, self.resolver
        rate = resolver.gallery.false_accept_rate
        fixed = index.fixed_threshold(resolver.base_threshold)
        held = f", {resolver.threshold():.3f} now to hold {rate:.1%} false accepts" \
            if rate and resolver.threshold() > fixed else ""
        where = f" in the gallery's frame (a plain cosine's {resolver.base_threshold})" \
            if index.frame() is not None else ""
        return (f"gallery:   {index.people} people, {len(index) - index.people} pseudo-identities, "
                f"threshold {fixed:.3f}{where}{held} ({self.path})")

    def close(self) -> None:
        self.sync.close()
        self.conn.close()

    def __enter__(self) -> Identification:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Across photos, dlib's same-person cosines run 0.90-0.97 and ArcFace's 0.4-0.8 (make eval-identity): a threshold
# this high names almost nobody, whatever the embedder.
NAMES_ALMOST_NOBODY = 0.98


def open_identification(config, detector, embedder) -> Identification:
    """Opens the store, enrols ``gallery.dir`` (new photos only), prunes by retention, and loads the
    gallery as the configured embedder sees it."""
    conn = open_database(config.store, config.output.dir)
    path = conn.path if config.store.url is None else conn.where
    try:
        store = GalleryStore(conn, actor=f"run pid {os.getpid()} on {socket.gethostname()}")
        if config.gallery.dir is not None:
            _enroll_folder(store, config, detector, embedder)
        # Tracks that runs killed before they could end them are ended now, so retention can treat them.
        ended = RunRegistry(conn).close_dead()
        if ended:
            log.warning("store: %d tracks left open by runs that were killed are now ended", ended)
        if config.store.retention_days:
            pruned = SightingStore(conn).prune(config.store.retention_days)
            if any(pruned.values()):
                log.warning("store: retention %g days: deleted %s", config.store.retention_days,
                            ", ".join(f"{n} {k}" for k, n in pruned.items()))
        since = store.last_change()  # before the load: a change made during it is read again, never missed
        student = embedder.student is not None
        index = GalleryIndex.load(store, embedder.model_id, str(path), measured_tail(embedder.model_id, student),
                                  gallery_frame(config, embedder))
        sync = GallerySync(store, index, since, conn.listener())
    except BaseException:
        conn.close()
        raise
    threshold = config.gallery.threshold if config.gallery.threshold is not None else embedder.default_threshold
    resolver = IdentityResolver(index, config.gallery, config.identity, threshold, store,
                                seen_path="visible" if embedder.student is None else "student",
                                reconstruction_for=reconstruction_classes(config.gallery.reconstruction_for,
                                                                          config.embedder.backend,
                                                                          embedder.student is not None))
    held = resolver.threshold()
    if index.frame() is None and held >= NAMES_ALMOST_NOBODY and held > threshold:  # raised by the calibration
        log.warning("gallery: to hold gallery.false_accept_rate %g over %d identities, %s needs a cosine of %.3f, "
                    "which photos of the same person seldom reach: almost nobody will be named (an ArcFace embedder, "
                    "a smaller gallery or a higher false_accept_rate would)", config.gallery.false_accept_rate,
                    len(index), embedder.description, held)
    return Identification(conn, resolver, path, sync)


def gallery_frame(config, embedder) -> FrameSetting | None:
    """``gallery.frame`` as it applies to the configured embedder (identify/frame.py)."""
    return frame_setting(config.gallery.frame, config.embedder.backend, embedder.model_id,
                         embedder.student is not None, config.gallery.plain_thresholds)


def _enroll_folder(store: GalleryStore, config, detector, embedder) -> None:
    faceless_people = []
    for name, photos in photos_by_name(config.gallery.dir).items():
        added, faceless = enroll(store, name, photos, detector, embedder, config.pipeline.crop_size)
        if faceless and len(faceless) == len(photos) and store.identity_id(name) is None:
            faceless_people.append(name)
            log.warning("gallery: no face found for %r in %s", name, config.gallery.dir)
    if faceless_people and not store.list():
        raise StreamerError(f"gallery.dir: no face could be enrolled from {config.gallery.dir}")


__all__ = ["GalleryConfig", "Identification", "IdentityConfig", "StoreConfig", "open_database", "open_identification",
           "store_path"]
