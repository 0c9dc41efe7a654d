"""Browser tools for the page tests: Debian's Chromium through Playwright, real input, recorded requests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, BrowserContext, CDPSession, Page, Playwright, expect

from tests.helpers import ROOT, unavailable

CHROMIUM = os.environ.get("STAGE_BRIDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
#: A name for 127.0.0.1 that is not "localhost": a page there over plain HTTP is not a secure context,
#: as on a phone that opens the bridge's LAN address (Chromium counts every 127.x address as secure).
TEST_HOST = "stage-bridge.test"
RESOLVE_TEST_HOST = f"--host-resolver-rules=MAP {TEST_HOST} 127.0.0.1"
#: Every wait in the browser gives up after this long (milliseconds): actions and expect() alike (expect's
#: own default, 5 s, ran out once under two test workers and a reviewer's load on two cores).
TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TABLET = {"width": 1180, "height": 820}
#: The fader thumb's width in CSS pixels (``--thumb-w`` in the page's style sheet).
THUMB_WIDTH = 30
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", TEST_HOST}

#: Runs in every page before its own scripts: records the hooks, the
#: connection states and what each control shows when a hook fires.
RECORDER = """
(() => {
  const shown = (id) => {
    const el = document.getElementById(id);
    if (!el) return null;
    if (el.type === "range") return el.valueAsNumber;
    if (el.type === "checkbox") return el.checked ? 1 : 0;
    if (el.tagName === "BUTTON") return el.getAttribute("aria-pressed") === "true" ? 1 : 0;
    return el.value;
  };
  window.__shown = shown;
  const events = (window.__bridgeEvents = []);
  for (const name of ["bridge:update", "bridge:send"]) {
    window.addEventListener(name, (event) => {
      const { who, data } = event.detail;
      events.push({ type: name, who: who, data: data, shown: shown(who) });
    });
  }
  const states = (window.__connectionStates = []);
  new MutationObserver(() => {
    const state = document.documentElement && document.documentElement.dataset.connection;
    if (state && states[states.length - 1] !== state) states.push(state);
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-connection"] });
})();
"""


def launch(playwright: Playwright, extra: list[str] | None = None) -> Browser:
    """Headless Chromium from the system; a missing one skips, or fails under CI.

    ``TEST_HOST`` resolves to 127.0.0.1 in it; ``extra`` arguments are added
    (the test certificate's public key, to accept that one certificate).
    """
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set STAGE_BRIDGE_CHROMIUM)")
    args = [*CHROMIUM_ARGS, RESOLVE_TEST_HOST, *(extra or [])]
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def is_loopback(url: str) -> bool:
    """True for a request that stays on this machine (or never leaves the page)."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    host = (parts.hostname or "").lower()
    return host in _LOOPBACK_HOSTS or host.startswith("127.")


class Pages:
    """Opens pages, each in a fresh browser context, and records every request they make."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.requests: list[str] = []

    def open(
        self,
        url: str,
        *,
        viewport: dict[str, int] | None = None,
        touch: bool = False,
        connected: bool = True,
        prepare: Callable[[BrowserContext], None] | None = None,
    ) -> Page:
        context = self.browser.new_context(
            viewport=viewport or LAPTOP,  # type: ignore[arg-type]
            has_touch=touch,
            is_mobile=touch,
            reduced_motion="reduce",
        )
        self.contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        context.on("request", lambda request: self.requests.append(request.url))
        context.add_init_script(RECORDER)
        if prepare is not None:
            prepare(context)
        page = context.new_page()
        page.goto(url)
        if connected:
            wait_synced(page)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


def wait_synced(page: Page) -> None:
    """Until the page is connected and has applied a snapshot."""
    page.wait_for_function(
        "!!document.documentElement && document.documentElement.dataset.connection === 'connected'"
        " && window.__bridgeEvents.some((e) => e.type === 'bridge:update')"
    )


def wait_state(page: Page, state: str) -> None:
    page.wait_for_function(
        "(s) => !!document.documentElement && document.documentElement.dataset.connection === s", arg=state
    )


def shown(page: Page, cid: str) -> Any:
    """What the control shows: a number for a fader, 0/1 for a switch or pad, a string for text."""
    return page.evaluate("(id) => window.__shown(id)", cid)


def wait_shows(page: Page, cid: str, value: Any) -> None:
    page.wait_for_function("([id, v]) => window.__shown(id) === v", arg=[cid, value])


def value_text(page: Page, cid: str) -> str:
    """The fader's value as the performer reads it, unit included."""
    return str(page.locator(f"#{cid}-value").inner_text()).replace("\n", " ").strip()


def hooks(page: Page, kind: str, who: str | None = None) -> list[dict[str, Any]]:
    """``bridge:update`` or ``bridge:send`` events the page dispatched, oldest first."""
    found: list[dict[str, Any]] = page.evaluate(
        "([kind, who]) => window.__bridgeEvents.filter((e) => e.type === kind && (who === null || e.who === who))",
        [kind, who],
    )
    return found


def clear_hooks(page: Page) -> None:
    page.evaluate("window.__bridgeEvents.length = 0")


def fader_point(page: Page, cid: str, fraction: float) -> tuple[float, float]:
    """Where the thumb's centre is when ``cid`` stands at ``fraction`` (0-1) of its range."""
    locator = page.locator(f"#{cid}")
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None
    x = box["x"] + THUMB_WIDTH / 2 + (box["width"] - THUMB_WIDTH) * fraction
    return x, box["y"] + box["height"] / 2


def centre(page: Page, selector: str) -> tuple[float, float]:
    locator = page.locator(selector)
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


class Touch:
    """Real touch input through the DevTools protocol: fingers down, moved and lifted."""

    def __init__(self, page: Page) -> None:
        self.cdp: CDPSession = page.context.new_cdp_session(page)
        self.fingers: dict[int, tuple[float, float]] = {}
        self.clock: float | None = None  # the events' own time, when a gesture gives it

    def _send(self, kind: str, fingers: dict[int, tuple[float, float]] | None = None) -> None:
        touching = self.fingers if fingers is None else fingers
        points = [{"x": x, "y": y, "id": finger} for finger, (x, y) in touching.items()]
        event: dict[str, Any] = {"type": kind, "touchPoints": points}
        if self.clock is not None:
            event["timestamp"] = self.clock
        self.cdp.send("Input.dispatchTouchEvent", event)

    def drag(self, finger: int, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        """A finger put down, moved at a walking pace, rested and lifted: a drag that leaves no fling behind.

        The events carry their own times (a move every 40 ms, then 300 ms at
        rest), so the browser's gesture detector sees a slow drag however fast
        they are sent; a fast one would fling, and the browser then eats the
        next tap (it only stops the fling).
        """
        self.clock = time.time()
        self.down(finger, *start)
        for i in range(1, steps + 1):
            self.clock += 0.04
            self.move(finger, start[0] + (end[0] - start[0]) * i / steps, start[1] + (end[1] - start[1]) * i / steps)
        self.clock += 0.3
        self.move(finger, *end)
        self.clock += 0.02
        self.up(finger)
        self.clock = None

    def down(self, finger: int, x: float, y: float) -> None:
        self.fingers[finger] = (x, y)
        self._send("touchStart")

    def move(self, finger: int, x: float, y: float, steps: int = 1) -> None:
        x0, y0 = self.fingers[finger]
        for i in range(1, steps + 1):
            self.fingers[finger] = (x0 + (x - x0) * i / steps, y0 + (y - y0) * i / steps)
            self._send("touchMove")

    def up(self, finger: int) -> None:
        # Chromium ends the points a touchEnd lists (not those it leaves out, as the protocol's
        # documentation reads): listing the fingers that stay lifted the wrong one.
        lifted = {finger: self.fingers.pop(finger)}
        self._send("touchEnd", lifted)
