"""Gallery search at scale: 100,000 identities in the SQLite store (and in PostgreSQL with --postgres), loaded
and searched as a run does.

    .venv/bin/python benchmarks/gallery_search.py [--identities 100000] [--dim 128 512] [--postgres URL]

Measures: writing the identities (one transaction), loading one model's vectors into the index,
and the decision's search (every identity's best cosine for a track's visible and reconstructed
aggregate) for 1 probe and for a batch of 32, p50/p95 over repeated queries; that the right identity is
found (each probe a noisy copy of a stored vector); and how long a person enrolled by another connection
(another machine) takes to be found by this run's index, which then holds every identity (the sync: the
change log read, the person's rows loaded, the search matrix rebuilt). With --postgres URL (an empty
database) the same rows go to PostgreSQL too, in the same run.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from streamer.identify.gallery import GalleryIndex
from streamer.identify.sync import GallerySync
from streamer.store.database import connect, transaction
from streamer.store.gallery import GalleryStore


def open_store(kind: str, dim: int, folder: Path, postgres: str | None):
    """A new store and a second connection to it (another machine's)."""
    if kind == "sqlite":
        path = folder / f"gallery-{dim}.db"
        return connect(path), connect(path), lambda: sum(p.stat().st_size for p in folder.glob(f"{path.name}*")) / 1e6
    from streamer.store.postgres import PostgresDatabase

    db = PostgresDatabase(postgres)
    for table in ("gallery_changes", "sightings", "tracks", "embeddings", "crops", "identities", "runs"):
        db.execute(f"DELETE FROM {table}")
    return db, PostgresDatabase(postgres), lambda: db.execute("SELECT pg_database_size(current_database())"
                                                               ).fetchone()[0] / 1e6


def sync_latency(store: GalleryStore, other, index: GalleryIndex, dim: int, listener) -> float:
    """Seconds from another connection's enrolment commit to this index finding the person."""
    sync = GallerySync(store, index, store.last_change(), listener, every_s=1.0)
    time.sleep(0.5)  # the listener connects
    vector = np.zeros(dim, np.float32)
    vector[0] = 1.0
    crop = np.zeros((112, 112, 3), np.uint8)
    GalleryStore(other).enroll_face("newcomer", crop, "newcomer.jpg", "bench-model", vector)
    committed = time.perf_counter()
    while index.best(vector).name != "newcomer":
        sync.poll()
        time.sleep(0.002)
    took = time.perf_counter() - committed
    sync.close()
    return took


def run(identities: int, dim: int, folder: Path, kind: str = "sqlite", postgres: str | None = None) -> dict:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(identities, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    crop = rng.integers(0, 255, (112, 112, 3), np.uint8)
    db, other, size = open_store(kind, dim, folder, postgres)
    store = GalleryStore(db)
    started = time.perf_counter()
    with transaction(store.conn):
        for i in range(identities):
            identity = store._insert_identity(f"person-{i:06d}", "person", 0.0)
            store._insert_face(identity, crop, "bench", 1, "bench-model", vectors[i], 0.0)
    write_s = time.perf_counter() - started
    started = time.perf_counter()
    index = GalleryIndex.load(store, "bench-model", "bench")
    index.scores(vectors[:1])  # builds the search matrix
    load_s = time.perf_counter() - started
    truth = rng.integers(0, identities, 32)
    probes = vectors[truth] + rng.normal(scale=0.04, size=(32, dim)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    single, batch = [], []
    for i in range(50):
        t = time.perf_counter()
        best = index.best(probes[i % 32])
        single.append(time.perf_counter() - t)
        t = time.perf_counter()
        ids, scores = index.scores(probes)
        batch.append(time.perf_counter() - t)
    found = np.mean([index.names[int(i)] == f"person-{t:06d}" for i, t in zip(ids[scores.argmax(axis=1)], truth)])
    size_mb = size()
    synced_s = sync_latency(store, other, index, dim, db.listener())
    db.close()
    other.close()
    return {"store": kind, "identities": identities, "dim": dim, "write_s": write_s, "load_s": load_s,
            "db_mb": size_mb, "single_ms": np.percentile(single, [50, 95]) * 1000,
            "batch32_ms": np.percentile(batch, [50, 95]) * 1000, "found": found, "best_score": best.score,
            "sync_s": synced_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=100_000)
    parser.add_argument("--dim", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--postgres", metavar="URL", help="also in this (empty) PostgreSQL database")
    args = parser.parse_args()
    stores = ["sqlite"] + (["postgres"] if args.postgres else [])
    with tempfile.TemporaryDirectory() as tmp:
        print("| store | identities | dim | write (1 txn) | db size | load index | search 1 probe p50/p95 | "
              "search 32 probes p50/p95 | right identity | another machine's enrolment found |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for dim in args.dim:
            for kind in stores:
                r = run(args.identities, dim, Path(tmp), kind, args.postgres)
                print(f"| {kind} | {r['identities']:,} | {dim} | {r['write_s']:.1f} s | {r['db_mb']:.0f} MB | "
                      f"{r['load_s']:.2f} s | {r['single_ms'][0]:.1f} / {r['single_ms'][1]:.1f} ms | "
                      f"{r['batch32_ms'][0]:.1f} / {r['batch32_ms'][1]:.1f} ms | {r['found']:.0%} | "
                      f"{r['sync_s'] * 1000:.0f} ms |", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
