"""The page's own paths, measured in Chromium: ``python -m bench.browser_bench [--runs 3]``.

- mouse down in 1 of 10 pages -> the value shown in the 9 others: the time
  from the ``pointerdown`` event in the first page (its own timestamp) to
  the ``bridge:update`` event each other page dispatches once it shows the
  value; and the part of it spent before the first page sent
  (``bridge:send``). Whatever the page does with a gesture (sends at once,
  or on the next frame), this measures it.
- JACK MIDI CC in -> the value shown in a page: from just before the CC is
  written to JACK (this process's clock) to the page's ``bridge:update``.

Every page's times are on its own clock (``performance.timeOrigin +
performance.now()``); each page's offset from this process's clock is
taken from the fastest of several round trips, so all times compare.
Chromium is Debian's, headless, launched as the tests launch it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import mido
from playwright.sync_api import Page, sync_playwright

from bench.common import BENCH_CONTROLS, ROOT, Server, percentiles
from bench.midi_bench import MIDI_EXTRA
from tests.browser import Pages, fader_point, launch
from tests.jack import MidiPeer, running_jack

#: Records, in every page, the times (on the page's clock, ms since the epoch) of its events.
STAMPS = """
(() => {
  const stamps = (window.__stamps = { down: [], send: [], update: [] });
  const at = () => performance.timeOrigin + performance.now();
  window.__now = at;
  window.addEventListener("pointerdown", (e) => stamps.down.push(performance.timeOrigin + e.timeStamp), true);
  window.addEventListener("bridge:send", (e) => stamps.send.push([at(), e.detail.who, e.detail.data]));
  window.addEventListener("bridge:update", (e) => stamps.update.push([at(), e.detail.who, e.detail.data]));
})();
"""


#: The bench's controls, the fader jumping to where it is pressed (a fader's touch is relative by default).
PAGE_CONTROLS = BENCH_CONTROLS.replace('takeover = "jump"', 'takeover = "jump"\ntouch = "absolute"', 1)


def clock_offset(page: Page, tries: int = 15) -> float:
    """The page's clock minus this process's (``time.time()``), in ms, from the fastest round trip."""
    best: tuple[float, float] | None = None
    for _ in range(tries):
        t0 = time.time() * 1000
        remote = float(page.evaluate("window.__now()"))
        t1 = time.time() * 1000
        if best is None or t1 - t0 < best[0]:
            best = (t1 - t0, remote - (t0 + t1) / 2)
    assert best is not None
    return best[1]


def open_pages(pages: Pages, url: str, n: int) -> list[Page]:
    opened = [pages.open(url, prepare=lambda context: context.add_init_script(STAMPS)) for _ in range(n)]
    return opened


def stamps(page: Page) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate("window.__stamps")
    return found


def wait_all_show(pages: list[Page], who: str, value: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    script = "([w, v]) => window.__stamps.update.some((u) => u[1] === w && u[2] === v)"
    while time.monotonic() < deadline:
        if all(page.evaluate(script, [who, value]) for page in pages):
            return True
        time.sleep(0.01)
    return False


def mouse_down_to_others(url: str, gestures: int) -> dict[str, Any]:
    """Mouse down on the fader of page 0; how long until pages 1-9 show the value."""
    with sync_playwright() as pw:
        browser = launch(pw)
        pages = Pages(browser)
        try:
            opened = open_pages(pages, url, 10)
            first, others = opened[0], opened[1:]
            total: list[float] = []
            before_send: list[float] = []
            missing = 0
            for k in range(gestures):
                fraction = 0.1 + 0.8 * ((k * 0.381966) % 1.0)  # spread over the fader, never the same twice running
                x, y = fader_point(first, "fader", fraction)
                first.mouse.move(x, y)
                downs = len(stamps(first)["down"])
                sends = len(stamps(first)["send"])
                first.mouse.down()
                deadline = time.monotonic() + 5
                while len(stamps(first)["send"]) <= sends and time.monotonic() < deadline:
                    time.sleep(0.005)
                mine = stamps(first)
                if len(mine["send"]) <= sends or len(mine["down"]) <= downs:
                    missing += 1
                    first.mouse.up()
                    continue
                down_at = mine["down"][downs]
                sent_at, who, value = mine["send"][sends]
                before_send.append(sent_at - down_at)
                if not wait_all_show(others, who, value):
                    missing += 1
                for page in others:
                    shown = [u[0] for u in stamps(page)["update"] if u[1] == who and u[2] == value]
                    if shown:
                        total.append(shown[0] - down_at)
                first.mouse.up()
                time.sleep(0.05)  # the release's own value settles before the next gesture
            return {
                **_ms(total),
                "before_send_p50_ms": round(statistics.median(before_send), 3) if before_send else None,
                "gestures": gestures,
                "missing": missing,
            }
        finally:
            pages.close()
            browser.close()


def midi_to_page(gestures: int, root: Path = ROOT) -> dict[str, Any]:
    """CCs into the bridge's JACK input, one at a time; how long until a page shows each."""
    with tempfile.TemporaryDirectory() as folder:
        with running_jack(Path(folder)) as jack:
            env = {"JACK_DEFAULT_SERVER": jack.name}
            with Server(MIDI_EXTRA, env=env, root=root) as server, sync_playwright() as pw:
                peer = MidiPeer()
                peer.connect("bench-in", "bench-out")
                browser = launch(pw)
                pages = Pages(browser)
                try:
                    page = open_pages(pages, server.url, 1)[0]
                    offset = clock_offset(page)
                    lat: list[float] = []
                    for k in range(gestures):
                        value = 1 + (k * 37) % 126  # never the same twice running
                        if value == page.evaluate("window.__shown('cc')"):
                            value = 127
                        sent = time.time() * 1000
                        peer.send(mido.Message("control_change", channel=0, control=2, value=value))
                        if wait_all_show([page], "cc", value):
                            shown = [u[0] for u in stamps(page)["update"] if u[1] == "cc" and u[2] == value]
                            lat.append(shown[-1] - offset - sent)
                        time.sleep(0.02)
                    return {**_ms(lat), "gestures": gestures, "clock_offset_ms": round(offset, 3)}
                finally:
                    pages.close()
                    browser.close()
                    peer.close()


def _ms(samples_ms: list[float]) -> dict[str, Any]:
    return percentiles([s / 1000 for s in samples_ms])


MOUSE = "mouse down in 1 of 10 pages -> shown in the 9 others"
MIDI = "JACK MIDI CC in -> shown in a page"


def run_once(gestures: int = 60, root: Path = ROOT) -> dict[str, dict[str, Any]]:
    with Server("", PAGE_CONTROLS, root=root) as server:
        down = mouse_down_to_others(server.url, gestures)
    return {MOUSE: down, MIDI: midi_to_page(gestures * 2, root)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gestures", type=int, default=60)
    args = parser.parse_args()
    runs = [run_once(args.gestures) for _ in range(args.runs)]
    print(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
