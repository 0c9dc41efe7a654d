"""The message monitor: what went in and out on every transport, for the pages that watch.

Where a message enters or leaves the bridge (a browser's ``value changed``,
the fan-out to the pages, OSC over UDP or TCP both ways, MIDI both ways,
``PUT /api/values``, the cluster's Redis), the transport calls
:meth:`Monitor.saw` behind one check::

    if self.monitor.watching:
        self.monitor.saw("osc/udp", "in", peer, address, args, control)

so that while no page has its monitor drawer open a message costs one
attribute read, and nothing is recorded. While one is open, each message is
a tuple in a ring of the last :data:`RING` (a :class:`collections.deque`);
the monitor's own thread formats what is new every :data:`SEND_INTERVAL`
and sends it, as one ``monitor`` event, only to the pages in the
:data:`ROOM` Socket.IO room (those that said ``monitor open``). What a
message means for a person (an OSC packet decoded, a MIDI message in
channels 1-16) is worked out there, never on the way of the message.

The activity lights in the page's header come from counters the transports
keep anyway: every :data:`ACTIVITY_INTERVAL` the monitor compares them with
the last look and tells the control pages when a light goes on or off.

Each adapter has a ``monitor`` attribute, :data:`IDLE` until the bridge
attaches its own (:func:`attach`), so an adapter built on its own (a test,
a bench) has nothing to call and nothing to check but the one flag.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from bridge.flow import Workers

log = logging.getLogger(__name__)

#: Messages kept for a drawer that opens: the last this many.
RING = 500
#: New entries go to the watching pages at most this often (seconds).
SEND_INTERVAL = 0.1
#: Targets' states go to the watching pages this often (seconds).
STATUS_INTERVAL = 1.0
#: How often the activity lights are looked at (seconds).
ACTIVITY_INTERVAL = 0.25
#: The Socket.IO room of the pages whose drawer is open.
ROOM = "monitor"
#: The room of the pages that joined with the control role (activity lights).
CONTROL_ROOM = "control"
#: The lights in the header: OSC and MIDI, in and out.
LIGHTS = ("osc_in", "osc_out", "midi_in", "midi_out")
#: ``STAGE_BRIDGE_MONITOR=off`` leaves the hooks out altogether (for measuring what they cost).
SWITCH_VARIABLE = "STAGE_BRIDGE_MONITOR"

#: One message seen: (number, time, transport, direction, peer, what, args, control).
Entry = tuple[int, float, str, str, str, object, object, str]
#: Sends a Socket.IO event: (event, payload, room).
Emit = Callable[[str, Any, str], None]


class Monitor:
    """The ring of messages seen while a page watches, and the pages that watch.

    ``emit(event, payload, room)`` sends to a Socket.IO room; ``status()``
    gives the rows of the per-target status (:func:`targets`); ``counters()``
    the transports' counts of messages in and out, by light; ``present(sid)``
    whether a page is still connected.
    """

    def __init__(
        self,
        emit: Emit,
        status: Callable[[], list[dict[str, Any]]] = list,
        counters: Callable[[], dict[str, int]] = dict,
        present: Callable[[str], bool] = lambda sid: True,
        enabled: bool = True,
    ) -> None:
        #: The one check on the way of every message: True while a page has its drawer open.
        self.watching = False
        self.enabled = enabled
        self._emit = emit
        self._status = status
        self._counters = counters
        self._present = present
        self._ring: deque[Entry] = deque(maxlen=RING)
        self._numbers = itertools.count(1)
        self._sent = 0  # the number of the last entry sent to the room
        self._watchers: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._workers = Workers()
        self._lit: dict[str, bool] = dict.fromkeys(LIGHTS, False)
        self._seen: dict[str, int] | None = None  # the counters at the last look

    # -- the hook -------------------------------------------------------------------
    def saw(
        self, transport: str, direction: str, peer: str, what: object, args: object = None, control: str = ""
    ) -> None:
        """One message in or out; call it only ``if monitor.watching`` (see the module's docstring).

        ``what`` is an OSC address, an OSC packet (bytes, decoded later), a
        mido message, or an event's name; ``args`` its arguments as they came.
        """
        self._ring.append((next(self._numbers), time.time(), transport, direction, peer, what, args, control))

    # -- pages --------------------------------------------------------------------------
    def open(self, sid: str) -> dict[str, Any]:
        """``sid`` opened its drawer: what the ring holds now, and the targets' states."""
        if not self.enabled:
            return {"ok": False, "error": "the monitor is switched off on this bridge (STAGE_BRIDGE_MONITOR=off)"}
        with self._lock:
            first = not self._watchers
            self._watchers.add(sid)
            self.watching = True
            entries = list(self._ring)
            if first and entries:
                # This page gets these now; the room is sent what comes after (a second page that
                # opens meanwhile may get a few twice: the page keeps each number once).
                self._sent = entries[-1][0]
        self._wake.set()
        return {"ok": True, "size": RING, "entries": [describe(e) for e in entries], "targets": self._status()}

    def close(self, sid: str) -> None:
        """``sid`` closed its drawer (or left): when it was the last, recording stops."""
        with self._lock:
            if sid not in self._watchers:
                return
            self._watchers.discard(sid)
            if self._watchers:
                return
            self.watching = False
        # What the ring holds stays for the next drawer, with a line saying where recording paused.
        self.saw("monitor", "", "", "no drawer open: nothing recorded from here until one opens")

    def forget(self, gone: Callable[[str], bool]) -> None:
        """Let go of watchers that left without saying so (their page closed)."""
        with self._lock:
            stale = [sid for sid in self._watchers if gone(sid)]
        for sid in stale:
            self.close(sid)

    @property
    def watchers(self) -> int:
        with self._lock:
            return len(self._watchers)

    # -- the thread -----------------------------------------------------------------------
    def start(self) -> None:
        self._workers.start((self._send_loop, "monitor"), (self._light_loop, "monitor-lights"))

    def stop(self) -> None:
        self._workers.stop(wake=(self._wake.set,))

    def _send_loop(self) -> None:
        next_status = 0.0
        while not self._workers.stopping.is_set():
            if not self.watching:
                self._wake.wait()
                self._wake.clear()
                continue
            self.flush()
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + STATUS_INTERVAL
                self.forget(lambda sid: not self._present(sid))
                self._emit("monitor status", {"targets": self._status()}, ROOM)
            self._workers.wait(SEND_INTERVAL)

    def flush(self) -> None:
        """Send the entries the watching pages have not had yet; say how many a flood pushed out unsent."""
        entries = list(self._ring)  # one copy in C: safe beside threads that append
        with self._lock:
            last = self._sent
            fresh = [e for e in entries if e[0] > last]
            if not fresh:
                return
            self._sent = fresh[-1][0]
        skipped = fresh[0][0] - last - 1 if last else 0
        self._emit("monitor", {"entries": [describe(e) for e in fresh], "skipped": max(0, skipped)}, ROOM)

    def _light_loop(self) -> None:
        while not self._workers.wait(ACTIVITY_INTERVAL):
            self.look()

    def look(self) -> dict[str, bool] | None:
        """Compare the counters with the last look; tell the control pages when a light changed. What changed."""
        counts = self._counters()
        seen, self._seen = self._seen, counts
        if seen is None:
            # The first look: what came before the bridge started watching lights no light.
            self._lit = {light: False for light in LIGHTS if light in counts}
            return None
        # Only the lights of what the config has (no MIDI lights without [midi]); a reload that adds
        # or removes a table changes the keys, and the pages are told.
        lit = {light: counts[light] != seen.get(light, 0) for light in LIGHTS if light in counts}
        if lit == self._lit:
            return None
        self._lit = lit
        self._emit("activity", lit, CONTROL_ROOM)
        return lit

    @property
    def lights(self) -> dict[str, bool]:
        """Each light of what the config has, on or off."""
        counts = self._counters()
        return {light: self._lit.get(light, False) for light in LIGHTS if light in counts}


class _Idle:
    """The monitor of an adapter no bridge attached one to: never watching."""

    watching = False

    def saw(self, *args: object, **kwargs: object) -> None:  # pragma: no cover - never called: watching is False
        return None


#: What an adapter's ``monitor`` is until :func:`attach` gives it the bridge's.
IDLE: Any = _Idle()


def switched_on() -> bool:
    """False when the environment says ``STAGE_BRIDGE_MONITOR=off`` (the bench's "before")."""
    return os.environ.get(SWITCH_VARIABLE, "on").lower() not in ("off", "0", "false", "no")


def attach(monitor: Monitor, parts: Iterable[object]) -> None:
    """Give each part that has a ``monitor`` attribute (adapters, and their inbound halves) this one."""
    if not monitor.enabled:
        return
    for part in parts:
        if part is not None and hasattr(part, "monitor"):
            part.monitor = monitor  # type: ignore[attr-defined]


# -- what an entry says -----------------------------------------------------------------------------


def describe(entry: Entry) -> dict[str, Any]:
    """An entry as the drawer shows it: plain strings, worked out here rather than where the message passed."""
    number, at, transport, direction, peer, what, args, control = entry
    shown_what, shown_args = _what(what, args)
    return {
        "n": number,
        "t": round(at * 1000),
        "transport": transport,
        "dir": direction,
        "peer": peer,
        "what": shown_what,
        "args": shown_args,
        "control": control,
    }


def _what(what: object, args: object) -> tuple[str, str]:
    if isinstance(what, bytes | bytearray):
        return _osc_packet(bytes(what))
    kind = getattr(what, "type", None)
    if isinstance(kind, str) and hasattr(what, "dict"):
        return _midi(what)
    return str(what), _args(args)


def _osc_packet(packet: bytes) -> tuple[str, str]:
    """An OSC message as address and arguments; a packet that is not one, by its size."""
    from pythonosc.osc_message import OscMessage

    try:
        message = OscMessage(packet)
    except Exception:  # any parse error of a packet we sent: shown by its size
        return f"({len(packet)} bytes)", ""
    return message.address, _args(list(message.params))


def _midi(message: Any) -> tuple[str, str]:
    """A mido message as its type and its data, channels 1-16 as people count them."""
    fields = message.dict()
    fields.pop("type", None)
    fields.pop("time", None)
    parts = []
    if "channel" in fields:
        parts.append(f"ch {fields.pop('channel') + 1}")
    parts += [f"{key} {value}" for key, value in fields.items() if key != "data"]
    return str(message.type), " · ".join(parts)


def _args(args: object) -> str:
    if args is None:
        return ""
    items = list(args) if isinstance(args, list | tuple) else [args]
    return " ".join(_arg(a) for a in items)


def _arg(arg: object) -> str:
    if isinstance(arg, bytes | bytearray):
        return f"<blob {len(arg)} bytes>"
    if isinstance(arg, float):
        return f"{arg:.6g}"
    try:
        return json.dumps(arg, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(arg)


def targets(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-target rows of the drawer, from ``/healthz``'s adapters: OSC targets and clients, MIDI ports,
    the pages and the cluster, each with a state and a short detail."""
    adapters = status.get("adapters", {})
    rows: list[dict[str, Any]] = []
    web = adapters.get("web")
    if web:
        rows.append({"transport": "web", "name": "pages", "state": "ok", "detail": f"{web.get('clients', 0)} open"})
    osc = adapters.get("osc")
    if osc:
        rows.append({"transport": "osc/udp", "name": f"listen {osc['listen']}", "state": "ok",
                     "detail": f"{osc['received']} in, {osc['dropped']} dropped"})  # fmt: skip
        for target in osc.get("targets", []):
            detail = f"{target.get('sent', 0)} sent" + (f", {target['errors']} errors" if target.get("errors") else "")
            detail += f"; {target['error']}" if target.get("error") else ""  # (why it is down, or silent)
            rows.append({"transport": f"osc/{target['transport']}", "name": target["address"],
                         "state": target["state"], "detail": detail})  # fmt: skip
        tcp = osc.get("tcp")
        if tcp:
            rows.append({"transport": "osc/tcp", "name": f"listen {tcp['listen']}", "state": "ok",
                         "detail": f"{tcp['clients']} clients"})  # fmt: skip
    midi = adapters.get("midi")
    if midi:
        for direction in ("input", "output"):
            port = midi.get(direction) or {}
            rows.append({"transport": "midi", "name": f"{direction} {port.get('name', '?')}",
                         "state": port.get("state", "off"), "detail": port.get("port") or ""})  # fmt: skip
    cluster = adapters.get("cluster")
    if cluster:
        rows.append({"transport": "cluster", "name": cluster.get("name", ""), "state": cluster.get("state", ""),
                     "detail": f"{cluster.get('members', 0)} processes"})  # fmt: skip
    return rows
