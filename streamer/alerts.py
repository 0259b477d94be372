"""Alerts: rules over the committed events, raised to the event sinks that take them (events.jsonl, the webhook,
MQTT's ``PREFIX/alerts``).

Two kinds of rule, as operators ask for them:
- a watchlist person is named on a camera (``person: NAME``);
- one unknown face, the same pseudo-identity, is seen on ``unknown_seen`` tracks within ``within_min`` minutes
  (a stranger who keeps coming back).

A rule alerts again for the same person (or the same unknown face) only after ``cooldown_min``. Rules read the
events' JSON (what every sink receives), so a cluster's hub raises them over every worker's events alike.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
from collections.abc import Sequence

from pydantic import Field, model_validator

from streamer.config_base import NAME_PATTERN, StrictModel
from streamer.records import Sighting

log = logging.getLogger(__name__)


class AlertRule(StrictModel):
    name: str = Field(pattern=NAME_PATTERN, description="the alert's name, in its JSON")
    person: str | None = Field(None, min_length=1, description="alert when a track is named this gallery person")
    unknown_seen: int | None = Field(None, ge=1, le=1000, description="alert when one unknown face (the same "
                                     "pseudo-identity) is seen on this many tracks within within_min")
    within_min: float = Field(10.0, gt=0, le=10080, description="unknown_seen's window, minutes")
    streams: list[str] = Field(default_factory=list, description="only these cameras (default: every camera)")
    cooldown_min: float = Field(10.0, ge=0, le=10080, description="the same rule for the same face alerts again "
                                "after this long at the earliest")

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.person is None) == (self.unknown_seen is None):
            raise ValueError(f"alert {self.name!r}: give either person (a watchlist name) or unknown_seen (times an "
                             f"unknown face is seen within within_min)")
        return self


class AlertRules:
    """Raises alerts from events' JSON, in the order the events come."""

    def __init__(self, rules: Sequence[AlertRule]):
        self.rules = list(rules)
        self._last: dict[tuple[str, str], float] = {}  # (rule, face) -> when it last alerted
        self._tracks: dict[tuple[str, str], collections.OrderedDict] = {}  # (rule, pseudo) -> {(stream, track): t}
        self.raised = 0

    def check(self, events: Sequence[dict]) -> list[dict]:
        alerts = []
        for event in events:
            if event.get("type") != "identity" or not event.get("identity"):
                continue
            when = _epoch(event["time"])
            for rule in self.rules:
                if rule.streams and event["stream"] not in rule.streams:
                    continue
                alert = self._person(rule, event, when) if rule.person else self._unknown(rule, event, when)
                if alert is not None:
                    alerts.append(alert)
        self.raised += len(alerts)
        return alerts

    def _person(self, rule: AlertRule, event: dict, when: float) -> dict | None:
        if event.get("pseudo") or event["identity"] != rule.person or self._cooling(rule, rule.person, when):
            return None
        return _alert(rule, event, f"{rule.person} seen on {event['stream']}", seen=1)

    def _unknown(self, rule: AlertRule, event: dict, when: float) -> dict | None:
        if not event.get("pseudo"):
            return None
        face = event["identity"]
        tracks = self._tracks.setdefault((rule.name, face), collections.OrderedDict())
        tracks[(event["stream"], event["track_id"])] = when
        window = rule.within_min * 60
        for key, seen in list(tracks.items()):
            if when - seen > window:
                del tracks[key]
        if len(tracks) < rule.unknown_seen or self._cooling(rule, face, when):
            return None
        cameras = sorted({stream for stream, _ in tracks})
        return _alert(rule, event, f"{face} (unknown) seen on {len(tracks)} tracks within {rule.within_min:g} min "
                                   f"({', '.join(cameras)})", seen=len(tracks))

    def _cooling(self, rule: AlertRule, face: str, when: float) -> bool:
        """Whether the rule alerted for this face less than cooldown_min ago; if not, it alerts now."""
        last = self._last.get((rule.name, face))
        if last is not None and when - last < rule.cooldown_min * 60:
            return True
        self._last[(rule.name, face)] = when
        return False


def _alert(rule: AlertRule, event: dict, reason: str, seen: int) -> dict:
    return {"type": "alert", "alert": rule.name, "reason": reason, "stream": event["stream"],
            "track_id": event["track_id"], "time": event["time"], "identity": event["identity"],
            "pseudo": bool(event.get("pseudo")), "score": event.get("score"), "seen": seen,
            "sighting": event.get("sighting")}


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


class AlertSink:
    """An event sink that raises the rules' alerts and hands them to the other sinks that take alerts
    (``alert(alerts)``), after those sinks had the events."""

    def __init__(self, rules: Sequence[AlertRule], targets: Sequence):
        self.rules = AlertRules(rules)
        self.targets = [t for t in targets if hasattr(t, "alert")]

    def emit(self, sightings: Sequence[Sighting]) -> None:
        alerts = self.rules.check([s.json for s in sightings])
        for alert in alerts:
            log.warning("alert %s: %s", alert["alert"], alert["reason"])
        if alerts:
            for target in self.targets:
                target.alert(alerts)

    def close(self, drain: bool = True) -> None:
        pass

    def outcome(self) -> str:
        return f"alerts: {self.rules.raised} raised ({len(self.rules.rules)} rules)"
