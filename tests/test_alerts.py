"""Alert rules over the events as a sink sees them: a watchlist person named, an unknown face coming back."""

from __future__ import annotations

import datetime as dt

import pytest

from streamer.alerts import AlertRule, AlertRules

T0 = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.timezone.utc)


def named(identity: str, minute: float, stream: str = "door", track: int = 1, pseudo: bool = False,
          sighting: int = 1) -> dict:
    when = (T0 + dt.timedelta(minutes=minute)).isoformat(timespec="milliseconds")
    return {"type": "identity", "stream": stream, "track_id": track, "time": when, "identity": identity,
            "pseudo": pseudo, "score": 0.7, "sighting": sighting}


def test_a_watchlist_person_alerts_once_per_cooldown_and_only_on_the_cameras_named():
    rules = AlertRules([AlertRule(name="vip", person="obama", streams=["door", "lobby"], cooldown_min=5)])
    [alert] = rules.check([named("obama", 0, sighting=7), named("biden", 0.1)])
    assert alert["alert"] == "vip" and alert["identity"] == "obama" and alert["sighting"] == 7
    assert alert["reason"] == "obama seen on door" and alert["type"] == "alert"
    assert rules.check([named("obama", 2, stream="lobby", track=2)]) == []  # cooling down
    assert rules.check([named("obama", 6, stream="yard", track=3)]) == []  # not a camera of the rule
    assert len(rules.check([named("obama", 6, stream="lobby", track=4)])) == 1
    # A pseudo-identity that happens to carry the name is not the person; a track still undecided is nobody.
    assert rules.check([named("obama", 20, pseudo=True), {**named("obama", 21), "identity": None}]) == []


def test_an_unknown_face_alerts_when_seen_on_enough_tracks_within_the_window():
    rules = AlertRules([AlertRule(name="stranger", unknown_seen=3, within_min=10, cooldown_min=30)])
    face = "unknown-00042"
    assert rules.check([named(face, 0, track=1, pseudo=True), named(face, 1, track=1, pseudo=True)]) == []
    assert rules.check([named(face, 4, stream="yard", track=9, pseudo=True)]) == []  # 2 tracks so far
    assert rules.check([named("unknown-00043", 5, track=3, pseudo=True)]) == []  # another face
    assert rules.check([named("obama", 5, track=4)]) == []  # a known person is not unknown
    [alert] = rules.check([named(face, 8, track=5, pseudo=True)])
    assert alert["seen"] == 3 and "door, yard" in alert["reason"] and alert["identity"] == face
    assert rules.check([named(face, 9, track=6, pseudo=True)]) == []  # cooling down
    # The window slides: 3 tracks within 10 minutes again, after the cool-down, alerts again.
    assert rules.check([named(face, 40, track=7, pseudo=True), named(face, 45, track=8, pseudo=True)]) == []
    assert len(rules.check([named(face, 49, track=10, pseudo=True)])) == 1


def test_a_rule_is_one_kind_and_names_are_unique():
    from streamer.config import parse_config
    from streamer.errors import ConfigError

    with pytest.raises(ConfigError, match="alerts\\[0\\]: alert 'x': give either person"):
        parse_config({"alerts": [{"name": "x"}]})
    with pytest.raises(ConfigError, match="give either person"):
        parse_config({"alerts": [{"name": "x", "person": "a", "unknown_seen": 2}]})
    with pytest.raises(ConfigError, match="alert names must be unique: x repeated"):
        parse_config({"alerts": [{"name": "x", "person": "a"}, {"name": "x", "person": "b"}]})
