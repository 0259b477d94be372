"""What the console's decisions leave in the store (SQLite): "this is" and "not" taking each other back, the run's
faces of a rejected track gone, the audit log, the search over sightings; and a console without a token that reads
but changes nothing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np

from streamer.records import Decision, EventKind, TrackEvent
from streamer.store.database import connect
from streamer.store.gallery import GalleryStore
from streamer.store.review import ReviewFilter, ReviewReader, SightingSearch, unknown_groups
from streamer.store.sightings import SightingStore
from tests.conftest import noise_crop, unit_vector

MODEL = "test-model"


_unit, _crop = unit_vector, noise_crop


def _seen(db, track: int, identity: int | None, name: str | None, seed: int, stream: str = "cam",
          pseudo: bool = False, when: float = 1000.0) -> int:
    """A run's identity event of a track: its sighting id."""
    decision = Decision(identity, name, pseudo, 0.9, "visible", 0.9, None, 0.5, ())
    event = TrackEvent(EventKind.IDENTITY, stream, track, when + track, decision=decision, crop=_crop(seed),
                       embedding=_unit(seed), model_id=MODEL)
    return SightingStore(db, "run-1").record([event])[0].id


def _faces(db, name: str) -> list[tuple[int, str]]:
    return db.execute("SELECT c.polarity, c.source FROM crops c JOIN identities i ON i.id = c.identity_id "
                      "WHERE i.name = ? ORDER BY c.id", (name,)).fetchall()


def test_this_is_and_not_take_each_other_back_and_are_audited(tmp_path):
    db = connect(tmp_path / "streamer.db")
    gallery = GalleryStore(db, actor="console alice from 10.0.0.5")
    bob, _ = gallery.enroll_face("bob", _crop(1), "bob.jpg", MODEL, _unit(1))
    sighting = _seen(db, 1, bob, "bob", seed=2)

    assert gallery.assign(sighting, "carol") == "assigned"  # not bob: carol
    assert _faces(db, "bob") == [(1, "bob.jpg"), (-1, f"rejected sighting {sighting}")]
    assert _faces(db, "carol") == [(1, f"assigned sighting {sighting}")]
    assert gallery.reject(sighting) == "carol"  # and then, not carol either: her face from it goes
    assert _faces(db, "carol") == [(-1, f"rejected sighting {sighting}")]
    assert ReviewReader(db).sighting(sighting).rejected == "carol"
    assert gallery.assign(sighting, "carol") == "assigned"  # she after all: her "not" is taken back
    assert _faces(db, "carol") == [(1, f"assigned sighting {sighting}")]
    item = ReviewReader(db).sighting(sighting)
    assert (item.identity, item.rejected) == ("carol", None)
    assert [(r["action"], r["subject"], r["detail"]) for r in gallery.audit_log()] == [
        ("assigned", "carol", {"sighting": sighting}), ("rejected", "carol", {"sighting": sighting}),
        ("assigned", "carol", {"sighting": sighting, "was": "bob"}), ("face enrolled", "bob",
                                                                     {"crop": 1, "source": "bob.jpg"})]
    assert {r["actor"] for r in gallery.audit_log()} == {"console alice from 10.0.0.5"}


def test_naming_a_sighting_of_an_unknown_face_names_it_and_not_removes_the_run_s_faces_of_that_track(tmp_path):
    db = connect(tmp_path / "streamer.db")
    run = GalleryStore(db, actor="run pid 1 on host")
    pseudo, name, _ = run.create_pseudo(_unit(3), _crop(3), MODEL, "pseudo-identity")
    first = _seen(db, 1, pseudo, name, seed=3, pseudo=True)
    later = _seen(db, 2, pseudo, name, seed=4, pseudo=True)
    run.add_face(pseudo, _crop(4), "track cam:2", MODEL, _unit(4))  # what a run adds when the track ends

    operator = GalleryStore(db, actor="console alice from 10.0.0.5")
    assert operator.reject(later) == name  # not that unknown face: the track's face leaves it
    assert _faces(db, name) == [(1, "pseudo-identity"), (-1, f"rejected sighting {later}")]
    assert operator.assign(first, "dana") == "renamed"  # the unknown face is dana: the whole pseudo-identity
    assert [r[0] for r in db.execute("SELECT name FROM identities").fetchall()] == ["dana"]
    assert operator.audit_log(1)[0]["detail"] == {"sighting": first, "to": "dana"}
    assert [r["action"] for r in operator.audit_log(people_only=True)] == ["renamed", "rejected"]
    assert "pseudo-identity made" in [r["action"] for r in operator.audit_log()]


def test_the_review_list_filters_and_pages(tmp_path):
    db = connect(tmp_path / "streamer.db")
    gallery = GalleryStore(db)
    erin, _ = gallery.enroll_face("erin", _crop(1), "erin.jpg", MODEL, _unit(1))
    ids = [_seen(db, k, erin if k % 2 else None, "erin" if k % 2 else None, seed=k, stream=f"cam-{k % 3}")
           for k in range(1, 13)]
    reader = ReviewReader(db)
    assert [i.id for i in reader.sightings(ReviewFilter())] == ids[::-1]  # newest first
    assert {i.stream for i in reader.sightings(ReviewFilter(stream="cam-1"))} == {"cam-1"}
    assert {i.identity for i in reader.sightings(ReviewFilter(person="erin"))} == {"erin"}
    assert {i.identity for i in reader.sightings(ReviewFilter(unknown=True))} == {None}
    assert [i.id for i in reader.sightings(ReviewFilter(after=1003, before=1006))] == ids[2:5][::-1]
    first = reader.sightings(ReviewFilter(limit=5))
    second = reader.sightings(ReviewFilter(limit=5, older_than=(first[-1].time, first[-1].id)))
    assert [i.id for i in first + second] == ids[::-1][:10]


def test_the_search_reads_new_rows_only_drops_deleted_ones_and_leaves_out_the_query_s_track(tmp_path):
    db = connect(tmp_path / "streamer.db")
    reader = ReviewReader(db)
    search = SightingSearch(reader, MODEL)
    ids = [_seen(db, k, None, None, seed=k) for k in range(1, 6)]
    assert search.refresh(chunk=2) == 2 and len(search) == 2
    while search.refresh(chunk=2):
        pass
    assert len(search) == 5
    [best] = search.search(_unit(3), top=1)
    assert best.item.id == ids[2] and best.score > 0.999
    assert ids[2] not in [h.item.id for h in search.search(_unit(3), exclude_track=best.item.track)]
    db.execute("DELETE FROM sightings WHERE id = ?", (ids[2],))  # an erasure
    assert ids[2] not in [h.item.id for h in search.search(_unit(3))]
    assert len(search) == 4
    # A row of another size of vector under the same model id is skipped, not read again and again.
    db.execute("UPDATE sightings SET embedding = ? WHERE id = ?", (np.zeros(8, "<f4").tobytes(), ids[4]))
    _seen(db, 9, None, None, seed=9)
    assert search.refresh() == 1 and search.refresh() == 0


def test_without_a_token_the_console_reads_but_changes_nothing(tmp_path):
    from streamer.web.console import Console
    from streamer.web.server import LiveView, WebConfig

    path = tmp_path / "streamer.db"
    db = connect(path)
    sighting = _seen(db, 1, None, None, seed=1)
    console = Console(connect(path, shared=True), MODEL, 112, lambda: None, 2**20)
    view = LiveView(WebConfig(enabled=True, port=0), lambda: [], console=console).start()
    try:
        page = urllib.request.urlopen(view.url + "console").read().decode()
        assert '<meta name="changes" content="0">' in page
        listed = json.loads(urllib.request.urlopen(view.url + "api/console/sightings").read())
        assert [i["id"] for i in listed["items"]] == [sighting]
        request = urllib.request.Request(
            f"{view.url}api/console/sightings/{sighting}/assign", data=b'{"name": "eve"}', method="POST",
            headers={"Content-Type": "application/json", "X-Streamer-CSRF": console.csrf_token})
        try:
            urllib.request.urlopen(request)
            raise AssertionError("changed without a token")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403 and "read-only" in json.loads(exc.read())["error"]
        # A search reads: it is answered.
        found = json.loads(urllib.request.urlopen(f"{view.url}api/console/search?sighting={sighting}").read())
        assert found["hits"] == [] and found["searched"] == 1
        # A name that is no loopback name (a DNS-rebound one) gets nothing.
        rebound = urllib.request.Request(view.url + "console", headers={"Host": "attacker.example"})
        try:
            urllib.request.urlopen(rebound)
            raise AssertionError("answered a rebound name")
        except urllib.error.HTTPError as exc:
            assert exc.code == 421
    finally:
        view.close()
    assert GalleryStore(db).audit_log() == []


def test_unknown_faces_that_look_alike_are_grouped_with_the_person_closest(tmp_path):
    db = connect(tmp_path / "streamer.db")
    gallery = GalleryStore(db)
    near = _unit(10)
    twin = _unit_near(near, 0.95)  # the same stranger, far and near: two pseudo-identities
    other = _unit(11)
    a, a_name, _ = gallery.create_pseudo(near, _crop(1), MODEL, "pseudo-identity")
    b, b_name, _ = gallery.create_pseudo(twin, _crop(2), MODEL, "pseudo-identity")
    gallery.add_face(b, _crop(3), "track cam:9", MODEL, _unit(12))  # another face of b: more faces first
    _, c_name, _ = gallery.create_pseudo(other, _crop(4), MODEL, "pseudo-identity")
    gallery.enroll_face("frank", _crop(5), "frank.jpg", MODEL, _unit_near(other, 0.97))  # c is frank, likely
    groups = unknown_groups(ReviewReader(db).face_vectors(MODEL), above=0.9)
    assert [g["members"] for g in groups] == [[b_name, a_name], [c_name]], groups
    assert groups[1]["closest"]["name"] == "frank" and groups[1]["closest"]["score"] >= 0.9
    assert unknown_groups(ReviewReader(db).face_vectors(MODEL), above=0.99) == []  # nothing that close: no group


def _unit_near(vector: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at ``cosine`` to ``vector``."""
    other = _unit(99, len(vector))
    other = other - (other @ vector) * vector
    other /= np.linalg.norm(other)
    return (cosine * vector + np.sqrt(1 - cosine**2) * other).astype(np.float32)


def test_a_person_said_not_to_be_that_face_is_not_suggested_for_it(tmp_path):
    db = connect(tmp_path / "streamer.db")
    gallery = GalleryStore(db)
    face = _unit(20)
    pseudo, name, _ = gallery.create_pseudo(face, _crop(1), MODEL, "pseudo-identity")
    grace, _ = gallery.enroll_face("grace", _crop(2), "grace.jpg", MODEL, _unit_near(face, 0.95))
    assert unknown_groups(ReviewReader(db).face_vectors(MODEL), 0.9)[0]["closest"]["name"] == "grace"
    gallery.add_face(grace, _crop(3), "rejected sighting 1", MODEL, face, polarity=-1)  # "not grace"
    # ... and someone with a "not" face and no face of their own yet (named, then rejected, at the console).
    gallery.add_face(gallery.create("hank"), _crop(4), "rejected sighting 2", MODEL, face, polarity=-1)
    assert unknown_groups(ReviewReader(db).face_vectors(MODEL), 0.9) == []
