"""The surface in a real browser (Debian's Chromium): relative touch, fine mode, double tap, knobs,
confirm buttons, tabs, displays fed by a desk, and the viewer who moves nothing."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from bridge.web.pages import fixed
from tests.browser import PHONE, Pages, Touch, centre, hooks, wait_shows
from tests.helpers import BridgeProcess, free_port, wait_until, write_config
from tests.osc_tools import OscDump, oscsend

VIEWER = "viewer-key-1"
CONTROL = "control-key-1"

CONTROLS = """
[[controls]]
id = "wash"
type = "range"
min = 0
max = 100
step = 1
value = 50
reset = true
page = "Lights"
group = "Faders"

[[controls]]
id = "level"
type = "range"
orientation = "vertical"
min = 0
max = 100
step = 1
value = 20
page = "Lights"
group = "Strip"

[[controls]]
id = "pan"
type = "knob"
min = -1
max = 1
step = 0.01
value = 0
page = "Lights"
group = "Strip"

[[controls]]
id = "go"
type = "button"
mode = "trigger"
confirm = true
osc = "/go"
on = []
page = "Lights"
group = "Cues"

[[controls]]
id = "bus"
type = "range"
min = -90
max = 10
step = 0.5
value = 0
osc = { address = "/bus/01/mix/fader", curve = [[-90, 0.0], [-60, 0.0625], [-30, 0.25], [-10, 0.5], [10, 1.0]] }
page = "Lights"
group = "Faders"

[[controls]]
id = "freq"
type = "knob"
min = 20
max = 20000
value = 20
osc = { address = "/eq/freq", curve = "log" }
page = "Lights"
group = "Strip"

[[controls]]
id = "talk"
type = "button"
osc = "/talk"
page = "Lights"
group = "Cues"

[[controls]]
id = "list"
type = "select"
options = ["Main", "Sound", "Video"]
page = "Lights"
group = "Cues"

[[controls]]
id = "mute"
type = "toggle"
page = "Lights"
group = "Cues"

[[controls]]
id = "cue_name"
type = "label"
value = "Preshow"
page = "Sound"

[[controls]]
id = "vu"
type = "meter"
min = -60
max = 0
page = "Sound"

[[controls]]
id = "rec"
type = "led"
page = "Sound"

[[controls]]
id = "temp"
type = "led"
colors = [[5, "#ffaa00"], [10, "#ff0000"]]
page = "Sound"

[[controls]]
id = "hidden"
type = "range"
min = 0
max = 10
step = 1
page = "Sound"
label_from = "/names/hidden"
color_from = { address = "/colors/hidden", map = { "1" = "#e0413b", "0" = "" } }
"""


@pytest.fixture(scope="module")
def osc_port() -> int:
    return free_port(socket.SOCK_DGRAM)


@pytest.fixture(scope="module")
def dump() -> Iterator[OscDump]:
    d = OscDump()
    yield d
    d.close()


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory, osc_port: int, dump: OscDump) -> Iterator[BridgeProcess]:
    folder = tmp_path_factory.mktemp("surface")
    extra = (
        f'key = "{CONTROL}"\nviewer_key = "{VIEWER}"\n'
        f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["127.0.0.1:{dump.port}"]\n'
    )
    config = write_config(folder, controls=CONTROLS)
    text = config.read_text(encoding="utf-8").replace('state_file = "state.json"\n', f'state_file = ""\n{extra}', 1)
    config.write_text(text, encoding="utf-8")
    proc = BridgeProcess(config).start()
    yield proc
    proc.stop()


def open_page(pages: Pages, stage: BridgeProcess, key: str = CONTROL, **kwargs: object) -> Page:
    return pages.open(f"{stage.url}/?key={key}", **kwargs)  # type: ignore[arg-type]


def put(stage: BridgeProcess, **values: object) -> None:
    for cid, value in values.items():
        status, body = stage.put_json(f"/api/values/{cid}", {"value": value}, key=CONTROL)
        assert status == 200, body


def stored(stage: BridgeProcess, cid: str) -> object:
    return stage.get_json("/api/values", key=CONTROL)[cid]


def box(page: Page, selector: str) -> dict[str, float]:
    locator = page.locator(selector)
    locator.scroll_into_view_if_needed()
    found = locator.bounding_box()
    assert found is not None
    return found


def track(page: Page, cid: str, fraction: float) -> tuple[float, float]:
    """A point on a horizontal fader's track at ``fraction`` of its travel (the thumb is 30 px wide)."""
    b = box(page, f'[data-control="{cid}"] .fader')
    return b["x"] + 15 + (b["width"] - 30) * fraction, b["y"] + b["height"] / 2


def sent(page: Page, cid: str) -> list[object]:
    return [e["data"] for e in hooks(page, "bridge:send", cid)]


# -- relative touch ----------------------------------------------------------------------


def test_a_tap_away_from_the_thumb_changes_nothing_and_a_drag_moves_from_where_it_is(
    stage: BridgeProcess, pages: Pages
) -> None:
    put(stage, wash=50)
    laptop = open_page(pages, stage)
    x, y = track(laptop, "wash", 0.9)  # far from the thumb at 0.5
    laptop.mouse.click(x, y)
    phone = open_page(pages, stage, viewport=PHONE, touch=True)
    px, py = track(phone, "wash", 0.1)
    phone.touchscreen.tap(px, py)
    assert sent(laptop, "wash") == [] and sent(phone, "wash") == []
    assert stored(stage, "wash") == 50
    # A drag from anywhere moves the value by the distance dragged: +20 % of the travel.
    x0, y0 = track(laptop, "wash", 0.1)
    x1, _ = track(laptop, "wash", 0.3)
    laptop.mouse.move(x0, y0)
    laptop.mouse.down()
    laptop.mouse.move(x1, y0, steps=10)
    laptop.mouse.up()
    wait_until(lambda: stored(stage, "wash") == 70, what="the drag's +20 stored")
    wait_shows(phone, "wash", 70)
    # The first move of the gesture went out at once, the last one too.
    assert sent(laptop, "wash")[-1] == 70 and len(sent(laptop, "wash")) >= 2
    # A touch drag on the phone, downwards by 20 % of its travel.
    finger = Touch(phone)
    sx, sy = track(phone, "wash", 0.8)
    ex, _ = track(phone, "wash", 0.6)
    finger.down(1, sx, sy)
    finger.move(1, ex, sy, steps=8)
    finger.up(1)
    wait_until(lambda: stored(stage, "wash") == 50, what="the touch drag's -20 stored")


def test_fine_mode_and_a_double_tap_back_to_the_default(stage: BridgeProcess, pages: Pages) -> None:
    put(stage, wash=20)
    page = open_page(pages, stage)
    x0, y = track(page, "wash", 0.2)
    x1, _ = track(page, "wash", 0.6)
    page.keyboard.down("Shift")  # fine: a tenth of the speed
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=10)
    page.mouse.up()
    page.keyboard.up("Shift")
    wait_until(lambda: stored(stage, "wash") == 24, what="+40 % of the travel at a tenth: +4")
    phone = open_page(pages, stage, viewport=PHONE, touch=True)
    tx, ty = track(phone, "wash", 0.5)
    phone.touchscreen.tap(tx, ty)
    phone.touchscreen.tap(tx, ty)
    wait_until(lambda: stored(stage, "wash") == 50, what="the double tap's reset to the default 50")
    wait_shows(page, "wash", 50)


def test_a_vertical_fader_and_a_knob_follow_an_upright_drag(stage: BridgeProcess, pages: Pages) -> None:
    put(stage, level=20, pan=0)
    phone = open_page(pages, stage, viewport=PHONE, touch=True)
    fader = box(phone, '[data-control="level"] .fader')
    travel = fader["height"] - 30
    x = fader["x"] + fader["width"] / 2
    y = fader["y"] + fader["height"] / 2
    finger = Touch(phone)
    finger.down(1, x, y)
    finger.move(1, x, y - travel * 0.3, steps=10)  # up by 30 % of the travel
    finger.up(1)
    wait_until(lambda: stored(stage, "level") == 50, what="the vertical fader at 20 + 30")
    laptop = open_page(pages, stage)
    kx, ky = centre(laptop, '[data-control="pan"] .dial')
    laptop.mouse.move(kx, ky)
    laptop.mouse.down()
    laptop.mouse.move(kx, ky - 55, steps=10)  # a quarter of the knob's 220 px travel: +0.5 of its 2
    laptop.mouse.up()
    wait_until(lambda: stored(stage, "pan") == 0.5, what="the knob turned up by a quarter")
    wait_shows(phone, "pan", 0.5)


def test_a_curved_fader_travels_as_its_wire_does(stage: BridgeProcess, pages: Pages, dump: OscDump) -> None:
    """An X32-law fader drew 0 dB at 90 % of its travel (the desk: 75 %) and -90 to -30 dB took 60 % of it;
    a log EQ knob's arrow key went 20 -> 219.8 Hz. Now the travel is the wire's: a drag of a quarter from
    0 dB is -10 dB (0.5 on the wire), a key is a hundredth of the travel (20 -> 21.4 Hz)."""
    put(stage, bus=0, freq=20)
    phone = open_page(pages, stage, viewport=PHONE, touch=True)
    html = phone.evaluate("fetch(location.href).then((answer) => answer.text())")
    assert re.search(r'id="bus"[^>]*style="--p: 0\.7500"', html, re.S)  # at first paint
    fader = phone.locator("#bus")
    b = box(phone, '[data-control="bus"] .fader')
    x, y = b["x"] + 15 + (b["width"] - 30) * 0.75, b["y"] + b["height"] / 2
    Touch(phone).drag(1, (x, y), (x - (b["width"] - 30) * 0.25, y), steps=10)
    wait_until(lambda: stored(stage, "bus") == -10, what="a quarter of the travel down from 0 dB: -10 dB")
    dump.wait_for("/bus/01/mix/fader f 0.500000")
    assert float(fader.evaluate("el => el.style.getPropertyValue('--p')")) == 0.5
    put(stage, bus=0)
    wait_until(lambda: float(fader.evaluate("el => el.style.getPropertyValue('--p')")) == 0.75, what="0 dB, live")
    phone.locator("#freq").focus()
    phone.keyboard.press("ArrowUp")
    wait_until(lambda: stored(stage, "freq") != 20, what="the knob one key up")
    assert 21.3 < float(str(stored(stage, "freq"))) < 21.5


def test_the_first_paint_rounds_as_the_pages_script_does(stage: BridgeProcess, pages: Pages) -> None:
    """A meter at -12.5 with no decimals showed -12 at first paint and -13 once the script ran (Python's
    "%.0f" rounds a half to even, JavaScript's toFixed away from zero)."""
    page = open_page(pages, stage)
    cases = [(-12.5, 0), (12.5, 0), (0.5, 0), (-0.5, 0), (2.675, 2), (1.005, 2), (-0.001, 2), (-2.25, 1), (3, 1)]
    script = "cases => cases.map(([v, p]) => { const t = v.toFixed(p); return Number(t) === 0 ? (0).toFixed(p) : t; })"
    assert page.evaluate(script, cases) == [fixed(v, p) for v, p in cases]


# -- buttons and selects -------------------------------------------------------------------


def test_a_pad_held_on_two_phones_stays_down_until_the_last_finger_lifts(
    stage: BridgeProcess, pages: Pages, dump: OscDump
) -> None:
    """Talkback held on two phones: the first finger that lifted cut it under the second (whose press of a
    pad already down was never sent, so the bridge did not know it held it), and that page showed it on."""
    first = open_page(pages, stage, viewport=PHONE, touch=True)
    second = open_page(pages, stage, viewport=PHONE, touch=True)
    received = lambda: stage.get_json("/healthz")["adapters"]["web"]["received"]  # noqa: E731
    before, talks = received(), len([m for m in dump.messages() if m.startswith("/talk")])
    one, two = Touch(first), Touch(second)
    one.down(1, *centre(first, "#talk"))
    wait_shows(second, "talk", 1)
    two.down(1, *centre(second, "#talk"))
    wait_until(lambda: received() == before + 2, what="the second phone's press taken")
    one.up(1)
    wait_until(lambda: received() == before + 3, what="the first finger's release taken")
    wait_shows(first, "talk", 1)  # still down: the first phone shows it so
    assert stored(stage, "talk") == 1
    two.up(1)
    wait_shows(first, "talk", 0)
    assert stored(stage, "talk") == 0
    wait_until(lambda: len([m for m in dump.messages() if m.startswith("/talk")]) == talks + 2, what="on, off")
    assert [m for m in dump.messages() if m.startswith("/talk")][talks:] == ["/talk i 1", "/talk i 0"]


def test_a_confirm_button_needs_a_second_tap_within_three_seconds_and_fires_once(
    stage: BridgeProcess, pages: Pages, dump: OscDump
) -> None:
    page = open_page(pages, stage, viewport=PHONE, touch=True)
    before = dump.messages().count("/go")
    x, y = centre(page, "#go")
    page.touchscreen.tap(x, y)
    expect(page.locator('[data-control="go"]')).to_have_attribute("data-armed", "true")
    assert sent(page, "go") == []
    past_a_bounce(page)
    page.touchscreen.tap(x, y)
    wait_until(lambda: dump.messages().count("/go") == before + 1, what="one /go")
    expect(page.locator('[data-control="go"]')).not_to_have_attribute("data-armed", "true")
    assert sent(page, "go") == [1]
    # Armed, then left alone: it disarms by itself and nothing fires.
    page.touchscreen.tap(x, y)
    expect(page.locator('[data-control="go"]')).to_have_attribute("data-armed", "true")
    expect(page.locator('[data-control="go"]')).not_to_have_attribute("data-armed", "true", timeout=5000)
    assert dump.messages().count("/go") == before + 1 and sent(page, "go") == [1]


def past_a_bounce(page: Page) -> None:
    """Wait until a tap now is a second tap, not the bounce of the one before (150 ms, the page's clock)."""
    since = page.evaluate("performance.now()")
    page.wait_for_function(f"performance.now() > {since} + 160")


def test_a_palm_on_a_confirm_button_only_arms_it(stage: BridgeProcess, pages: Pages, dump: OscDump) -> None:
    """Two fingers (a palm, a thumb and a finger) landing on GO at once are one touch: it arms, and
    fires on a tap of its own. Before, the second contact fired it: no second tap at all."""
    page = open_page(pages, stage, viewport=PHONE, touch=True)
    before = dump.messages().count("/go")
    x, y = centre(page, "#go")
    fingers = Touch(page)
    fingers.down(1, x - 5, y)
    fingers.down(2, x + 5, y)
    fingers.up(2)
    fingers.up(1)
    expect(page.locator('[data-control="go"]')).to_have_attribute("data-armed", "true")
    assert sent(page, "go") == []
    past_a_bounce(page)
    page.touchscreen.tap(x, y)
    wait_until(lambda: dump.messages().count("/go") == before + 1, what="one /go, on the tap of its own")
    assert sent(page, "go") == [1]


def test_a_second_finger_taps_a_toggle_and_a_select_while_one_holds_a_fader(stage: BridgeProcess, pages: Pages) -> None:
    """A browser makes no click of a tap while another finger is down: a toggle or a select that
    waited for one did nothing while the other hand held a fader."""
    put(stage, mute=0, list="Main")
    phone = open_page(pages, stage, viewport=PHONE, touch=True)
    fingers = Touch(phone)
    fx, fy = track(phone, "wash", 0.5)
    fingers.down(1, fx, fy)  # the left hand holds the fader
    tx, ty = centre(phone, '[data-control="mute"] .switch')
    fingers.down(2, tx, ty)
    fingers.up(2)
    wait_until(lambda: stored(stage, "mute") == 1, what="the toggle flipped by the second finger")
    sx, sy = centre(phone, '[data-control="list"] [role="radio"]:has-text("Sound")')
    fingers.down(2, sx, sy)
    fingers.up(2)
    wait_until(lambda: stored(stage, "list") == "Sound", what="the select chosen by the second finger")
    fingers.up(1)
    phone.touchscreen.tap(tx, ty)  # a lone tap flips it once (its click is the tap's own)
    wait_until(lambda: stored(stage, "mute") == 0, what="the toggle flipped back by a lone tap")
    expect(phone.locator("#mute")).not_to_be_checked()


def test_a_select_sends_its_option_and_shows_the_others(stage: BridgeProcess, pages: Pages) -> None:
    put(stage, list="Main")
    a, b = open_page(pages, stage), open_page(pages, stage)
    a.get_by_role("radio", name="Video").click()
    wait_until(lambda: stored(stage, "list") == "Video", what="Video stored")
    expect(b.get_by_role("radio", name="Video")).to_have_attribute("aria-checked", "true")
    expect(b.get_by_role("radio", name="Main")).to_have_attribute("aria-checked", "false")


# -- pages, displays, looks ---------------------------------------------------------------


def test_tabs_switch_pages_and_a_hidden_page_shows_what_changed_meanwhile(
    stage: BridgeProcess, pages: Pages, osc_port: int
) -> None:
    put(stage, cue_name="Preshow", vu=-60, rec=0)
    page = open_page(pages, stage, viewport=PHONE, touch=True)
    expect(page.locator('#tabs [data-page="Lights"]')).to_have_attribute("aria-selected", "true")
    expect(page.locator("#cue_name")).to_be_hidden()
    oscsend(osc_port, "/cue_name", "s", "Act 2")
    oscsend(osc_port, "/vu", "f", -12.0)
    oscsend(osc_port, "/rec", "i", 1)
    oscsend(osc_port, "/names/hidden", "s", "Haze")
    page.wait_for_function("window.stageBridge.values().cue_name === 'Act 2'")
    page.locator('#tabs [data-page="Sound"]').click()
    expect(page.locator("#cue_name")).to_have_text("Act 2")
    expect(page.locator("#vu")).to_have_js_property("value", -12)
    expect(page.locator("#rec")).to_have_attribute("aria-label", "rec: on")
    expect(page.locator('[data-control="hidden"] label')).to_have_text("Haze")
    expect(page.locator('[data-control="wash"]')).to_be_hidden()
    page.reload()  # the tab is kept in the address
    expect(page.locator('#tabs [data-page="Sound"]')).to_have_attribute("aria-selected", "true")
    expect(page.locator('[data-control="hidden"] label')).to_have_text("Haze")  # rendered at first paint


def test_a_desk_channel_with_no_name_or_colour_off_shows_the_controls_own(
    stage: BridgeProcess, pages: Pages, osc_port: int
) -> None:
    """An X32 names a channel nobody named "" and sends colour 0 for OFF: the fader's label went blank and the
    old colour stayed (a reviewer's case). Mapped to "", and empty, they give the control its own back."""
    page = open_page(pages, stage, viewport=PHONE, touch=True)
    page.locator('#tabs [data-page="Sound"]').click()
    wrap, name = page.locator('[data-control="hidden"]'), page.locator('[data-control="hidden"] label')
    oscsend(osc_port, "/names/hidden", "s", "Haze")
    oscsend(osc_port, "/colors/hidden", "i", 1)
    expect(name).to_have_text("Haze")
    accent = "el => el.style.getPropertyValue('--accent')"
    wait_until(lambda: wrap.evaluate(accent) == "#e0413b", what="the desk's red")
    oscsend(osc_port, "/names/hidden", "s", "")
    oscsend(osc_port, "/colors/hidden", "i", 0)
    expect(name).to_have_text("hidden")  # its own label (its id, as the config gives no other)
    wait_until(lambda: wrap.evaluate(accent) == "", what="the desk's colour gone")
    page.reload()
    expect(name).to_have_text("hidden")
    assert wrap.evaluate(accent) == ""


def test_an_led_with_colours_lights_only_past_a_threshold_and_a_plain_one_at_1(
    stage: BridgeProcess, pages: Pages
) -> None:
    """An LED with colours at 1, below its first threshold, glowed the plain LEDs' green (a colour not in
    its list: an amp temperature showing "OK" when nothing was said), at first paint and live."""
    put(stage, temp=1, rec=1)

    def glow(page: Page, cid: str) -> str:
        return str(page.eval_on_selector(f"#{cid}", "el => getComputedStyle(el).backgroundColor"))

    page = open_page(pages, stage, viewport=PHONE, touch=True)
    page.locator('#tabs [data-page="Sound"]').click()
    green = glow(page, "rec")
    put(stage, rec=0)
    wait_until(lambda: glow(page, "rec") != green, what="the plain LED off")
    dark = glow(page, "rec")
    assert glow(page, "temp") == dark  # at first paint
    put(stage, temp=6)
    wait_until(lambda: glow(page, "temp") == "rgb(255, 170, 0)", what="the first threshold's colour")
    put(stage, temp=1)
    wait_until(lambda: glow(page, "temp") == dark, what="unlit again, live")


def test_the_viewer_can_move_nothing(stage: BridgeProcess, pages: Pages) -> None:
    put(stage, wash=50, level=20, pan=0, list="Main")
    viewer = open_page(pages, stage, key=VIEWER, viewport=PHONE, touch=True)
    expect(viewer.locator("html")).to_have_attribute("data-role", "viewer")
    x0, y = track(viewer, "wash", 0.5)
    x1, _ = track(viewer, "wash", 0.9)
    finger = Touch(viewer)
    finger.down(1, x0, y)
    finger.move(1, x1, y, steps=6)
    finger.up(1)
    kx, ky = centre(viewer, '[data-control="pan"] .dial')
    finger.down(2, kx, ky)
    finger.move(2, kx, ky - 80, steps=6)
    finger.up(2)
    viewer.get_by_role("radio", name="Video").click(force=True)
    gx, gy = centre(viewer, "#go")
    viewer.touchscreen.tap(gx, gy)
    viewer.touchscreen.tap(gx, gy)
    assert hooks(viewer, "bridge:send") == []
    values = stage.get_json("/api/values", key=CONTROL)
    assert (values["wash"], values["pan"], values["list"]) == (50, 0, "Main")
    expect(viewer.locator('[data-control="go"]')).not_to_have_class(re.compile(r"\bheld\b"))


def test_on_a_narrow_phone_nothing_scrolls_sideways_and_the_page_shown_has_its_tab_in_sight(
    tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], pages: Pages
) -> None:
    names = ["Preshow", "Act 1", "Act 2", "Interval", "Act 3", "Act 4", "Bows", "Encore"]
    controls = "".join(f'[[controls]]\nid = "f{n}"\ntype = "range"\npage = "{name}"\n' for n, name in enumerate(names))
    proc = bridge_factory(write_config(tmp_path, extra='[osc]\nlisten = "127.0.0.1:0"\n', controls=controls))
    for width in (320, 360):  # small Android phones, an iPhone SE at 375 is wider
        page = pages.open(f"{proc.url}/#page=Encore", viewport={"width": width, "height": 740}, touch=True)
        expect(page.locator('#tabs [data-page="Encore"]')).to_have_attribute("aria-selected", "true")
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # the header's pill wraps
        # (Measured as it is: Playwright's own boxes scroll things into view first.)
        tab, strip = (
            page.evaluate(
                f"(({{left, right}}) => [left, right])(document.querySelector('{sel}').getBoundingClientRect())"
            )
            for sel in ('#tabs [data-page="Encore"]', "#tabs")
        )
        assert strip[0] <= tab[0] and tab[1] <= strip[1] + 0.5, (tab, strip)


def test_at_200_percent_text_a_long_option_a_long_page_name_and_a_desk_chip_stay_on_the_phone(
    tmp_path: Path, bridge_factory: Callable[..., BridgeProcess], pages: Pages
) -> None:
    """At 200 % text a select's segment with one long word ran 170 px off a 390 px phone, where nothing could
    scroll to it; a long page name was cut at the screen's edge; the desk chip's "OSC" broke in two (a
    reviewer's cases)."""
    controls = (
        '[[controls]]\nid = "scene"\ntype = "select"\npage = "Lights and effects for the second half"\n'
        'options = ["Preshowannouncementloop", "Interval"]\n'
        '[[controls]]\nid = "level"\ntype = "range"\npage = "Sound"\n'
    )
    down = f'[osc]\nlisten = "127.0.0.1:0"\ntargets = [{{ address = "127.0.0.1:{free_port()}", transport = "tcp" }}]\n'
    proc = bridge_factory(write_config(tmp_path, extra=down, controls=controls))
    page = pages.open(proc.url, viewport=PHONE, touch=True)
    page.evaluate("document.documentElement.style.fontSize = '200%'")
    expect(page.locator("#osc-status .midi-port")).to_contain_text("down")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

    def right_of(selector: str) -> float:
        return float(page.evaluate(f"document.querySelector('{selector}').getBoundingClientRect().right"))

    rights = page.evaluate(
        "Array.from(document.querySelectorAll('[data-control=scene] [role=radio]'),"
        " (b) => b.getBoundingClientRect().right)"
    )
    assert len(rights) == 2 and max(rights) <= PHONE["width"], rights
    tab = page.locator("#tabs [role='tab']").first
    assert tab.evaluate("el => getComputedStyle(el).textOverflow") == "ellipsis"
    assert right_of("#tabs [role=tab]") <= PHONE["width"]
    chip = page.locator("#osc-status .midi-port .dir")
    assert chip.evaluate("el => el.getClientRects().length === 1 && el.scrollHeight <= el.clientHeight + 1")
    line = float(chip.evaluate("el => parseFloat(getComputedStyle(el).lineHeight) || el.clientHeight"))
    assert float(chip.evaluate("el => el.getBoundingClientRect().height")) <= line * 1.5  # "OSC" on one line


def test_a_phone_on_its_side_shows_an_upright_fader_whole_and_large_text_never_scrolls_sideways(
    stage: BridgeProcess, pages: Pages
) -> None:
    """At 844 x 390 the sticky bar and tabs covered 174 px of the height, and a 260 px fader never fit
    in what was left: a thumb near either end was always under them. At 150-200 % text, the scene
    bar and the status chips ran wider than the phone."""
    phone = open_page(pages, stage, viewport={"width": 844, "height": 390}, touch=True)
    fader = phone.locator('[data-control="level"] .fader')
    fader.evaluate("el => el.scrollIntoView({block: 'center'})")
    found = fader.bounding_box()
    assert found is not None
    assert found["y"] >= 0 and found["y"] + found["height"] <= 390, found  # whole, on screen
    for y in (found["y"] + 2, found["y"] + found["height"] - 2):  # and nothing over either end
        on_top = phone.evaluate(
            "([x, y]) => !!document.elementFromPoint(x, y).closest('[data-control=\"level\"]')",
            [found["x"] + found["width"] / 2, y],
        )
        assert on_top, y
    upright = open_page(pages, stage, viewport=PHONE, touch=True)
    for size in ("150%", "200%"):
        upright.evaluate(f"document.documentElement.style.fontSize = '{size}'")
        wide = upright.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, (size, wide)
