"""``streamer gallery``: enrol, list, name, reject, remove, export and re-embed the store's identities."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
from pathlib import Path

from streamer.errors import ConfigError, StreamerError
from streamer.store.database import StoreUnavailable


def _config(args):
    from streamer.config import load_config, parse_config

    if args.config:
        return load_config(args.config)
    return parse_config({})


def _open(args):
    from streamer.identify import open_database, store_path
    from streamer.store.database import connect
    from streamer.store.gallery import GalleryStore

    config = _config(args)
    if config.store.url is not None and not args.db:
        database = open_database(config.store, config.output.dir)
        return config, database.where, GalleryStore(database)
    path = Path(args.db) if args.db else store_path(config.store, config.output.dir)
    if args.action != "enroll" and not path.exists():
        raise ConfigError(f"store not found: {path} (give --db, or a --config whose store.path or store.url is set)")
    return config, path, GalleryStore(connect(path))


def _models(config):
    from streamer.detect import build_detector
    from streamer.embed import build_embedder

    device = config.engine.select_device()
    return build_detector(config.detector, device), build_embedder(config.embedder, device)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _display(name: str) -> str:
    """A stored name as output shows it: as is when it is a valid name, escaped and cut short when not
    (a store written before names were checked may hold newlines or terminal escapes)."""
    from streamer.identify.names import name_problem, shown

    return name if name_problem(name) is None else shown(name)


def _check_args(args) -> None:
    """Refuses bad input before the store is opened (or created) and models are loaded."""
    from streamer.identify.names import check_person_name

    if args.action == "enroll":
        check_person_name(args.name, "gallery enroll")
    elif args.action == "name":
        check_person_name(args.new_name, "gallery name")
    elif args.action == "export":
        _check_out(Path(args.out))


def cmd_gallery(args) -> int:
    _check_args(args)
    config, path, store = _open(args)
    try:
        return _ACTIONS[args.action](args, config, path, store)
    except sqlite3.OperationalError as exc:  # locked by another writer past the timeout, disk full, read-only
        raise StreamerError(f"store {path}: {exc}") from None
    except StoreUnavailable as exc:
        raise StreamerError(str(exc)) from None
    finally:
        store.conn.close()


def _enroll(args, config, path, store) -> int:
    from streamer.identify.gallery import IMAGE_SUFFIXES, enroll
    from streamer.identify.names import printable

    photos: list[Path] = []
    for item in map(Path, args.images):
        if item.is_dir():
            photos += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            photos.append(item)
        else:
            raise ConfigError(f"gallery enroll: not found: {item}")
    if not photos:
        raise ConfigError(f"gallery enroll: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {' '.join(args.images)}")
    detector, embedder = _models(config)
    added, faceless = enroll(store, args.name, photos, detector, embedder, config.pipeline.crop_size,
                             progress=lambda line: print(f"  {line}", flush=True))
    for photo in faceless:
        print(f"  no face found in {printable(str(photo))}")
    skipped = len(photos) - added - len(faceless)
    print(f"{args.name}: {added} faces enrolled with {embedder.model_id}"
          + (f", {skipped} already enrolled" if skipped else "") + f" ({path})")
    if added == 0 and faceless and not skipped:
        raise StreamerError(f"gallery enroll: no face found in any of the {len(faceless)} images for {args.name!r}")
    return 0


def _list(args, config, path, store) -> int:
    rows = store.list()
    print(f"{path}: {sum(r.kind == 'person' for r in rows)} people, "
          f"{sum(r.kind == 'pseudo' for r in rows)} pseudo-identities")
    for row in rows:
        models = ", ".join(f"{m} x{n}" for m, n in row.models.items()) or "no embeddings"
        rejected = f", {row.rejected} rejected" if row.rejected else ""
        print(f"  {_display(row.name):<24} {row.kind:<6} {row.crops} faces{rejected}; "
              f"last seen {_when(row.last_seen)}; {models}")
    return 0


def _remove(args, config, path, store) -> int:
    counts = store.erase(args.name)
    print(f"erased {_display(args.name)}: identity, {counts['crops']} faces with their embeddings, "
          f"{counts['tracks']} tracks, {counts['sightings']} sightings "
          "(files already written elsewhere, such as events.jsonl, are not touched)")
    return 0


def _name(args, config, path, store) -> int:
    outcome = store.rename(args.name, args.new_name)
    if outcome == "kept":
        print(f"{_display(args.name)}: already named {args.new_name}")
    else:
        print(f"{_display(args.name)} {outcome} {'into' if outcome == 'merged' else 'to'} {args.new_name}")
    return 0


def _reject(args, config, path, store) -> int:
    name = _display(store.reject(args.sighting))
    print(f"sighting {args.sighting}: not {name}; the face is kept as a negative of {name}")
    return 0


def _audit(args, config, path, store) -> int:
    from streamer.identify.names import printable

    rows = store.audit_log(max(1, args.limit))
    print(f"{path}: the newest {len(rows)} gallery changes")
    for row in rows:
        detail = ", ".join(f"{k}={v}" for k, v in row["detail"].items())
        print(f"  {_when(row['time'])}  {printable(row['actor'])}: {row['action']} {printable(row['subject'])}"
              + (f" ({printable(detail)})" if detail else ""))
    return 0


def _check_out(out: Path) -> None:
    """Export writes into a new or empty folder only: never over a previous export's gallery.json, never
    mixing its crops with older ones."""
    if out.exists() and not out.is_dir():
        raise StreamerError(f"gallery export: --out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise StreamerError(f"gallery export: --out {out} is not empty; give a new or empty folder")


def _export(args, config, path, store) -> int:
    """Writes each identity's faces to ``OUT/<id>[-<slug>]/`` and, last, ``gallery.json`` listing every
    identity (its name as data, with its folder), so a complete gallery.json means a complete export.
    A name is never a path: stores written before names were checked may hold ``../x`` or 5,000
    characters."""
    out = Path(args.out)
    identities = [r for r in store.list() if r.name == args.name] if args.name else store.list()
    if args.name and not identities:
        store.require(args.name)  # the one-line "no identity named" error
    try:
        out.mkdir(parents=True, exist_ok=True)
        manifest = [_export_identity(store, row, out) for row in identities]
        _write_atomically(out / "gallery.json", json.dumps(manifest, indent=1))
    except OSError as exc:  # disk full, no permission: the export is incomplete (no gallery.json)
        raise StreamerError(f"gallery export: cannot write into {out}: {exc}") from None
    faces = sum(len(item["faces"]) for item in manifest)
    print(f"exported {len(manifest)} identities ({faces} faces) to {out}: gallery.json and one folder per identity")
    return 0


def _export_identity(store, row, out: Path) -> dict:
    """One identity's crops (copied as stored) into its own folder; its gallery.json entry."""
    from streamer.identify.names import slug

    folder_name = f"{row.id}-{slug(row.name)}" if slug(row.name) else str(row.id)
    folder = out / folder_name
    folder.mkdir()
    faces = []
    for crop_id, polarity, source, jpeg in store.face_files(row.id):
        file = folder / f"{crop_id}{'' if polarity > 0 else '-rejected'}.jpg"
        file.write_bytes(jpeg)
        vectors = {m: v.tolist() for m, v in store.embeddings_of(crop_id).items()}
        faces.append({"file": file.name, "polarity": polarity, "source": source, "embeddings": vectors})
    return {"id": row.id, "name": row.name, "kind": row.kind, "folder": folder_name, "faces": faces}


def _write_atomically(path: Path, text: str) -> None:
    """``path`` appears whole or not at all: written to a temporary file beside it, then renamed."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)


def _reembed(args, config, path, store) -> int:
    from streamer.identify.gallery import embed_missing

    _, embedder = _models(config)
    done = embed_missing(store, embedder, lambda line: print(f"  {line}", flush=True))
    dropped = store.drop_other_models(embedder.model_id) if args.drop_old else 0
    print(f"re-embedded {done} faces with {embedder.model_id}"
          + (f"; {dropped} embeddings of other models deleted" if args.drop_old else ""))
    return 0


_ACTIONS = {"enroll": _enroll, "list": _list, "remove": _remove, "name": _name, "reject": _reject,
            "export": _export, "reembed": _reembed, "audit": _audit}


def add_parser(sub) -> None:
    p = sub.add_parser("gallery", help="the store's identities: enroll, list, name, reject, remove, export, "
                       "reembed, audit")
    gallery_sub = p.add_subparsers(dest="action", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        q = gallery_sub.add_parser(name, help=help)
        q.add_argument("--config", help="pipeline config: its detector, embedder and store.path (default: defaults)")
        q.add_argument("--db", help="store file (overrides the config's store.path)")
        q.set_defaults(func=cmd_gallery)
        return q

    q = action("enroll", "add a person's faces, found and embedded as the stream does")
    q.add_argument("name")
    q.add_argument("images", nargs="+", help="image files or folders of images")
    action("list", "people and pseudo-identities, with their faces and embedding models")
    q = action("remove", "erase a person: identity, faces, embeddings, tracks and sightings")
    q.add_argument("name")
    q = action("name", "name a pseudo-identity (naming it after a person merges them)")
    q.add_argument("name", help="e.g. unknown-00042")
    q.add_argument("new_name")
    q = action("reject", "'not this person': the sighting's face no longer names its identity")
    q.add_argument("sighting", type=int, help="the event's 'sighting' number")
    q = action("export", "write faces, embeddings and a gallery.json")
    q.add_argument("name", nargs="?", help="one identity (default: all)")
    q.add_argument("--out", required=True)
    q = action("audit", "every change to the gallery, newest first: who (console operator, command, run), when, what")
    q.add_argument("--limit", type=int, default=50, help="how many changes (default 50)")
    q = action("reembed", "embed every stored face with the configured embedder (migrate to a new model)")
    q.add_argument("--drop-old", action="store_true", help="then delete the other models' embeddings")
