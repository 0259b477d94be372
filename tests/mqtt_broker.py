"""A real MQTT broker for the tests: Debian's mosquitto, on a free port, with a password, started and stopped by
the tests (``make system-deps`` installs it; without it these tests are skipped, saying so)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.rtsp import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
USER, PASSWORD = "streamer", "mqtt-Pa55!word"


class MqttBroker:
    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        folder.mkdir(parents=True, exist_ok=True)
        passwords = folder / "passwords"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), USER, PASSWORD], check=True,
                       capture_output=True)
        passwords.chmod(0o600)
        # Persistent sessions survive a restart: a subscriber's QoS 1 messages wait for it, as on a real site.
        self.config = folder / "mosquitto.conf"
        # Started as root (CI's containers), mosquitto would drop to its own user, who cannot read these files.
        as_root = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {passwords}\n"
                               f"persistence true\npersistence_location {folder}/\nlog_dest stderr\n{as_root}")
        self.proc: subprocess.Popen | None = None

    def url(self, password: str = PASSWORD) -> str:
        return f"mqtt://{USER}:{password}@127.0.0.1:{self.port}"

    def start(self) -> MqttBroker:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture()
def mqtt_broker(tmp_path):
    if not Path(MOSQUITTO).exists() or not shutil.which("mosquitto_passwd"):
        pytest.skip("needs Debian's mosquitto (make system-deps installs it)")
    pytest.importorskip("paho.mqtt.client", reason="needs paho-mqtt (pip install -e '.[dev]')")
    broker = MqttBroker(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


class Subscriber:
    """A client that keeps every message under ``topic`` (a persistent QoS 1 session: what the broker holds for it
    while it is away, it gets when it is back)."""

    def __init__(self, broker: MqttBroker, topic: str = "streamer/#", client_id: str = "test-subscriber"):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, str, bool]] = []
        self.topic = topic
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.username_pw_set(USER, PASSWORD)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload.decode(), m.retain))
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the test's subscriber did not get its subscription"

    def on(self, topic: str) -> list[str]:
        return [payload for t, payload, _ in list(self.messages) if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
