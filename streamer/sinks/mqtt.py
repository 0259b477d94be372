"""Events to an MQTT broker (paho-mqtt), with a topic layout like Frigate's:

- ``<prefix>/available``: ``online`` while the run is connected, ``offline`` when it ends or is lost (the
  broker publishes the run's last will then); retained, so a subscriber arriving later knows;
- ``<prefix>/events``: every sighting, as the JSON-lines file has it;
- ``<prefix>/<camera>/face``: the same, per camera;
- ``<prefix>/alerts`` and ``<prefix>/<camera>/alert``: the alerts the config's rules raise (streamer/alerts.py).

Messages go at QoS 1 from paho's own thread; the run never waits for the broker. While the broker is away
paho keeps them (up to ``max_backlog``; beyond, new ones are dropped, counted, logged) and sends them when it
is back; the client reconnects by itself, backing off. Every event is also in the store and events.jsonl,
written before it gets here.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator

from streamer.config_base import StrictModel
from streamer.errors import ConfigError
from streamer.records import Sighting
from streamer.redaction import checked_url

log = logging.getLogger(__name__)
_TOPIC_FORBIDDEN = set("#+\0")


class MqttConfig(StrictModel):
    url: str = Field(description="mqtt://[user:password@]host[:1883] or mqtts://…[:8883] (TLS); use ${ENV} for the "
                     "password")
    topic_prefix: str = Field("streamer", min_length=1, max_length=100, description="topics are PREFIX/events, "
                              "PREFIX/<camera>/face, PREFIX/available")
    client_id: str | None = Field(None, max_length=64, description="default: streamer-<host>-<random>")
    ca_file: str | None = Field(None, description="mqtts: the CA that signed the broker's certificate (default: the "
                                "system's)")
    keepalive_s: int = Field(30, ge=5, le=3600)
    max_backlog: int = Field(10000, ge=1, le=10_000_000, description="messages kept while the broker is away")
    drain_s: float = Field(5.0, ge=0, le=600, description="at the end of a run, keep delivering this long")

    @field_validator("url")
    @classmethod
    def _mqtt_url(cls, url: str) -> str:
        return checked_url(url, ("mqtt", "mqtts"), "an mqtt:// or mqtts://")

    @field_validator("topic_prefix")
    @classmethod
    def _plain_topic(cls, prefix: str) -> str:
        if _TOPIC_FORBIDDEN & set(prefix) or prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"{prefix!r} is not a plain topic (no #, +, NUL, nor a leading or trailing /)")
        return prefix


class MqttEvents:
    def __init__(self, config: MqttConfig):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise ConfigError("output.mqtt needs paho-mqtt: pip install 'streamer[mqtt]'") from None
        self._mqtt = mqtt
        self.config = config
        parts = urlsplit(config.url)
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self.where = f"{parts.scheme}://{parts.hostname}:{port}"
        self.prefix = config.topic_prefix
        self.available = f"{self.prefix}/available"
        self.published = self.delivered = self.dropped = 0
        self._lock = threading.Lock()
        self._connected_once = False
        self._refusals = 0  # connections refused in a row (a wrong password): said once, then every 20th
        client_id = config.client_id or f"streamer-{socket.gethostname()[:20]}-{uuid.uuid4().hex[:8]}"
        self.client = client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                           protocol=mqtt.MQTTv311)
        if parts.username is not None:
            client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
        if parts.scheme == "mqtts":
            client.tls_set(ca_certs=config.ca_file)
        client.will_set(self.available, "offline", qos=1, retain=True)
        client.max_queued_messages_set(config.max_backlog)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        # Not waiting for the broker: a broker that is down at start is connected to when it comes up.
        client.connect_async(parts.hostname, port, keepalive=config.keepalive_s)
        client.loop_start()

    def emit(self, sightings: Sequence[Sighting]) -> None:
        for sighting in sightings:
            payload = json.dumps(sighting.json, separators=(",", ":"))
            camera = sighting.json["stream"]  # a stream name holds no topic wildcard (the config's name pattern)
            for topic in (f"{self.prefix}/events", f"{self.prefix}/{camera}/face"):
                self._publish(topic, payload)

    def alert(self, alerts: list[dict]) -> None:
        for alert in alerts:
            payload = json.dumps(alert, separators=(",", ":"))
            for topic in (f"{self.prefix}/alerts", f"{self.prefix}/{alert['stream']}/alert"):
                self._publish(topic, payload)

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            with self._lock:
                self.dropped += 1
                dropped = self.dropped
            if dropped == 1 or dropped % 1000 == 0:
                log.warning("mqtt %s: %d messages waiting for the broker (output.mqtt.max_backlog): %d new ones "
                            "dropped so far", self.where, self.config.max_backlog, dropped)
            return
        with self._lock:
            self.published += 1

    def close(self, drain: bool = True) -> None:
        """Says ``offline`` (retained), delivers what it can within ``drain_s``, then disconnects."""
        self._publish(self.available, "offline", retain=True)
        deadline = time.monotonic() + (self.config.drain_s if drain else 0.0)
        while self.backlog and time.monotonic() < deadline:
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()
        if self.backlog:
            log.error("mqtt %s: %d messages not delivered (the events are in the store and events.jsonl)",
                      self.where, self.backlog)

    @property
    def backlog(self) -> int:
        with self._lock:
            return self.published - self.delivered

    def outcome(self) -> str:
        return (f"mqtt {self.where}: {self.delivered} messages delivered, {self.dropped} dropped (backlog full), "
                f"{self.backlog} undelivered")

    # -- paho's thread ----------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusals += 1
            if self._refusals == 1 or self._refusals % 20 == 0:
                log.warning("mqtt %s: the broker refused the connection: %s (retrying)", self.where, reason_code)
            return
        self._refusals = 0
        if self._connected_once:
            log.warning("mqtt %s: connected again", self.where)
        self._connected_once = True
        self._publish(self.available, "online", retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("mqtt %s: connection lost (%s); messages wait, reconnecting", self.where, reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.delivered += 1
