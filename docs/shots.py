"""``make screenshots``: the example surfaces at phone and tablet size, the monitor drawer, the three themes and the
page as a home-screen app, for the docs (docs/images/).

Each example runs as it ships, but on loopback: the desk it talks to is a
stand-in from the tests (tests/console_tools.py), fed with what a show would
have (channel names, levels, the playhead's cue), and the page is shown in
Debian's Chromium, headless.
"""

from __future__ import annotations

import json
import re
import socket
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP, PHONE, TABLET
from tests.console_tools import FakeX32, TcpConsole
from tests.helpers import BridgeProcess, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
NAMES = ["Kick", "Snare", "Hi-hat", "Tom", "Bass DI", "Gtr L", "Gtr R", "Keys", "Vox 1", "Vox 2", "BVs", "Sax"]


#: What a browser reports for a page started from the home screen (display: fullscreen).
AS_APP = (
    "const real = window.matchMedia.bind(window);"
    "window.matchMedia = (q) => q.includes('display-mode') ? { matches: true, media: q } : real(q);"
)


def loopback(example: str, folder: Path, **addresses: str) -> Path:
    """The example with its desk's address, its OSC port and its key made local, saved in ``folder``."""
    text = (ROOT / "config" / "examples" / example).read_text(encoding="utf-8")
    for old, new in addresses.items():
        text = text.replace(old.replace("_", "."), new)
    text = text.replace('"0.0.0.0:9001"', f'"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"')
    text = re.sub(r'^key = "auto".*$', "", text, flags=re.MULTILINE)
    text = re.sub(r'^state_file = ".*"', 'state_file = ""', text, flags=re.MULTILINE)
    path = folder / example
    path.write_text(text, encoding="utf-8")
    return path


def shoot(page: Page, name: str) -> None:
    page.wait_for_function("document.documentElement.dataset.connection === 'connected'")
    page.screenshot(path=str(IMAGES / f"{name}.png"))


def x32(folder: Path, chromium: object, theme: str = "dark") -> None:
    """The X32 monitor mix at phone and tablet size; in another theme, the phone only (theme-NAME.png), and in
    the dark one also the monitor drawer (laptop size) and the page as a home-screen app."""
    values: dict[str, object] = {}
    for n in range(1, 17):
        values[f"/ch/{n:02}/config/name"] = NAMES[n - 1] if n <= len(NAMES) else f"Ch {n:02}"
        values[f"/ch/{n:02}/mix/01/level"] = [0.62, 0.7, 0.45, 0.5, 0.75, 0.58, 0.58, 0.66][(n - 1) % 8]
        values[f"/ch/{n:02}/mix/01/pan"] = [0.5, 0.5, 0.3, 0.7, 0.5, 0.2, 0.8, 0.5][(n - 1) % 8]
        values[f"/ch/{n:02}/config/color"] = [1, 1, 3, 3, 4, 2, 2, 5][(n - 1) % 8]
    desk = FakeX32(values)
    config = loopback("x32-monitor.toml", folder, **{"192_168_1_30:10023": f"127.0.0.1:{desk.port}"})
    config.write_text(config.read_text().replace("[server]\n", f'[server]\ntheme = "{theme}"\n', 1))
    proc = BridgeProcess(config).start()
    try:
        wait_until(lambda: proc.get_json("/api/values")["send1"] != -90, what="the desk's values")
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        port = int(re.findall(r'listen = "127.0.0.1:(\d+)"', config.read_text())[0])
        from tests.console_tools import build

        for n in range(1, 9):
            peer.sendto(build(f"/meters/ch/{n:02}", -30.0 + 4 * (n % 5)), ("127.0.0.1", port))
        shots = (("x32-phone", PHONE), ("x32-tablet", TABLET)) if theme == "dark" else ()
        for name, viewport in (*shots, (f"theme-{theme}", PHONE)):
            page = chromium.new_page(viewport=viewport, has_touch=True, is_mobile=True)  # type: ignore[attr-defined]
            page.goto(proc.url)
            page.wait_for_function("document.querySelector('[data-control=\"send1\"] label').textContent === 'Kick'")
            shoot(page, name)
            page.close()
        if theme == "dark":
            monitor(proc, peer, port, chromium)
            app(proc, chromium)
        peer.close()
    finally:
        proc.stop()
        desk.close()


def monitor(proc: BridgeProcess, peer: socket.socket, port: int, chromium: object) -> None:
    """The drawer open on a laptop, while the desk and a script send what a show would."""
    from tests.console_tools import build

    page = chromium.new_page(viewport=LAPTOP)  # type: ignore[attr-defined]
    page.goto(proc.url)
    page.wait_for_function("document.documentElement.dataset.connection === 'connected'")
    page.locator("#monitor-toggle").click()
    page.wait_for_function("document.getElementById('monitor').dataset.open === 'true'")
    for n in range(1, 5):
        peer.sendto(build(f"/ch/{n:02}/mix/01/level", 0.5 + n / 20), ("127.0.0.1", port))
    peer.sendto(build("/ch/99/mix/01/level", 0.5), ("127.0.0.1", port))  # an address no control has
    proc.put_values(send3=-5.0)
    page.wait_for_function("document.querySelectorAll('#monitor-log tbody tr').length >= 12")
    page.wait_for_function("document.querySelector('#monitor-targets li') !== null")
    shoot(page, "monitor")
    page.close()


def app(proc: BridgeProcess, chromium: object) -> None:
    """At phone size, as started from the home screen: full screen (no Full button), the screen kept awake."""
    context = chromium.new_context(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[attr-defined]
    context.add_init_script(AS_APP)
    page = context.new_page()
    page.goto(proc.url)
    page.wait_for_function("document.documentElement.dataset.awake === 'held'")
    shoot(page, "app-phone")
    context.close()


def qlab(folder: Path, chromium: object) -> None:
    desk = TcpConsole("slip").start()
    config = loopback("qlab.toml", folder, **{"127_0_0_1:53000": f"127.0.0.1:{desk.port}"})
    proc = BridgeProcess(config).start()
    try:
        desk.wait_connected()
        desk.send("/reply/cue/playhead/number", json.dumps({"status": "ok", "data": "12"}))
        desk.send("/reply/cue/playhead/displayName", json.dumps({"status": "ok", "data": "Storm builds"}))
        wait_until(lambda: proc.get_json("/api/values")["cue_name"] == "Storm builds", what="QLab's answer")
        page = chromium.new_page(viewport=PHONE, has_touch=True, is_mobile=True)  # type: ignore[attr-defined]
        page.goto(proc.url)
        page.locator("#go").tap()  # armed: waits for the second tap
        shoot(page, "qlab-phone")
        page.close()
    finally:
        proc.stop()
        desk.stop()


EDITED = """\
# The band's monitor mix, built from the page's editor.
[server]
host = "127.0.0.1"
port = 5000
state_file = ""

[[controls]]
id = "vocal"
type = "range"
label = "Vocal"
max = 100
value = 72
group = "Band"
osc = "/mix/vocal"

[[controls]]
id = "keys"
type = "range"
label = "Keys"
max = 100
value = 55
group = "Band"
osc = "/mix/keys"

[[controls]]
id = "click"
type = "toggle"
label = "Click"
group = "Band"

[[controls]]
id = "talkback"
type = "button"
label = "Talkback"
group = "Crew"
color = "#3fa7d6"
"""


def editor(folder: Path, chromium: object) -> None:
    """The editor open on a control, at phone and tablet size."""
    config = folder / "edited.toml"
    config.write_text(EDITED, encoding="utf-8")
    proc = BridgeProcess(config).start()
    try:
        for name, viewport, touch in (("editor-phone", PHONE, True), ("editor-tablet", TABLET, False)):
            page = chromium.new_page(viewport=viewport, has_touch=touch, is_mobile=touch)  # type: ignore[attr-defined]
            page.goto(proc.url + "/?edit=1")
            page.wait_for_function("document.getElementById('editor-status').dataset.state === 'saved'")
            page.locator('[data-control="keys"]').click()
            page.wait_for_selector("#editor-form h2")
            shoot(page, name)
            page.close()
    finally:
        proc.stop()


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            x32(Path(tmp), browser)
            for theme in ("light", "contrast"):
                x32(Path(tmp), browser, theme)
            qlab(Path(tmp), browser)
            editor(Path(tmp), browser)
        finally:
            browser.close()
    print(f"screenshots in {IMAGES}")  # noqa: T201


if __name__ == "__main__":
    main()
