"""The operator console in a real browser (Debian's headless Chromium, driven through Selenium and its
chromium-driver) against a real `streamer run` on real photos: an operator names an unknown face, enrols a
person by uploading photos, rejects a wrong name and searches by photo. Each effect is checked in the store
(and its audit log) and on the next sighting of that face, which the run names accordingly."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from tests.paths import FACES, SHARED
from tests.processes import StreamerProcess, bearer, call

TOKEN = "console-t0ken"
CHROMEDRIVER = shutil.which("chromedriver")
PEOPLE = FACES / "knn_examples" / "train"
MASKED = SHARED / "data" / "masked_faces" / "with_mask"
needs_browser = pytest.mark.skipif(
    CHROMEDRIVER is None or shutil.which("chromium") is None,
    reason="needs Chromium and its driver (make test installs Debian's chromium and chromium-driver)")


def _wait(check, seconds: float = 40, what: str = ""):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


class Run:
    """A `streamer run` with the console and web.control, no camera at first; photos are added as cameras."""

    def __init__(self, tmp_path: Path):
        self.tmp, self.out = tmp_path, tmp_path / "out"
        config = tmp_path / "run.yaml"
        config.write_text(f"sources: []\nweb: {{enabled: true, port: 0, token: {TOKEN}, control: true}}\n"
                          f"output: {{dir: {self.out}}}\n")
        self.process = StreamerProcess(config)
        self.url = self.process.live_view_url()

    def show(self, camera: str, *photos: Path) -> dict:
        """A camera that sees these photos (an image folder): its face sighting, once stored."""
        folder = self.tmp / camera
        folder.mkdir()
        for photo in photos:
            shutil.copy(photo, folder / photo.name)
        code, answer = call("POST", self.url + "api/streams", {"name": camera, "uri": str(folder)}, bearer(TOKEN))
        assert code == 201, answer
        return _wait(lambda: next(iter(self.api(f"sightings?stream={camera}")["items"]), None), what=camera)

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.url}api/console/{path}{'&' if '?' in path else '?'}token={TOKEN}") as r:
            return json.loads(r.read())

    def store(self) -> sqlite3.Connection:
        return sqlite3.connect(self.out / "streamer.db")

    def close(self) -> None:
        self.process.proc.send_signal(signal.SIGTERM)
        assert self.process.finish(timeout=60) == 0, self.process.stderr[-3000:]


@pytest.fixture
def run(tmp_path):
    session = Run(tmp_path)
    yield session
    if session.process.proc.poll() is None:
        session.close()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                     "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _card(browser, sighting: int):
    from selenium.webdriver.common.by import By

    return _wait(lambda: browser.find_elements(By.CSS_SELECTOR, f'.card[data-sighting="{sighting}"]'),
                 what=f"sighting {sighting} on the page")[0]


def _shown_name(browser, sighting: int) -> str | None:
    """The name a sighting's card shows now (None while the card is being replaced)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return browser.find_element(By.CSS_SELECTOR, f'.card[data-sighting="{sighting}"] .identity').text
    except (NoSuchElementException, StaleElementReferenceException):
        return None


def _screenshot(browser, name: str) -> None:
    folder = os.environ.get("STREAMER_SCREENSHOTS")
    if folder:
        browser.save_screenshot(str(Path(folder) / f"console-{name}.png"))


@needs_browser
def test_an_operator_names_enrols_rejects_and_searches_in_the_browser(run, browser, tmp_path):
    from selenium.webdriver.common.by import By

    masked = run.show("lobby", MASKED / "0_0_1.jpg")  # a real face mask, reconstructed by the run
    assert masked["reconstructed"] and "face_mask" in masked["occluders"], masked
    stranger = run.show("door", PEOPLE / "biden" / "biden.jpg")
    assert stranger["kind"] == "pseudo"  # never enrolled: an unknown face, made a pseudo-identity

    browser.get(f"{run.url}console?token={TOKEN}")
    browser.find_element(By.ID, "operator").send_keys("alice")
    # The reconstruction beside the face the camera saw, marked SYNTHETIC, both pictures loaded.
    figures = _card(browser, masked["id"]).find_elements(By.CSS_SELECTOR, "figure")
    assert [f.find_element(By.TAG_NAME, "figcaption").text for f in figures] == ["as the camera saw it",
                                                                                   "reconstruction"]
    assert [f.find_elements(By.CSS_SELECTOR, ".synthetic")[0].text if f.find_elements(By.CSS_SELECTOR, ".synthetic")
            else None for f in figures] == [None, "SYNTHETIC"]
    _wait(lambda: all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
                      for image in _card(browser, masked["id"]).find_elements(By.TAG_NAME, "img")),
          what="both pictures loaded")
    card = _card(browser, stranger["id"])
    assert card.find_element(By.CSS_SELECTOR, ".identity").text == stranger["identity"]
    # Health on every page: the camera, its state and its last frame.
    chip = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, '#health .chip[data-stream="door"]'))[0]
    assert "door: ended" in chip.text or "door: decoding" in chip.text
    _screenshot(browser, "review")

    # "This is Joe Biden" on the unknown face: the pseudo-identity is named (in the store, audited by whom).
    card.find_element(By.CSS_SELECTOR, ".assign-name").send_keys("Joe Biden")
    card.find_element(By.CSS_SELECTOR, "button.assign").click()
    _wait(lambda: _shown_name(browser, stranger["id"]) == "Joe Biden", what="the card showing the new name")
    with run.store() as db:
        assert db.execute("SELECT i.name, i.kind FROM sightings s JOIN identities i ON i.id = s.identity_id "
                          "WHERE s.id = ?", (stranger["id"],)).fetchone() == ("Joe Biden", "person")
        actor, action, subject, detail = db.execute(
            "SELECT actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    assert (actor, action, subject) == ("console alice from 127.0.0.1", "renamed", stranger["identity"])
    assert json.loads(detail) == {"to": "Joe Biden", "sighting": stranger["id"]}
    # ... and the next sighting of him, on another camera and another photo, is named by the run.
    again = run.show("hall", PEOPLE / "biden" / "biden2.jpg")
    assert again["identity"] == "Joe Biden" and again["score"] >= again["threshold"], again
    # It comes in at the top of the review list by itself, named.
    _wait(lambda: _shown_name(browser, again["id"]) == "Joe Biden", 20, "the new sighting on the open page")
    assert browser.find_element(By.CSS_SELECTOR, "#review-list .card").get_attribute("data-sighting") == \
        str(again["id"])

    # Enrol by upload: one clear message per photo, the faceless one included.
    faceless = tmp_path / "wall.jpg"
    cv2.imwrite(str(faceless), np.full((240, 320, 3), 128, np.uint8))
    browser.find_element(By.CSS_SELECTOR, 'nav a[data-view="library"]').click()
    browser.find_element(By.ID, "enrol-name").send_keys("Barack Obama")
    browser.find_element(By.ID, "enrol-files").send_keys(f"{PEOPLE / 'obama' / 'obama.jpg'}\n{faceless}")
    browser.find_element(By.ID, "enrol").click()
    messages = _wait(lambda: [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#enrol-msgs .msg")]
                     if len(browser.find_elements(By.CSS_SELECTOR, "#enrol-msgs .msg")) == 2 else None)
    assert messages == ["obama.jpg: enrolled for Barack Obama", "wall.jpg: no usable face found in this photo"]
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, '.identity-card[data-name="Barack Obama"]'))
    with run.store() as db:
        assert db.execute("SELECT count(*) FROM crops c JOIN identities i ON i.id = c.identity_id WHERE i.name = ? "
                          "AND c.polarity = 1", ("Barack Obama",)).fetchone()[0] == 1
        assert db.execute("SELECT actor, action FROM audit_log WHERE subject = ? ORDER BY id DESC LIMIT 1",
                          ("Barack Obama",)).fetchone() == ("console alice from 127.0.0.1", "face enrolled")
    named = run.show("gate", PEOPLE / "obama" / "obama2.jpg")
    assert named["identity"] == "Barack Obama", named

    # "Not Barack Obama": the face is kept as his negative and the sighting names nobody; the same face seen
    # again is not named him.
    browser.find_element(By.CSS_SELECTOR, 'nav a[data-view="review"]').click()
    browser.find_element(By.ID, "f-apply").click()
    card = _card(browser, named["id"])
    card.find_element(By.CSS_SELECTOR, "button.reject").click()
    _wait(lambda: _shown_name(browser, named["id"]) == "nobody named", what="the card showing the rejection")
    with run.store() as db:
        assert db.execute("SELECT identity_id, rejected_identity FROM sightings WHERE id = ?",
                          (named["id"],)).fetchone() == (None, "Barack Obama")
        assert db.execute("SELECT count(*) FROM crops c JOIN identities i ON i.id = c.identity_id WHERE i.name = ? "
                          "AND c.polarity = -1", ("Barack Obama",)).fetchone()[0] == 1
        assert db.execute("SELECT action FROM audit_log ORDER BY id DESC LIMIT 1").fetchone() == ("rejected",)
    assert run.show("gate-2", PEOPLE / "obama" / "obama2.jpg")["identity"] != "Barack Obama"

    # Search by photo: his sightings first, with their similarity; nobody is named by it.
    with run.store() as db:
        audited = db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    browser.find_element(By.CSS_SELECTOR, 'nav a[data-view="search"]').click()
    browser.find_element(By.ID, "search-file").send_keys(str(PEOPLE / "biden" / "biden2.jpg"))
    browser.find_element(By.ID, "search-go").click()
    first = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#search-list .card"), what="search results")[0]
    assert first.find_element(By.CSS_SELECTOR, ".identity").text == "Joe Biden"
    similarity = float(re.search(r"similarity ([0-9.]+)", first.text).group(1))
    assert similarity > 0.9
    _screenshot(browser, "search")
    with run.store() as db:
        assert db.execute("SELECT count(*) FROM audit_log").fetchone()[0] == audited

    # An unknown face, then her enrolled from another photo: the library groups the unknown face with the person
    # it is closest to, and names it in one click.
    rose = run.show("yard", PEOPLE / "rose_leslie" / "img1.jpg")
    assert rose["kind"] == "pseudo"
    browser.find_element(By.CSS_SELECTOR, 'nav a[data-view="library"]').click()
    browser.find_element(By.ID, "enrol-name").clear()
    browser.find_element(By.ID, "enrol-name").send_keys("Rose Leslie")
    browser.find_element(By.ID, "enrol-files").clear()
    browser.find_element(By.ID, "enrol-files").send_keys(str(PEOPLE / "rose_leslie" / "img2.jpg"))
    browser.find_element(By.ID, "enrol").click()
    group = _wait(lambda: [g for g in browser.find_elements(By.CSS_SELECTOR, "#groups .group-card")
                           if rose["identity"] in g.get_attribute("data-members").split("\n")], what="the group")[0]
    assert "closest person: Rose Leslie" in group.text
    assert group.find_element(By.CSS_SELECTOR, ".group-name").get_attribute("value") == "Rose Leslie"
    _screenshot(browser, "library")
    group.find_element(By.CSS_SELECTOR, "button.name-group").click()
    _wait(lambda: not browser.find_elements(By.CSS_SELECTOR, "#groups .group-card"), what="the group named")
    with run.store() as db:
        assert db.execute("SELECT i.name FROM sightings s JOIN identities i ON i.id = s.identity_id WHERE s.id = ?",
                          (rose["id"],)).fetchone() == ("Rose Leslie",)
        assert db.execute("SELECT action, subject, detail FROM audit_log ORDER BY id DESC LIMIT 1").fetchone() == (
            "merged", rose["identity"], json.dumps({"into": "Rose Leslie"}))
    run.close()


@needs_browser
def test_the_console_refuses_other_sites_oversized_and_non_image_uploads(run, browser, tmp_path):
    page = urllib.request.urlopen(f"{run.url}console?token={TOKEN}").read().decode()
    csrf = re.search(r'name="csrf" content="([^"]+)"', page).group(1)
    assert TOKEN not in page
    enrol = run.url + "api/console/identities/Eve/faces"
    photo = (PEOPLE / "obama" / "obama.jpg").read_bytes()

    def post(body: bytes, headers: dict) -> tuple[int, dict]:
        request = urllib.request.Request(enrol, data=body, method="POST", headers={"Content-Type": "image/jpeg",
                                                                                    **headers})
        try:
            with urllib.request.urlopen(request) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    auth = bearer(TOKEN)
    assert post(photo, {})[0] == 401  # no token
    code, answer = post(photo, auth)  # the token, but not the console page's CSRF header
    assert code == 403 and "X-Streamer-CSRF" in answer["error"]
    code, answer = post(photo, {**auth, "X-Streamer-CSRF": csrf, "Origin": "http://evil.example"})
    assert code == 403 and "another site" in answer["error"]
    code, answer = post(b"GIF89a" + b"\0" * 100, {**auth, "X-Streamer-CSRF": csrf, "X-Filename": "cat.gif"})
    assert (code, answer["error"]) == (415, "cat.gif: not a JPEG or PNG image")
    code, answer = post(photo[:len(photo) // 2], {**auth, "X-Streamer-CSRF": csrf, "X-Filename": "cut.jpg"})
    assert code == 422 and answer["error"].startswith("cut.jpg: "), answer
    # Too large: refused from its Content-Length, before a byte of it is read.
    connection = http.client.HTTPConnection(urlsplit(run.url).netloc, timeout=10)
    connection.putrequest("POST", urlsplit(enrol).path)
    for key, value in {**auth, "X-Streamer-CSRF": csrf, "Content-Length": str(10 * 2**20 + 1)}.items():
        connection.putheader(key, value)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "web.max_upload_mb" in json.loads(response.read())["error"]
    connection.close()
    code, answer = post(photo, {**auth, "X-Streamer-CSRF": csrf, "X-Filename": "obama.jpg"})
    assert code == 201, answer
    with run.store() as db:
        assert db.execute("SELECT action, subject FROM audit_log").fetchall() == [("face enrolled", "Eve")]
    # A name is data, not a path; without the token, the browser gets no console.
    assert call("POST", run.url + "api/console/identities/..%2F..%2Fetc/faces", {}, {**auth, "X-Streamer-CSRF": csrf}
                )[0] == 400
    browser.get(f"{run.url}console")
    assert "streamer - console" not in browser.page_source
