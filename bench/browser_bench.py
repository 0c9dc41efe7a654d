"""The page's own paths, measured in Chromium: ``python -m bench.browser_bench [--runs 3]``.

- mouse down in 1 of 10 pages -> the value shown in the 9 others: the time
  from the ``pointerdown`` event in the first page (its own timestamp) to
  the ``bridge:update`` event each other page dispatches once it shows the
  value; and where that time goes: before the first page sent
  (``bridge:send``); from the send until the server began writing the
  update (to a raw WebSocket client connected before the pages, so written
  to first, which takes the kernel's receive time of each frame: see
  :class:`Listener`); from there to the WebSocket ``message`` event in each
  other page (the event's own timestamp: the rest of the fan-out, Chromium's
  network process and the page's renderer waking up); and from that event
  to the value shown (the Socket.IO client's decoding and the page's own
  work). The raw client also sends changes itself: the same trip without
  Chromium, the server's own part. Whatever the page does with a gesture
  (sends at once, or on the next frame), this measures it.
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
import multiprocessing
import socket
import statistics
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import mido
import websocket
from playwright.sync_api import Page, sync_playwright

from bench.common import BENCH_CONTROLS, ROOT, Server, percentiles
from bench.midi_bench import MIDI_EXTRA
from tests.browser import Pages, fader_point, launch
from tests.jack import MidiPeer, running_jack

#: Records, in every page, the times (on the page's clock, ms since the epoch) of its events.
STAMPS = """
(() => {
  const stamps = (window.__stamps = { down: [], send: [], update: [], frame: [] });
  const at = () => performance.timeOrigin + performance.now();
  window.__now = at;
  // Every Socket.IO event frame's arrival, stamped by a listener that runs before the client's own.
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (e) => {
        if (typeof e.data === "string" && e.data.startsWith("42")) {
          stamps.frame.push([performance.timeOrigin + e.timeStamp, e.data]);
        }
      });
    }
  };
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


#: Linux's option for the kernel's receive time of what a socket reads (``struct timespec``,
#: the system's clock): for loopback, the moment the sender's ``send`` put it there.
SO_TIMESTAMPNS = 35


class Listener:
    """A raw Socket.IO client on a WebSocket: when the server wrote each update to it.

    Each frame is stamped with the kernel's receive time (:data:`SO_TIMESTAMPNS`),
    on the system's clock (``time.time()`` in ms, as here): the moment the
    server's ``send`` put it on the loopback, however late the reader itself
    gets a core behind the ten pages' renderers.

    It also sends changes itself, on a second WebSocket (:meth:`send`): the same trip
    as a page's change, with a sender that is not Chromium. Both run in a process of
    their own, so that nothing of this one's (its browser's threads) stands between
    a send and its stamp.
    """

    def __init__(self, url: str) -> None:
        spawn = multiprocessing.get_context("spawn")  # not a fork of this process and its browser's threads
        self._frames: multiprocessing.Queue[tuple[float, str]] = spawn.Queue()
        self._ready = spawn.Event()
        self._sends: multiprocessing.Queue[tuple[str, Any]] = spawn.Queue()
        self._sent: multiprocessing.Queue[float] = spawn.Queue()
        self._process = spawn.Process(
            target=_listen, args=(url, self._frames, self._ready, self._sends, self._sent), daemon=True
        )
        self._process.start()
        if not self._ready.wait(30):
            raise RuntimeError("the listener did not connect")
        self.frames: list[tuple[float, str]] = []

    def wrote(self, who: str, value: Any, timeout: float = 5.0) -> float | None:
        """When the frame carrying ``who == value`` came (None when it did not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while not self._frames.empty():
                self.frames.append(self._frames.get())
            for at, text in self.frames:
                if _carries(text, who, value):
                    return at
            time.sleep(0.002)
        return None

    def send(self, who: str, value: Any) -> float:
        """Send ``who = value`` from the second WebSocket; when it was sent."""
        self._sends.put((who, value))
        return self._sent.get(timeout=10)

    def close(self) -> None:
        self._process.terminate()
        self._process.join(timeout=5)


def _connect(url: str) -> websocket.WebSocket:
    ws = websocket.create_connection(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket", timeout=None, suppress_origin=True
    )
    assert ws.recv().startswith("0")  # Engine.IO's open
    ws.send("40")  # Socket.IO's connect
    return ws


def _stamped_texts(sock: socket.socket, pending: bytearray) -> list[tuple[float, str]]:
    """Read once from ``sock`` (a server's WebSocket, unmasked frames): the text frames now
    whole, each with the kernel's receive time in ms; what is left of a frame stays in ``pending``."""
    data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
    if not data:
        raise ConnectionError("the bridge closed the connection")
    at = time.time() * 1000
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", payload[:16])
            at = seconds * 1000 + nanoseconds / 1e6
    pending += data
    texts = []
    while len(pending) >= 2:
        size, head = pending[1] & 0x7F, 2
        if size == 126:
            size, head = struct.unpack("!H", pending[2:4])[0], 4
        elif size == 127:
            size, head = struct.unpack("!Q", pending[2:10])[0], 10
        if len(pending) < head + size:
            break
        if pending[0] & 0x0F == 0x1:  # text
            texts.append((at, pending[head : head + size].decode()))
        del pending[: head + size]
    return texts


def _listen(url: str, frames: Any, ready: Any, sends: Any, sent: Any) -> None:
    # websocket-client reads the handshake and frames byte-exact: what follows is read here.
    listening, sending = _connect(url), _connect(url)
    raw = listening.sock
    raw.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)

    def send_loop() -> None:
        while True:
            who, value = sends.get()
            at = time.time() * 1000
            sending.send("42" + json.dumps(["value changed", {"who": who, "data": value}]))
            sent.put(at)

    def drain() -> None:  # the sender's own socket: pings answered, the rest read and dropped
        while True:
            if sending.recv() == "2":
                sending.send("3")

    threading.Thread(target=send_loop, daemon=True).start()
    threading.Thread(target=drain, daemon=True).start()
    ready.set()
    pending = bytearray()
    while True:
        for at, text in _stamped_texts(raw, pending):
            if text == "2":
                listening.send("3")
            elif text.startswith("42"):
                frames.put((at, text))


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
        listener: Listener | None = None
        try:
            listener = Listener(url)  # before the pages: the server writes to it first
            opened = open_pages(pages, url, 10)
            first, others = opened[0], opened[1:]
            offsets = {id(page): clock_offset(page) for page in opened}  # each page's clock minus ours
            total: list[float] = []
            before_send: list[float] = []
            to_server: list[float] = []  # the send -> the server's first write of the update
            to_page: list[float] = []  # -> the frame's message event in another page
            to_shown: list[float] = []  # -> the value shown there
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
                out_at = listener.wrote(who, value)
                if out_at is not None:
                    # (the page stamps bridge:send just after its emit: this part may come out a little short)
                    to_server.append(out_at + offsets[id(first)] - sent_at)
                for page in others:
                    seen = stamps(page)
                    shown = [u[0] for u in seen["update"] if u[1] == who and u[2] == value]
                    if shown:
                        total.append(shown[0] - down_at)
                        arrived = [f[0] for f in seen["frame"] if _carries(f[1], who, value)]
                        if arrived:
                            if out_at is not None:
                                to_page.append(arrived[0] - offsets[id(page)] - out_at)
                            to_shown.append(shown[0] - arrived[0])
                first.mouse.up()
                time.sleep(0.05)  # the release's own value settles before the next gesture
            # The same trip, the change sent by a raw client instead of a page: the server's part.
            raw: list[float] = []
            for k in range(gestures):
                value = 1 + int(999_998 * ((k * 0.618034) % 1.0))  # whole steps, never the same twice running
                sent = listener.send("fader", value)
                out = listener.wrote("fader", value)
                if out is not None:
                    raw.append(out - sent)
                time.sleep(0.05)
            return {
                **_ms(total),
                "before_send_p50_ms": _median(before_send),
                "send_to_first_write_p50_ms": _median(to_server),
                "first_write_to_page_p50_ms": _median(to_page),
                "arrival_to_shown_p50_ms": _median(to_shown),
                "raw_send_to_first_write_p50_ms": _median(raw),
                "gestures": gestures,
                "missing": missing,
            }
        finally:
            if listener is not None:
                listener.close()
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


def _carries(text: str, who: str, value: Any) -> bool:
    """True when the Socket.IO event frame ``text`` carries ``who == value`` (alone or in a batch)."""
    name, data = json.loads(text[2:])[:2]
    pairs = data if name == "update values" else [data] if name == "update value" else []
    return any(isinstance(p, dict) and p.get("who") == who and p.get("data") == value for p in pairs)


def _median(samples_ms: list[float]) -> float | None:
    return round(statistics.median(samples_ms), 3) if samples_ms else None


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
