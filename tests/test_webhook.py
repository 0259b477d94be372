"""The webhook against a real local HTTP receiver: retried until delivered, in order; new events never
cut a backoff short (a receiver that is down gets one request per backoff step, not one per event);
nothing is lost or repeated once it is back; a bounded backlog that says what it dropped; close()
keeps its time bound; the password in the URL never reaches the log."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time

from streamer.sinks.webhook import WebhookConfig, WebhookEvents


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Answers 500 while ``healthy`` is unset or ``failures_left`` is above 0, else 204 and keeps the
    events; notes every POST's time and its Authorization header."""

    healthy = threading.Event()
    failures_left = 0
    garbled_left = 0  # answers that are not HTTP at all
    refused_left = 0  # 400 Bad Request answers
    hang_s = 0.0
    auth: str | None = None
    posts: list[float] = []
    received: list[dict] = []

    def do_POST(self):
        type(self).auth = self.headers.get("Authorization")
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).posts.append(time.monotonic())
        if type(self).hang_s:
            time.sleep(type(self).hang_s)
        if type(self).garbled_left > 0:
            type(self).garbled_left -= 1
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n")
            self.close_connection = True
            return
        if type(self).refused_left > 0:
            type(self).refused_left -= 1
            self.send_response(400)
            self.end_headers()
            return
        if not type(self).healthy.is_set() or type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_response(500)
            self.end_headers()
            return
        type(self).received.extend(body["events"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _receiver(hang_s: float = 0.0, healthy: bool = False, failures: int = 0):
    _Receiver.healthy, _Receiver.hang_s, _Receiver.posts, _Receiver.received = threading.Event(), hang_s, [], []
    _Receiver.failures_left, _Receiver.auth, _Receiver.garbled_left, _Receiver.refused_left = failures, None, 0, 0
    if healthy:
        _Receiver.healthy.set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/events", _Receiver
    finally:
        server.shutdown()
        server.server_close()


def test_retried_until_delivered_in_order_and_the_password_is_never_logged(caplog):
    with _receiver(healthy=True, failures=3) as (url, receiver):
        url = url.replace("http://", "http://hook:s3cret-pw@")
        hook = WebhookEvents(WebhookConfig(url=url, retry_initial_s=0.05, batch=7))
        for n in range(30):
            hook.send([{"type": "identity", "n": n}])
        hook.close()
    assert [e["n"] for e in receiver.received] == list(range(30))
    assert hook.failures == 3 and hook.delivered == 30 and hook.dropped == 0
    assert receiver.auth == "Basic aG9vazpzM2NyZXQtcHc="  # hook:s3cret-pw
    assert "s3cret-pw" not in caplog.text


def test_the_backlog_is_bounded_and_reports_what_it_dropped():
    with _receiver() as (url, receiver):  # the receiver is down
        hook = WebhookEvents(WebhookConfig(url=url, max_backlog=5, retry_initial_s=0.05, retry_max_s=0.1, drain_s=5))
        for n in range(20):
            hook.send([{"type": "identity", "n": n, "time": f"t{n}"}])
        assert hook.backlog + (hook._in_flight or 0) <= 5 + hook.config.batch
        time.sleep(0.3)
        receiver.healthy.set()  # back up
        hook.close()
    notices = [e for e in receiver.received if e["type"] == "events_dropped"]
    delivered = [e["n"] for e in receiver.received if e["type"] == "identity"]
    assert sum(n["count"] for n in notices) == hook.dropped == 20 - len(delivered)
    assert delivered == sorted(delivered) and delivered[-1] == 19  # the newest are kept


def test_new_events_do_not_cut_the_backoff_short_and_all_arrive_once_in_order():
    with _receiver() as (url, receiver):
        hook = WebhookEvents(WebhookConfig(url=url, retry_initial_s=0.5, retry_max_s=30, drain_s=5))
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < 1.5:  # an event every 20 ms while the receiver fails
            hook.send([{"type": "identity", "n": n}])
            n += 1
            time.sleep(0.02)
        offsets = [round(t - start, 2) for t in receiver.posts]
        assert len(offsets) <= 3, offsets  # at about 0 s, 0.5 s and 1.5 s: the backoff, not the events
        assert all(b - a >= 0.35 for a, b in zip(offsets, offsets[1:])), offsets
        receiver.healthy.set()
        began = time.monotonic()
        hook.close()  # the drain retries at once, then delivers everything
        assert time.monotonic() - began < 2.0
    assert [e["n"] for e in receiver.received] == list(range(n))  # each once, in order
    assert hook.delivered == n and hook.dropped == 0 and hook.backlog == 0


def test_a_receiver_back_up_gets_the_backlog_at_the_next_step_without_close():
    with _receiver() as (url, receiver):
        hook = WebhookEvents(WebhookConfig(url=url, retry_initial_s=0.3, retry_max_s=0.3, batch=7))
        for n in range(30):
            hook.send([{"type": "identity", "n": n}])
        time.sleep(0.5)
        receiver.healthy.set()
        deadline = time.monotonic() + 3
        while hook.delivered < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e["n"] for e in receiver.received] == list(range(30))
        hook.close()


def test_close_returns_within_drain_and_timeout_when_the_receiver_hangs():
    with _receiver(hang_s=5.0) as (url, receiver):
        hook = WebhookEvents(WebhookConfig(url=url, timeout_s=1.0, drain_s=1.0, retry_initial_s=0.2))
        hook.send([{"type": "identity", "n": 0}])
        time.sleep(0.1)  # the request is in flight, and will time out
        began = time.monotonic()
        hook.close()
        assert time.monotonic() - began < 1.0 + 1.0 + 0.3
        assert hook.delivered == 0 and receiver.received == []


def test_a_garbled_answer_is_retried_and_a_refusal_does_not_block_later_events():
    with _receiver(healthy=True) as (url, receiver):
        receiver.garbled_left = 2  # not HTTP: the deliverer must survive it and send the batch again
        hook = WebhookEvents(WebhookConfig(url=url, retry_initial_s=0.05, batch=5))
        hook.send([{"type": "identity", "n": n} for n in range(5)])
        deadline = time.monotonic() + 5
        while hook.delivered < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e["n"] for e in receiver.received] == list(range(5)) and hook.failures == 2
        receiver.refused_left = 1  # 400: sending it again would get the same answer
        hook.send([{"type": "identity", "n": n} for n in range(5, 10)])
        time.sleep(0.3)
        hook.send([{"type": "identity", "n": n} for n in range(10, 15)])
        hook.close()
    assert [e["n"] for e in receiver.received] == list(range(5)) + list(range(10, 15))
    assert hook.rejected == 5 and hook.backlog == 0 and "5 refused by the receiver" in hook.outcome()
