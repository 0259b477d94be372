"""``streamer gallery``: enrol, list, name, reject, remove, export and re-embed the store's identities."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import cv2
import numpy as np

from streamer.errors import ConfigError, StreamerError


def _config(args):
    from streamer.config import load_config, parse_config

    if args.config:
        return load_config(args.config)
    return parse_config({})


def _open(args):
    from streamer.identify import store_path
    from streamer.store.database import connect
    from streamer.store.gallery import GalleryStore

    config = _config(args)
    path = Path(args.db) if args.db else store_path(config.store, config.output.dir)
    if args.action != "enroll" and not path.exists():
        raise ConfigError(f"store not found: {path} (give --db, or a --config whose store.path is set)")
    return config, path, GalleryStore(connect(path))


def _models(config):
    from engines import select_device
    from streamer.detect import build_detector
    from streamer.embed import build_embedder

    device = select_device(config.engine.device)
    return build_detector(config.detector, device), build_embedder(config.embedder, device)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def cmd_gallery(args) -> int:
    config, path, store = _open(args)
    try:
        return _ACTIONS[args.action](args, config, path, store)
    finally:
        store.conn.close()


def _enroll(args, config, path, store) -> int:
    from streamer.identify.gallery import IMAGE_SUFFIXES, enroll

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
        print(f"  no face found in {photo}")
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
        print(f"  {row.name:<24} {row.kind:<6} {row.crops} faces{rejected}; last seen {_when(row.last_seen)}; {models}")
    return 0


def _remove(args, config, path, store) -> int:
    counts = store.erase(args.name)
    print(f"erased {args.name}: identity, {counts['crops']} faces with their embeddings, {counts['tracks']} tracks, "
          f"{counts['sightings']} sightings (files already written elsewhere, such as events.jsonl, are not touched)")
    return 0


def _name(args, config, path, store) -> int:
    outcome = store.rename(args.name, args.new_name)
    print(f"{args.name} {outcome} {'into' if outcome == 'merged' else 'to'} {args.new_name}")
    return 0


def _reject(args, config, path, store) -> int:
    name = store.reject(args.sighting)
    print(f"sighting {args.sighting}: not {name}; the face is kept as a negative of {name}")
    return 0


def _export(args, config, path, store) -> int:
    out = Path(args.out)
    kinds = {r.name: r.kind for r in store.list()}
    names = [args.name] if args.name else list(kinds)
    manifest = []
    for name in names:
        identity = store.require(name)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        faces = []
        for crop_id, polarity, source, image in store.faces(identity):
            file = folder / f"{crop_id}{'' if polarity > 0 else '-rejected'}.jpg"
            cv2.imwrite(str(file), image)
            vectors = {m: v.tolist() for m, v in _embeddings_of(store, crop_id).items()}
            faces.append({"file": file.name, "polarity": polarity, "source": source, "embeddings": vectors})
        manifest.append({"name": name, "kind": kinds[name], "faces": faces})
    (out / "gallery.json").write_text(json.dumps(manifest, indent=1))
    print(f"exported {len(manifest)} identities to {out} (gallery.json + face crops)")
    return 0


def _embeddings_of(store, crop_id: int) -> dict[str, np.ndarray]:
    from streamer.store.gallery import decode_vector

    return {m: decode_vector(v) for m, v in store.conn.execute(
        "SELECT model_id, vector FROM embeddings WHERE crop_id = ?", (crop_id,))}


def _reembed(args, config, path, store) -> int:
    _, embedder = _models(config)
    missing = store.missing_embeddings(embedder.model_id)
    batch = 64
    for start in range(0, len(missing), batch):
        chunk = missing[start : start + batch]
        vectors = embedder.embed(np.stack([image for _, image in chunk]))
        store.add_embeddings(embedder.model_id, [(crop_id, v) for (crop_id, _), v in zip(chunk, vectors)])
        print(f"  {min(start + batch, len(missing))}/{len(missing)} faces", flush=True)
    dropped = store.drop_other_models(embedder.model_id) if args.drop_old else 0
    print(f"re-embedded {len(missing)} faces with {embedder.model_id}"
          + (f"; {dropped} embeddings of other models deleted" if args.drop_old else ""))
    return 0


_ACTIONS = {"enroll": _enroll, "list": _list, "remove": _remove, "name": _name, "reject": _reject,
            "export": _export, "reembed": _reembed}


def add_parser(sub) -> None:
    p = sub.add_parser("gallery", help="the store's identities: enroll, list, name, reject, remove, export, reembed")
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
    q = action("reembed", "embed every stored face with the configured embedder (migrate to a new model)")
    q.add_argument("--drop-old", action="store_true", help="then delete the other models' embeddings")
