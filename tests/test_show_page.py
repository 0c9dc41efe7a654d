"""A show-ready page in Chromium: the monitor drawer (liblo's oscsend, MIDI over JACK), its filter and pause, the
activity lights, keep awake over HTTPS and its fallback on plain HTTP, full screen, the home-screen app, themes
and scene files."""

from __future__ import annotations

import json
import socket
import struct
import threading
import urllib.request
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import mido
import pytest
from playwright.sync_api import Page, expect

from tests.browser import PHONE, SCREENSHOTS, TEST_HOST, Pages, wait_synced
from tests.helpers import BridgeProcess, Client, free_port, secure, wait_until, write_config
from tests.jack import JackServer, MidiPeer, unique_name
from tests.osc_tools import oscsend

Start = Callable[..., BridgeProcess]


def cc(channel: int, number: int, value: int) -> mido.Message:
    return mido.Message("control_change", channel=channel - 1, control=number, value=value)


@pytest.fixture(scope="module")
def osc_port() -> int:
    return free_port(socket.SOCK_DGRAM)


@pytest.fixture(scope="module")
def midi_names() -> dict[str, str]:
    return {"input": unique_name("show-in"), "output": unique_name("show-out")}


@pytest.fixture(scope="module")
def show(
    tmp_path_factory: pytest.TempPathFactory, jack: JackServer, osc_port: int, midi_names: dict[str, str]
) -> Iterator[BridgeProcess]:
    """One bridge for the module: OSC in on loopback, MIDI on virtual ports of the module's JACK server."""
    folder = tmp_path_factory.mktemp("show")
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a desk that takes every message
    target.bind(("127.0.0.1", 0))
    extra = (
        f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["127.0.0.1:{target.getsockname()[1]}"]\n'
        f'[midi]\nbackend = "mido.backends.rtmidi/UNIX_JACK"\ninput = "{midi_names["input"]}"\n'
        f'output = "{midi_names["output"]}"\nvirtual = true\n'
    )
    proc = BridgeProcess(write_config(folder, extra=extra), env={"JACK_DEFAULT_SERVER": jack.name}).start()
    yield proc
    proc.stop()
    target.close()


@pytest.fixture
def linked(show: BridgeProcess, peer: MidiPeer, midi_names: dict[str, str]) -> MidiPeer:
    """The test's MIDI device connected to the bridge's ports, MIDI flowing both ways."""
    peer.connect(midi_names["input"], midi_names["output"])
    wait_until(lambda: show.get_json("/healthz")["adapters"]["midi"]["input"]["state"] == "connected", what="MIDI")

    def flows() -> bool:
        peer.send(cc(1, 2, 3))
        return bool(show.get_json("/api/values")["slider2"] == 1)  # 3/127 of 0-50, stepped: 1

    wait_until(flows, what="MIDI into the bridge")  # a JACK connection takes effect a cycle or more later
    return peer


def open_drawer(page: Page) -> None:
    page.locator("#monitor-toggle").click()
    expect(page.locator("#monitor")).to_be_visible()
    page.wait_for_function("document.getElementById('monitor').dataset.open === 'true'")


def rows(page: Page, visible_only: bool = True) -> list[dict[str, Any]]:
    """The drawer's rows of messages, newest first: the fields each shows (its notes left out)."""
    found: list[dict[str, Any]] = page.evaluate(
        """(visible) => Array.from(document.querySelectorAll('#monitor-log tbody tr'))
            .filter((row) => (!visible || !row.hidden) && row.dataset.transport !== 'monitor')
            .map((row) => ({
                transport: row.dataset.transport, dir: row.dataset.dir, control: row.dataset.control,
                cells: Array.from(row.cells).map((td) => td.textContent),
            }))""",
        visible_only,
    )
    return found


def wait_row(page: Page, match: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    def hit() -> dict[str, Any] | None:
        return next((row for row in rows(page) if match(row)), None)

    return wait_until(hit, what=what)  # type: ignore[no-any-return]


# -- The drawer --------------------------------------------------------------------------


def test_the_drawer_shows_osc_from_oscsend_and_a_midi_cc_over_jack(
    show: BridgeProcess, pages: Pages, osc_port: int, linked: MidiPeer, midi_names: dict[str, str]
) -> None:
    page = pages.open(show.url)
    open_drawer(page)
    oscsend(osc_port, "/slider1", "f", 12.0)
    row = wait_row(
        page, lambda r: r["transport"] == "osc/udp" and r["cells"][4] == "/slider1" and r["dir"] == "in", "OSC in"
    )
    time_, direction, transport, peer, address, args, control = row["cells"]
    assert direction == "↓ in" and transport == "osc/udp" and control == "slider1"
    assert peer.startswith("127.0.0.1:") and address == "/slider1" and args == "12"
    assert len(time_) == len("12:34:56.789")
    # The change went out to the pages, the OSC target and the MIDI device: each says so.
    wait_row(page, lambda r: r["transport"] == "web" and r["cells"][4] == "update value" and r["control"] == "slider1",
             "web out")  # fmt: skip
    wait_row(page, lambda r: r["transport"] == "osc/udp" and r["dir"] == "out" and r["control"] == "slider1", "OSC out")
    out = wait_row(page, lambda r: r["transport"] == "midi" and r["dir"] == "out" and r["control"] == "slider1",
                   "MIDI out")  # fmt: skip
    assert out["cells"][3] == midi_names["output"] or midi_names["output"] in out["cells"][3]
    assert out["cells"][4:6] == ["control_change", "ch 1 · control 1 · value 30"]  # 12 of 0-50 on 0-127

    linked.send(cc(1, 2, 100))
    row = wait_row(page, lambda r: r["transport"] == "midi" and r["dir"] == "in" and "value 100" in r["cells"][5],
                   "MIDI in")  # fmt: skip
    assert row["cells"][4] == "control_change" and row["cells"][5] == "ch 1 · control 2 · value 100"
    assert row["control"] == "slider2" and midi_names["input"] in row["cells"][3]
    # And the targets' states: the OSC target and both MIDI ports.
    targets = page.locator("#monitor-targets li")
    expect(targets.filter(has_text="midi input")).to_contain_text("connected")
    expect(targets.filter(has_text="osc/udp 127.0.0.1:")).not_to_have_count(0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "monitor.png"))


def test_the_filter_and_the_transport_choice_hide_other_rows(
    show: BridgeProcess, pages: Pages, osc_port: int, linked: MidiPeer
) -> None:
    page = pages.open(show.url)
    open_drawer(page)
    oscsend(osc_port, "/slider1", "f", 20.0)
    oscsend(osc_port, "/txt1", "s", "cue 42")
    linked.send(cc(1, 2, 64))
    wait_row(page, lambda r: r["transport"] == "midi" and r["dir"] == "in" and "value 64" in r["cells"][5], "MIDI in")
    wait_row(page, lambda r: r["cells"][4] == "/txt1", "the text over OSC")
    assert {r["transport"] for r in rows(page)} >= {"osc/udp", "midi", "web"}

    page.locator("#monitor-filter").fill("cue 42")
    shown = rows(page)
    assert shown and all("cue 42" in "".join(r["cells"]) for r in shown)
    assert {r["control"] for r in shown} == {"txt1"}
    expect(page.locator("#monitor-count")).to_contain_text(" of ")

    page.locator("#monitor-filter").fill("")
    page.locator("#monitor-transport").select_option("midi")
    shown = rows(page)
    assert shown and {r["transport"] for r in shown} == {"midi"}
    hidden = rows(page, visible_only=False)
    assert len(hidden) > len(shown)  # the others are still there, hidden
    page.locator("#monitor-transport").select_option("osc")
    assert {r["transport"] for r in rows(page)} == {"osc/udp"}


def test_pause_holds_new_rows_back_until_resume(show: BridgeProcess, pages: Pages, osc_port: int) -> None:
    page = pages.open(show.url)
    open_drawer(page)
    oscsend(osc_port, "/slider2", "f", 5.0)
    wait_row(page, lambda r: r["cells"][4] == "/slider2" and r["cells"][5] == "5", "the first message")
    page.locator("#monitor-pause").click()
    expect(page.locator("#monitor-pause")).to_have_attribute("aria-pressed", "true")
    before = len(rows(page, visible_only=False))
    oscsend(osc_port, "/slider2", "f", 6.0)
    # It reached the page (counted as waiting) and is not shown.
    page.wait_for_function("/paused, [1-9]\\d* new/.test(document.getElementById('monitor-count').textContent)")
    assert len(rows(page, visible_only=False)) == before
    assert not any(r["cells"][5] == "6" and r["cells"][4] == "/slider2" for r in rows(page))
    page.locator("#monitor-pause").click()
    wait_row(page, lambda r: r["cells"][4] == "/slider2" and r["cells"][5] == "6", "the held message, once resumed")
    assert len(rows(page, visible_only=False)) > before


def test_on_a_phone_the_drawer_shows_whole_rows_and_nothing_scrolls_sideways(
    show: BridgeProcess, pages: Pages, osc_port: int
) -> None:
    """At 390 px the table ran 520 px wide (the control column out of sight), and the tools took three rows."""
    page = pages.open(show.url, viewport=PHONE, touch=True)
    open_drawer(page)
    oscsend(osc_port, "/slider1", "f", 21.0)
    oscsend(osc_port, "/a/long/address/that/no/control/of/this/show/has", "s", "and a long string argument")
    wait_row(page, lambda r: r["cells"][4].startswith("/a/long/"), "the long address")
    wait_row(page, lambda r: r["cells"][4] == "/slider1" and r["cells"][5] == "21", "the fader's message")
    scroll = page.locator(".monitor-scroll")
    assert scroll.evaluate("(box) => box.scrollWidth <= box.clientWidth")
    box = scroll.bounding_box()
    assert box is not None
    row = page.locator("#monitor-log tbody tr", has_text="/slider1").first
    for cell in ("m-time", "m-what", "m-args", "m-control"):  # every part of a row in sight, side to side
        found = row.locator(f".{cell}").bounding_box()
        assert found is not None and box["x"] <= found["x"] and found["x"] + found["width"] <= box["x"] + box["width"]
    # A long argument leaves the row's parts their room: the peer beside the time, the control readable (they
    # were squeezed to a letter a line, a reviewer's case).
    oscsend(osc_port, "/txt1", "s", "1/14 Act one opening, the long cue text a desk sends with its label " * 3)
    wait_row(page, lambda r: r["cells"][4] == "/txt1", "the long text's message")
    # (Measured in one go: rows keep coming in above it while other tests' messages arrive.)
    time_box, peer, control = page.evaluate(
        """() => {
            const rows = [...document.querySelectorAll('#monitor-log tbody tr')];
            const row = rows.find((r) => r.textContent.includes('/txt1'));
            return ['m-time', 'm-peer', 'm-control'].map((cell) => {
                const box = row.querySelector('.' + cell).getBoundingClientRect();
                return {y: box.y, height: box.height};
            });
        }"""
    )
    assert abs(peer["y"] - time_box["y"]) < 1 and peer["height"] <= time_box["height"] * 1.5  # one line, beside it
    assert control["height"] <= time_box["height"] * 1.5  # "txt1" on one line
    assert scroll.evaluate("(box) => box.scrollWidth <= box.clientWidth")
    # The filter and Close share the first row of tools.
    search, close = page.locator("#monitor-filter").bounding_box(), page.locator("#monitor-close").bounding_box()
    assert search is not None and close is not None and abs(search["y"] - close["y"]) < 1
    assert close["x"] + close["width"] <= PHONE["width"]


def test_activity_lights_follow_osc_in_and_out(show: BridgeProcess, pages: Pages, osc_port: int) -> None:
    page = pages.open(show.url)
    light_in = page.locator('#activity [data-light="osc_in"]')
    light_out = page.locator('#activity [data-light="osc_out"]')
    expect(light_in).to_have_attribute("data-on", "false")
    sent = 0

    def lit() -> bool:
        nonlocal sent
        sent += 1
        oscsend(osc_port, "/slider2", "f", float(sent % 50))
        # In, and out: each change went on to the OSC target.
        on = "(name) => document.querySelector(`#activity [data-light=\"${name}\"]`).dataset.on === 'true'"
        return bool(page.evaluate(on, "osc_in") and page.evaluate(on, "osc_out"))

    wait_until(lit, what="the OSC lights")
    expect(light_in).to_have_attribute("data-on", "false")  # and off again once nothing comes
    expect(light_out).to_have_attribute("data-on", "false")


def test_a_join_link_opened_from_another_site_lets_the_phone_in(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    """A join link in a chat or a cue sheet (another site) landed on "Key needed", and a reload did not help:
    the key's cookie was SameSite=Strict, and the redirect that follows it is part of a cross-site visit
    (a reviewer's case)."""
    proc = bridge_factory(write_config(tmp_path, extra='key = "stage-key-1"'))
    sheet = tmp_path / "sheet"
    sheet.mkdir()
    (sheet / "index.html").write_text(f'<a id="join" href="{proc.url}/?key=stage-key-1">Join the show</a>')
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(sheet)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # Another site: a host name of its own (the bridge is 127.0.0.1).
        page = pages.open(f"http://{TEST_HOST}:{server.server_address[1]}/", connected=False)
        page.click("#join")
        wait_synced(page)
        assert page.locator("h1", has_text="Key needed").count() == 0
        page.reload()
        wait_synced(page)
    finally:
        server.shutdown()
        server.server_close()


def test_a_viewer_has_no_drawer_and_is_refused_the_monitor(
    tmp_path: Path, bridge_factory: Start, pages: Pages, client_factory: Callable[..., Client]
) -> None:
    proc = bridge_factory(write_config(tmp_path, extra='key = "stage-key-1"\nviewer_key = "watch-key-1"'))
    viewer = pages.open(proc.url + "/?key=watch-key-1")
    assert viewer.locator("#monitor").count() == 0 and viewer.locator("#monitor-toggle").count() == 0
    assert viewer.locator("#activity").count() == 0
    import socketio

    sio = socketio.Client()
    sio.connect(proc.url, auth={"key": "watch-key-1"}, wait_timeout=10)
    try:
        answer = sio.call("monitor open", None, timeout=10)
        assert answer["ok"] is False and "control role" in answer["error"]
        assert sio.call("monitor lights", None, timeout=10)["ok"] is False
    finally:
        sio.shutdown()


# -- Keep awake ------------------------------------------------------------------------------


def awake(page: Page) -> str:
    return str(page.evaluate("document.documentElement.dataset.awake"))


def test_keep_awake_holds_a_wake_lock_on_https_and_takes_it_again(
    tmp_path: Path, bridge_factory: Start, pages: Pages, certificate: tuple[Path, Path]
) -> None:
    """Headless Chromium grants and holds a screen wake lock on a secure origin (checked: released is false)."""
    proc = bridge_factory(secure(write_config(tmp_path), certificate))
    page = pages.open(f"https://{TEST_HOST}:{proc.port}/")
    assert page.evaluate("window.isSecureContext") is True  # by HTTPS alone: the name is not localhost
    page.wait_for_function("document.documentElement.dataset.awake === 'held'")
    assert page.evaluate("window.stageBridgeShow.wakeLock().released") is False
    expect(page.locator("#awake-toggle")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#awake-note")).to_be_hidden()

    # The browser lets go when the page is hidden; shown again, the page takes it again.
    requests = page.evaluate("window.stageBridgeShow.wakeLockRequests()")
    page.evaluate("window.stageBridgeShow.wakeLock().release()")
    page.wait_for_function("document.documentElement.dataset.awake === 'released'")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_function("document.documentElement.dataset.awake === 'held'")
    assert page.evaluate("window.stageBridgeShow.wakeLockRequests()") == requests + 1
    assert page.evaluate("window.stageBridgeShow.wakeLock().released") is False

    # Switched off: released, and remembered across a reload.
    page.locator("#awake-toggle").click()
    page.wait_for_function("document.documentElement.dataset.awake === 'off'")
    expect(page.locator("#awake-toggle")).to_have_attribute("aria-pressed", "false")
    page.reload()
    page.wait_for_function("document.documentElement.dataset.awake === 'off'")
    assert page.evaluate("window.stageBridgeShow.wakeLockRequests()") == 0
    page.locator("#awake-toggle").click()
    page.wait_for_function("document.documentElement.dataset.awake === 'held'")


def test_keep_awake_on_https_without_the_wake_lock_api_does_not_ask_for_https(
    tmp_path: Path, bridge_factory: Start, pages: Pages, certificate: tuple[Path, Path]
) -> None:
    """A browser on HTTPS without the Wake Lock API (iOS Safari before 16.4; here Chromium with the API taken
    away before the page runs) was told the page is not on HTTPS, and to serve it with TLS (a reviewer's case)."""
    proc = bridge_factory(secure(write_config(tmp_path), certificate))
    page = pages.open(
        f"https://{TEST_HOST}:{proc.port}/",
        viewport=PHONE,
        touch=True,
        prepare=lambda context: context.add_init_script("delete Navigator.prototype.wakeLock;"),
    )
    assert page.evaluate("window.isSecureContext && !('wakeLock' in navigator)") is True
    page.wait_for_function("document.documentElement.dataset.awake === 'fallback'")
    expect(page.locator("#awake-note")).to_contain_text("no Wake Lock")
    expect(page.locator("#awake-note")).not_to_contain_text("HTTPS")


def test_keep_awake_on_plain_http_plays_a_silent_video_and_says_why(show: BridgeProcess, pages: Pages) -> None:
    page = pages.open(f"http://{TEST_HOST}:{show.port}/", viewport=PHONE, touch=True)
    assert page.evaluate("window.isSecureContext") is False  # as a phone on the LAN address
    assert page.evaluate("'wakeLock' in navigator") is False
    page.wait_for_function("document.documentElement.dataset.awake === 'fallback'")
    expect(page.locator("#awake-note")).to_be_visible()
    expect(page.locator("#awake-note")).to_contain_text("not on HTTPS")
    # Read once, it took a phone's screen for good: OK puts it away, and it stays away after a reload.
    page.locator("#awake-note .awake-note-ok").click()
    expect(page.locator("#awake-note")).to_be_hidden()
    page.reload()
    page.wait_for_function("document.documentElement.dataset.awake === 'fallback'")
    expect(page.locator("#awake-note")).to_be_hidden()
    page.wait_for_function("(() => { const v = document.getElementById('awake-video'); return v && !v.paused; })()")
    tracks = page.evaluate("document.getElementById('awake-video').srcObject.getTracks().map((t) => t.kind).sort()")
    assert tracks == ["audio", "video"]  # drawn and made silent in the page: nothing fetched
    assert page.evaluate("window.stageBridgeShow.wakeLockRequests()") == 0
    page.locator("#awake-toggle").click()
    page.wait_for_function("document.documentElement.dataset.awake === 'off'")
    assert page.locator("#awake-video").count() == 0
    expect(page.locator("#awake-note")).to_be_hidden()


# -- Full screen and the home-screen app -------------------------------------------------------


def test_the_full_screen_button_enters_and_leaves_full_screen(show: BridgeProcess, pages: Pages) -> None:
    page = pages.open(show.url)
    button = page.locator("#fullscreen-toggle")
    expect(button).to_be_visible()
    button.click()
    page.wait_for_function("document.fullscreenElement === document.documentElement")
    expect(button).to_have_attribute("aria-pressed", "true")
    button.click()
    page.wait_for_function("document.fullscreenElement === null")
    expect(button).to_have_attribute("aria-pressed", "false")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_the_manifest_and_apple_tags_make_a_full_screen_home_screen_app(tmp_path: Path, bridge_factory: Start) -> None:
    proc = bridge_factory(write_config(tmp_path, extra='key = "stage-key-1"'))
    # Browsers fetch the manifest without cookies: it is served without a key, like the icons.
    with urllib.request.urlopen(proc.url + "/manifest.webmanifest", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/manifest+json")
        manifest = json.loads(response.read())
    assert manifest["display"] == "fullscreen" and manifest["start_url"] == "/"
    assert manifest["name"] == "Stage Bridge" and manifest["theme_color"] == "#0b0d10"
    sizes = {}
    for icon in manifest["icons"]:
        with urllib.request.urlopen(proc.url + icon["src"], timeout=5) as response:
            data = response.read()
        if icon["type"] == "image/png":
            sizes[icon["purpose"], icon["sizes"]] = png_size(data)
    assert sizes == {
        ("any", "192x192"): (192, 192),
        ("any", "512x512"): (512, 512),
        ("maskable", "512x512"): (512, 512),
    }
    request = urllib.request.Request(proc.url + "/", headers={"Authorization": "Bearer stage-key-1"})
    with urllib.request.urlopen(request, timeout=5) as response:
        page = response.read().decode()
    for tag in (
        '<link rel="manifest" href="/manifest.webmanifest">',
        '<meta name="apple-mobile-web-app-capable" content="yes">',
        '<meta name="apple-mobile-web-app-status-bar-style" content="black-translucent">',
        '<link rel="apple-touch-icon" href="/static/icons/apple-touch-icon.png">',
    ):
        assert tag in page
    with urllib.request.urlopen(proc.url + "/static/icons/apple-touch-icon.png", timeout=5) as response:
        assert png_size(response.read()) == (180, 180)


def test_a_page_opened_as_a_home_screen_app_hides_the_full_screen_button(show: BridgeProcess, pages: Pages) -> None:
    def as_app(context: Any) -> None:
        # What a browser reports for a page started from the home screen (display: fullscreen).
        context.add_init_script(
            "const real = window.matchMedia.bind(window);"
            "window.matchMedia = (q) => q.includes('display-mode') ? { matches: true, media: q } : real(q);"
        )

    page = pages.open(show.url, viewport=PHONE, touch=True, prepare=as_app)
    assert page.evaluate("document.documentElement.dataset.app") == "true"
    expect(page.locator("#fullscreen-toggle")).to_be_hidden()


# -- Themes ----------------------------------------------------------------------------------------


def test_a_theme_is_the_pages_and_follows_a_config_save(tmp_path: Path, bridge_factory: Start, pages: Pages) -> None:
    config = write_config(tmp_path)
    plain = config.read_text()
    proc = bridge_factory(config)
    page = pages.open(proc.url)
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(11, 13, 16)"
    for theme, background, bar in (("light", "rgb(238, 240, 243)", "#eef0f3"), ("contrast", "rgb(0, 0, 0)", "#000000")):
        config.write_text(plain.replace("[server]\n", f'[server]\ntheme = "{theme}"\n'))
        page.wait_for_function("(t) => document.documentElement.dataset.theme === t", arg=theme)
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == background
        assert page.evaluate("document.querySelector('meta[name=theme-color]').content") == bar
        fresh = pages.open(proc.url)
        assert fresh.evaluate("document.documentElement.dataset.theme") == theme
        assert fresh.evaluate("getComputedStyle(document.body).backgroundColor") == background


# -- Scene files from the page ---------------------------------------------------------------------


def test_scenes_are_exported_and_imported_from_the_scene_bar(
    tmp_path: Path, bridge_factory: Start, pages: Pages
) -> None:
    proc = bridge_factory(write_config(tmp_path))
    proc.put_values(slider1=11)
    assert proc.put_json("/api/scenes/Intro", {})[0] == 200
    page = pages.open(proc.url)
    with page.expect_download() as download:
        page.locator("#scene-export").click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert download.value.suggested_filename.startswith("stage-bridge-scenes-")
    assert exported["scenes"]["Intro"]["values"]["slider1"] == 11

    exported["scenes"]["Finale"] = {"values": {"slider1": 44, "gone": 3}}
    upload = tmp_path / "scenes.json"
    upload.write_text(json.dumps(exported))
    page.locator("#scene-import").set_input_files(str(upload))
    expect(page.locator("#scene-status")).to_contain_text("Imported 2 scenes (replaced: Intro)")
    expect(page.locator("#scene-status")).to_contain_text("Finale")  # it names a control this show lacks
    expect(page.locator('#scene-list [data-scene="Finale"]')).to_be_visible()
    page.locator('#scene-list [data-scene="Finale"]').click()
    wait_until(lambda: proc.get_json("/api/values")["slider1"] == 44, what="the imported scene recalled")

    upload.write_text('{"format": "something else", "scenes": {}}')
    page.locator("#scene-import").set_input_files(str(upload))
    expect(page.locator("#scene-status")).to_contain_text("Not imported: not a scenes file")


def test_only_the_lights_of_what_the_config_has_are_shown(tmp_path: Path, bridge_factory: Start, pages: Pages) -> None:
    # The MIDI lights stood in the header of a show with no [midi], always dark.
    port = free_port(socket.SOCK_DGRAM)
    proc = bridge_factory(write_config(tmp_path, extra=f'[osc]\nlisten = "127.0.0.1:{port}"\n'))
    page = pages.open(proc.url)
    light = page.locator('#activity [data-light="osc_in"]')
    expect(light).to_be_visible()
    expect(page.locator('#activity [data-light="midi_in"]')).to_be_hidden()
    expect(page.locator('#activity [data-light="midi_out"]')).to_be_hidden()
    # Lit while OSC comes in; the bridge gone, the page shows nothing flowing (it stayed lit).
    sent = 0

    def lit() -> bool:
        nonlocal sent
        sent += 1
        oscsend(port, "/slider2", "f", float(sent % 50))
        return light.get_attribute("data-on") == "true"

    wait_until(lit, what="the OSC in light")
    proc.stop()
    expect(light).to_have_attribute("data-on", "false")
