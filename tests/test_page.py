"""The stage page in a real browser: Debian's Chromium, headless, against the real server on loopback.

The tests marked ``both`` run twice: over plain HTTP, and over HTTPS with
``tls = "auto"`` (Socket.IO over wss), Chromium accepting the test
certificate by its public key.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from pythonosc.udp_client import SimpleUDPClient

from tests.browser import (
    PHONE,
    SCREENSHOTS,
    TABLET,
    Pages,
    Touch,
    centre,
    clear_hooks,
    fader_point,
    hooks,
    is_loopback,
    shown,
    value_text,
    wait_shows,
    wait_state,
    wait_synced,
)
from tests.helpers import BridgeProcess, Client, free_port, secure, wait_until, write_config

Connect = Callable[[str], Client]
#: Run once over HTTP and once over HTTPS (the module's ``stage`` for each, or the test's own bridge).
both = pytest.mark.parametrize("scheme", ["http", "https"], indirect=True)


@pytest.fixture(scope="module")
def scheme(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "http"))


# The ids the issue names, in groups, with units and decimals, as a show would have them.
PAGE_CONTROLS = """
[[controls]]
id = "slider1"
type = "range"
label = "Front wash"
min = 0
max = 50
step = 1
value = 25
group = "Lights"
touch = "absolute"  # a press jumps to the finger here (relative touch is tested in test_surface_page.py)

[[controls]]
id = "slider2"
type = "range"
label = "Back light"
min = 0
max = 50
step = 1
value = 0
group = "Lights"

[[controls]]
id = "toggle1"
type = "toggle"
label = "Haze"
group = "Lights"

[[controls]]
id = "master"
type = "range"
label = "Master"
min = -60
max = 6
step = 0.5
value = -6
unit = "dB"
decimals = 1
group = "Sound"

[[controls]]
id = "pan"
type = "range"
label = "Pan"
min = -1.0
max = 1.0
value = 0.0
group = "Sound"

[[controls]]
id = "txt1"
type = "text"
label = "Next cue"
value = "Scene 1"
group = "Cues"

[[controls]]
id = "button1"
type = "button"
label = "GO"
group = "Cues"

[[controls]]
id = "button2"
type = "button"
label = "Stop"
group = "Cues"
"""


@pytest.fixture(scope="module")
def osc_port() -> int:
    return free_port(socket.SOCK_DGRAM)


@pytest.fixture(scope="module")
def stage(
    tmp_path_factory: pytest.TempPathFactory, osc_port: int, scheme: str, certificate: tuple[Path, Path]
) -> Iterator[BridgeProcess]:
    """One bridge for the module (with OSC in), one more over HTTPS; each test sets the values it starts from."""
    folder = tmp_path_factory.mktemp("stage")
    port = osc_port if scheme == "http" else free_port(socket.SOCK_DGRAM)
    osc = f'[osc]\nlisten = "127.0.0.1:{port}"\ntargets = []\n'
    config = write_config(folder, extra=osc, controls=PAGE_CONTROLS)
    if scheme == "https":
        secure(config, certificate)
    proc = BridgeProcess(config).start()
    proc.osc_port = port  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def over_tls(page: Page, stage: BridgeProcess) -> None:
    """Under HTTPS, the page and its Socket.IO connection are encrypted: https: and a WebSocket over wss."""
    if stage.url.startswith("https://"):
        assert page.evaluate("location.protocol") == "https:"
        page.wait_for_function("window.stageBridge.socket.io.engine.transport.name === 'websocket'")


def stored(server: BridgeProcess, cid: str) -> object:
    return server.get_json("/api/values")[cid]


# -- Two pages -------------------------------------------------------------------


@both
def test_mouse_drag_on_a_fader_moves_it_on_another_page(stage: BridgeProcess, pages: Pages) -> None:
    stage.put_values(slider1=25)
    a, b = pages.open(stage.url), pages.open(stage.url)
    over_tls(a, stage)
    x, y = fader_point(a, "slider1", 0.5)
    x_end, _ = fader_point(a, "slider1", 0.8)
    a.mouse.move(x, y)
    a.mouse.down()
    a.mouse.move(x_end, y, steps=15)
    a.mouse.up()

    final = shown(a, "slider1")
    assert final > 30
    wait_shows(b, "slider1", final)
    wait_until(lambda: stored(stage, "slider1") == final, what="the drag's last value stored")
    assert value_text(b, "slider1") == str(final)
    # Several values went out during the drag, and the last one is what A shows.
    sent = [event["data"] for event in hooks(a, "bridge:send", "slider1")]
    assert len(sent) >= 2 and sent[-1] == final
    # B showed each value it got before telling scripts about it.
    updates = hooks(b, "bridge:update", "slider1")
    assert updates[-1]["data"] == final and all(u["shown"] == u["data"] for u in updates)


def test_touch_drag_on_a_fader_moves_it_on_another_page(stage: BridgeProcess, pages: Pages) -> None:
    stage.put_values(slider1=25)
    phone = pages.open(stage.url, viewport=PHONE, touch=True)
    laptop = pages.open(stage.url)
    x, y = fader_point(phone, "slider1", 0.5)
    x_end, _ = fader_point(phone, "slider1", 0.2)
    finger = Touch(phone)
    finger.down(1, x, y)
    finger.move(1, x_end, y, steps=12)
    expect(phone.locator('[data-control="slider1"]')).to_have_class(re.compile(r"\bheld\b"))
    finger.up(1)

    final = shown(phone, "slider1")
    assert final < 20
    wait_shows(laptop, "slider1", final)
    wait_until(lambda: stored(stage, "slider1") == final, what="the touch gesture's last value stored")
    expect(phone.locator('[data-control="slider1"]')).not_to_have_class(re.compile(r"\bheld\b"))


def test_outgoing_values_are_sent_once_per_frame_and_the_last_always(stage: BridgeProcess, pages: Pages) -> None:
    stage.put_values(slider2=0)
    a = pages.open(stage.url)
    # Thirty input events in one task, as a fast finger on a slow phone gives: one frame, one send.
    a.evaluate(
        """() => {
            const el = document.getElementById("slider2");
            for (let v = 1; v <= 30; v++) {
                el.value = String(v);
                el.dispatchEvent(new Event("input", { bubbles: true }));
            }
        }"""
    )
    wait_until(lambda: stored(stage, "slider2") == 30, what="slider2 at 30")
    assert [e["data"] for e in hooks(a, "bridge:send", "slider2")] == [30]


@both
def test_http_api_and_osc_update_every_page(stage: BridgeProcess, pages: Pages) -> None:
    osc_port = stage.osc_port  # type: ignore[attr-defined]
    stage.put_values(slider2=0, master=-6)
    a, b = pages.open(stage.url), pages.open(stage.url, viewport=PHONE, touch=True)
    stage.put_values(slider2=33, master=-12.5)
    for page in (a, b):
        wait_shows(page, "slider2", 33)
        wait_shows(page, "master", -12.5)
        assert value_text(page, "master") == "-12.5 dB"
        assert page.locator("#master").get_attribute("aria-valuetext") == "-12.5 dB"

    SimpleUDPClient("127.0.0.1", osc_port).send_message("/slider2", 12.0)
    for page in (a, b):
        wait_shows(page, "slider2", 12)
        assert [e["data"] for e in hooks(page, "bridge:update", "slider2")][-2:] == [33, 12]
        assert hooks(page, "bridge:send") == []  # shown, never sent back


# -- First paint -----------------------------------------------------------------


@both
def test_late_page_shows_current_values_at_first_paint(stage: BridgeProcess, pages: Pages) -> None:
    stage.put_values(slider1=31, master=-20.5, pan=-0.25, toggle1=1, txt1='Scene "7" <storm>')
    html = stage.get_text("/")
    assert 'id="slider1"' in html and 'value="31"' in html and "&lt;storm&gt;" in html

    def no_socket(context: BrowserContext) -> None:
        # Without the Socket.IO client no event can arrive: all the page shows comes from the HTML.
        context.route("**/socket.io.min.js", lambda route: route.abort())

    late = pages.open(stage.url, viewport=PHONE, prepare=no_socket, connected=False)
    late.wait_for_load_state("load")
    assert shown(late, "slider1") == 31
    assert value_text(late, "slider1") == "31"
    assert value_text(late, "master") == "-20.5 dB"
    assert value_text(late, "pan") == "-0.25"
    assert shown(late, "toggle1") == 1 and shown(late, "button1") == 0
    assert shown(late, "txt1") == 'Scene "7" <storm>'
    assert hooks(late, "bridge:update") == []
    assert not any("/socket.io/" in url for url in pages.requests)
    # And the page says it has no live connection rather than pretending.
    wait_state(late, "offline")
    expect(late.locator("#stale-note")).to_be_visible()


# -- Connection ------------------------------------------------------------------


@pytest.mark.parametrize("secured", [False, True], ids=["http", "https"])
def test_server_restart_is_shown_and_survived(
    bridge_factory: Callable[..., BridgeProcess],
    tmp_path: Path,
    pages: Pages,
    secured: bool,
    certificate: tuple[Path, Path],
) -> None:
    config = write_config(tmp_path, controls=PAGE_CONTROLS)
    server = bridge_factory(secure(config, certificate) if secured else config)
    page = pages.open(server.url, viewport=PHONE, touch=True)
    expect(page.locator("#rtt")).to_be_visible()
    assert page.evaluate("document.documentElement.dataset.stale") == "false"

    server.stop()
    wait_state(page, "reconnecting")
    assert page.evaluate("document.documentElement.dataset.stale") == "true"
    expect(page.locator("#stale-note")).to_be_visible()
    expect(page.locator("#rtt")).to_be_hidden()
    wait_state(page, "offline")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "phone-offline.png"))

    # While it is down, the saved state changes: the page must show it once back.
    state_file = tmp_path / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    state["values"]["slider1"] = 7
    state_file.write_text(json.dumps(state), encoding="utf-8")
    server.start()
    wait_state(page, "connected")
    wait_shows(page, "slider1", 7)
    expect(page.locator("#stale-note")).to_be_hidden()
    assert page.evaluate("document.documentElement.dataset.stale") == "false"
    server.put_values(slider1=9)
    wait_shows(page, "slider1", 9)
    states = page.evaluate("window.__connectionStates")
    assert states[:4] == ["connected", "reconnecting", "offline", "connected"]


def test_round_trip_time_and_midi_status_are_shown(stage: BridgeProcess, pages: Pages) -> None:
    page = pages.open(stage.url)
    expect(page.locator("#rtt")).to_have_text(re.compile(r"^(\d+|<1) ms$"))
    assert page.evaluate("Number(document.documentElement.dataset.rtt)") >= 0
    # No MIDI adapter in this config: nothing pushed, nothing shown.
    expect(page.locator("#midi-status")).to_be_hidden()
    status = {
        "input": {"name": "nanoKONTROL2", "port": "nanoKONTROL2:0", "state": "connected"},
        "output": {"name": "bridge", "port": None, "state": "missing"},
    }
    page.evaluate(
        "(status) => window.stageBridge.socket.listeners('midi status').forEach((f) => f(status))",
        status,
    )
    box = page.locator("#midi-status")
    expect(box).to_be_visible()
    expect(box.locator('[data-dir="input"]')).to_have_attribute("data-state", "connected")
    expect(box.locator('[data-dir="input"]')).to_contain_text("nanoKONTROL2")
    expect(box.locator('[data-dir="output"]')).to_have_attribute("data-state", "missing")


# -- Held controls ---------------------------------------------------------------


def test_a_held_fader_is_not_moved_from_elsewhere_and_settles_on_release(stage: BridgeProcess, pages: Pages) -> None:
    stage.put_values(slider1=25)
    a, b = pages.open(stage.url), pages.open(stage.url)
    x, y = fader_point(a, "slider1", 0.2)
    a.mouse.move(x, y)
    a.mouse.down()  # held from here on, never moved
    held = shown(a, "slider1")
    assert held == 10
    wait_until(lambda: stored(stage, "slider1") == held, what="the pressed value stored")
    wait_shows(b, "slider1", held)

    b.locator("#slider1").focus()
    b.keyboard.press("End")
    b.keyboard.press("ArrowLeft")
    wait_until(lambda: stored(stage, "slider1") == 49, what="B's value stored")
    a.wait_for_function("window.stageBridge.values().slider1 === 49")
    expect(a.locator('[data-control="slider1"]')).to_have_attribute("data-remote", "pending")
    assert shown(a, "slider1") == held
    assert value_text(a, "slider1") == str(held)
    assert hooks(a, "bridge:update", "slider1")[-1]["data"] != 49

    a.mouse.up()
    wait_shows(a, "slider1", 49)
    assert value_text(a, "slider1") == "49"
    last = hooks(a, "bridge:update", "slider1")[-1]
    assert (last["data"], last["shown"]) == (49, 49)
    expect(a.locator('[data-control="slider1"]')).not_to_have_attribute("data-remote", "pending")
    assert stored(stage, "slider1") == 49  # the release sent nothing over B's value


def test_text_is_sent_as_typed_and_held_while_typing(
    stage: BridgeProcess, pages: Pages, client_factory: Connect
) -> None:
    stage.put_values(txt1="Scene 1")
    a, b = pages.open(stage.url), pages.open(stage.url)
    client = client_factory(stage.url)
    a.locator("#txt1").click()
    a.keyboard.press("Control+A")
    a.keyboard.type("Scene 12")
    wait_shows(b, "txt1", "Scene 12")  # debounced, without Enter
    client.wait_value("txt1", "Scene 12")

    client.send("txt1", "Blackout")  # a change from elsewhere while A still types
    a.wait_for_function("window.stageBridge.values().txt1 === 'Blackout'")
    assert shown(a, "txt1") == "Scene 12"
    a.keyboard.type("b")
    a.keyboard.press("Enter")  # Enter sends what A shows
    client.wait_value("txt1", "Scene 12b")
    wait_shows(b, "txt1", "Scene 12b")
    stage.put_values(txt1="Intermission")  # released: updates show even while A has focus
    wait_shows(a, "txt1", "Intermission")


# -- Buttons ---------------------------------------------------------------------


def button_updates(client: Client, cid: str) -> list[object]:
    return [u["data"] for u in client.of("update value") if u["who"] == cid]


@both
def test_button_press_and_release_arrive_as_1_then_0(
    stage: BridgeProcess, pages: Pages, client_factory: Connect
) -> None:
    stage.put_values(button1=0)
    page = pages.open(stage.url)
    client = client_factory(stage.url)
    client.wait_event("snapshot")
    x, y = centre(page, "#button1")

    page.mouse.move(x, y)
    page.mouse.down()
    client.wait_value("button1", 1)
    expect(page.locator("#button1")).to_have_attribute("aria-pressed", "true")
    page.mouse.up()
    client.wait_value("button1", 0)
    assert button_updates(client, "button1") == [1, 0]

    # Pressed, then the pointer slides off while still down: released at once.
    page.mouse.down()
    client.wait_value("button1", 1)
    page.mouse.move(x, y + 200, steps=4)
    client.wait_value("button1", 0)
    expect(page.locator("#button1")).to_have_attribute("aria-pressed", "false")
    page.mouse.up()

    # The keyboard holds it too: Space down is 1, Space up is 0.
    page.locator("#button1").focus()
    page.keyboard.down(" ")
    client.wait_value("button1", 1)
    page.keyboard.up(" ")
    client.wait_value("button1", 0)
    assert button_updates(client, "button1") == [1, 0, 1, 0, 1, 0]


def test_two_fingers_hold_two_buttons_and_sliding_off_releases(
    stage: BridgeProcess, pages: Pages, client_factory: Connect
) -> None:
    stage.put_values(button1=0, button2=0)
    phone = pages.open(stage.url, viewport=PHONE, touch=True)
    client = client_factory(stage.url)
    client.wait_event("snapshot")
    phone.locator('[data-control="button2"]').scroll_into_view_if_needed()
    x1, y1 = centre(phone, "#button1")
    x2, y2 = centre(phone, "#button2")
    assert 0 < y1 < PHONE["height"] and 0 < y2 < PHONE["height"]

    fingers = Touch(phone)
    fingers.down(1, x1, y1)
    fingers.down(2, x2, y2)
    client.wait_value("button1", 1)
    client.wait_value("button2", 1)
    fingers.move(2, x2, y2 + 300, steps=5)  # finger 2 slides off its pad
    client.wait_value("button2", 0)
    assert shown(phone, "button1") == 1  # finger 1 still holds
    fingers.up(2)
    fingers.up(1)
    client.wait_value("button1", 0)
    assert button_updates(client, "button1") == [1, 0]
    assert button_updates(client, "button2") == [1, 0]

    # A tap is a press and a release.
    phone.touchscreen.tap(x1, y1)
    wait_until(lambda: button_updates(client, "button1") == [1, 0, 1, 0], what="a tap on GO")


# -- Hooks and keyboard ----------------------------------------------------------


def test_hooks_follow_updates_and_sends_and_nothing_echoes(
    stage: BridgeProcess, pages: Pages, client_factory: Connect
) -> None:
    stage.put_values(slider2=0, toggle1=0)
    page = pages.open(stage.url)
    client = client_factory(stage.url)
    client.wait_event("snapshot")
    clear_hooks(page)

    client.send("slider2", 17)
    page.wait_for_function("window.__bridgeEvents.length > 0")
    assert hooks(page, "bridge:update") == [{"type": "bridge:update", "who": "slider2", "data": 17, "shown": 17}]

    page.locator("#toggle1").focus()
    page.keyboard.press(" ")
    client.wait_value("toggle1", 1)
    assert hooks(page, "bridge:send") == [{"type": "bridge:send", "who": "toggle1", "data": 1, "shown": 1}]
    # The update from the client was shown and not sent back to anyone.
    assert all(u["who"] != "slider2" for u in client.of("update value"))


def test_keyboard_moves_faders_and_focus_is_visible(stage: BridgeProcess, pages: Pages) -> None:
    stage.put_values(slider1=20, pan=0.0)
    page = pages.open(stage.url)
    stops = []
    for _ in range(8):  # the header's buttons first (Monitor, Awake, Full, Join), then the first fader
        page.keyboard.press("Tab")
        stops.append(page.evaluate("document.activeElement.id"))
        if stops[-1] == "slider1":
            break
    assert stops == ["monitor-toggle", "awake-toggle", "fullscreen-toggle", "join-toggle", "slider1"]
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    wait_until(lambda: stored(stage, "slider1") == 23, what="three steps up")
    page.keyboard.press("Home")
    wait_until(lambda: stored(stage, "slider1") == 0, what="Home")
    page.locator("#pan").focus()
    page.keyboard.press("End")
    wait_until(lambda: stored(stage, "pan") == 1.0, what="pan at its end")
    assert value_text(page, "pan") == "1.00"


# -- Joining, offline, looks -------------------------------------------------------


@both
def test_join_panel_shows_the_qr_code_and_the_address(stage: BridgeProcess, pages: Pages) -> None:
    page = pages.open(stage.url, viewport=PHONE, touch=True)
    panel = page.locator("#join-panel")
    expect(panel).to_be_hidden()
    page.locator("#join-toggle").click()
    expect(panel).to_be_visible()
    expect(page.locator("#join-toggle")).to_have_attribute("aria-expanded", "true")
    qr = page.locator("#join-qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None and box["width"] >= 150 and box["width"] == box["height"]
    url = stage.get_json("/join")["url"]
    assert url.startswith(stage.url.split(":")[0] + "://")  # https:// under TLS
    expect(page.locator("#join-url")).to_have_text(url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "phone-join.png"))
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()


def test_nothing_is_fetched_beyond_loopback(stage: BridgeProcess, pages: Pages) -> None:
    page = pages.open(stage.url, viewport=PHONE, touch=True)
    page.locator("#join-toggle").click()
    expect(page.locator("#join-qr svg")).to_be_visible()
    expect(page.locator("#rtt")).to_be_visible()
    page.reload()
    wait_synced(page)
    requested = list(pages.requests)
    paths = {url.split("?")[0].rsplit("/", 1)[-1] for url in requested}
    # The recording works: every file the page needs was seen, and all of them on loopback.
    assert {"stage.css", "stage.js", "socket.io.min.js", "icon.svg", "qr.svg", "join"} <= paths
    assert any("/socket.io/" in url for url in requested)
    assert [url for url in requested if not is_loopback(url)] == []


def test_screenshots_and_layout_at_phone_and_tablet_sizes(stage: BridgeProcess, pages: Pages) -> None:
    stage.put_values(slider1=32, slider2=12, toggle1=1, master=-12.5, pan=-0.35, txt1="Scene 4: storm", button1=0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, viewport, touch in (("phone", PHONE, True), ("tablet", TABLET, True)):
        page = pages.open(stage.url, viewport=viewport, touch=touch)
        expect(page.locator("#rtt")).to_be_visible()
        # Fits the width without zooming or sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        # Every target a finger uses is at least 44 px each way.
        sizes = page.evaluate(
            """() => Array.from(document.querySelectorAll(
                    'input[type=range], input[type=text], label.switch, .pad, #join-toggle'))
                .map((el) => {
                    const r = el.getBoundingClientRect();
                    return [el.id || el.className, r.width, r.height];
                })"""
        )
        small = [s for s in sizes if s[1] < 44 or s[2] < 44]
        assert small == [], small
        titles = page.locator(".panel-title").all_inner_texts()
        assert [t.upper() for t in titles] == ["LIGHTS", "SOUND", "CUES"]
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
        page.screenshot(path=str(SCREENSHOTS / f"{name}-full.png"), full_page=True)
    assert (SCREENSHOTS / "phone.png").stat().st_size > 0


# -- Keys ------------------------------------------------------------------------


@pytest.mark.parametrize("secured", [False, True], ids=["http", "https"])
def test_keyed_show_asks_for_the_key_and_a_viewer_page_is_read_only(
    tmp_path: Path,
    bridge_factory: Callable[..., BridgeProcess],
    pages: Pages,
    secured: bool,
    certificate: tuple[Path, Path],
) -> None:
    config = write_config(tmp_path, controls=PAGE_CONTROLS)
    if secured:
        secure(config, certificate)
    config.write_text(
        config.read_text().replace(
            'state_file = "state.json"\n',
            'state_file = "state.json"\nkey = "stage-key-1"\nviewer_key = "watch-key-1"\n',
        )
    )
    proc = bridge_factory(config)
    asking = pages.open(proc.url, connected=False)
    expect(asking.get_by_role("heading", name="Key needed")).to_be_visible()
    asking.get_by_label("Access key").fill("stage-key-1")
    asking.get_by_role("button", name="Join").click()
    wait_synced(asking)
    assert "key=" not in asking.url  # the key now lives in the cookie
    viewer = pages.open(proc.url + "/?key=watch-key-1")
    assert viewer.evaluate("document.documentElement.dataset.role") == "viewer"
    expect(viewer.locator("#slider1")).to_be_disabled()
    expect(viewer.locator("#button1")).to_be_disabled()
    expect(viewer.get_by_role("note")).to_contain_text("View only")
    status, _ = proc.put_json("/api/values/slider1", {"value": 3})
    assert status == 401  # no key on that request
    asking.locator("#slider1").focus()
    asking.keyboard.press("End")
    wait_shows(viewer, "slider1", 50)
