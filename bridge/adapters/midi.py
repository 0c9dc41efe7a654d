"""MIDI ports: controllers in; synths, motorized faders and LEDs out.

The backend string comes from the config and is resolved with a
``mido.Backend`` object of this adapter's own (never ``mido.set_backend``,
which rewrites module globals). Messages are mido's; the translation is
:mod:`bridge.mapping`'s.

Threads, and why:

* **Reader.** With python-rtmidi, the input is read from rtmidi's own queue
  every millisecond instead of through a Python callback. A callback runs on
  the MIDI system's thread and must take the GIL there; with JACK that
  thread is the JACK process thread, and while it waits for the GIL the
  JACK cycles go by and their MIDI events are lost (measured: most of a
  burst, as soon as other Python threads are busy). rtmidi queues in C++ on
  that thread and no Python runs there. The reader decodes the messages and
  sets the hub.
* **send()** runs on whichever thread made the change, under the hub's
  dispatch lock. It writes to the open output or drops the message; it never
  waits for a device.
* **Watcher.** Every second it lists the ports: it opens a configured
  device that appeared, closes one that vanished, and when the output comes
  back sends it every current value, so motorized faders and LEDs match at
  once (and once more at the next look, see
  :meth:`MidiAdapter._install_output`). Virtual ports are the bridge's own
  and do not vanish; the watcher only creates one the MIDI system refused
  at first.

Each port is "connected", "missing" (looked for every second) or "off" (no
MIDI system for this backend on the machine: one warning, the rest of the
bridge runs, and MIDI stays off until the bridge is restarted). Every change
of state is logged once and pushed to the browsers as ``midi status``.

Bindings can change while the bridge runs (MIDI learn, :mod:`bridge.learn`):
the control <-> message tables are rebuilt and swapped whole, so the reader
and ``send()`` always use one consistent set. Faders that pick a value up
instead of jumping to it are :mod:`bridge.takeover`'s business; this adapter
asks it about every incoming value and tells it about every change made
elsewhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import mido

from bridge.config import MidiConfig
from bridge.errors import BridgeError, InvalidValue, UnknownControl
from bridge.hub import Hub
from bridge.learn import BindingStore, Learned, Learner, describe, effective, label, overlaps, to_table
from bridge.mapping import Decoder, encode
from bridge.model import Change, Control, MidiMapping, Origin, Value
from bridge.ratelimit import LogLimiter
from bridge.takeover import Ghost, SoftTakeover
from bridge.takeover import mode as takeover_mode

log = logging.getLogger(__name__)

State = Literal["connected", "missing", "off"]
Role = Literal["input", "output"]

#: Seconds between two looks for missing or vanished ports.
POLL_INTERVAL = 1.0
#: Seconds between two reads of an idle input: the most a message waits.
READ_INTERVAL = 0.001
#: Messages rtmidi holds for the reader; a fast knob twist fits many times over.
QUEUE_LIMIT = 8192
#: Messages taken from the input at once, so the input lock is held briefly.
READ_BATCH = 1024
RTMIDI_BACKEND = "mido.backends.rtmidi"
#: MIDI client names of the bridge's ports, as other software lists them.
CLIENT_NAMES: dict[Role, str] = {"input": "Stage Bridge in", "output": "Stage Bridge out"}
_LISTER_CLIENT = "Stage Bridge ports"
#: rtmidi's names for the ports it makes to reach a device: never a device to
#: match, or the bridge could end up listening to its own output.
_RTMIDI_OWN_PORTS = ("rtmidi input", "rtmidi output")
#: What mido and python-rtmidi raise when there is no MIDI system, no such
#: port, or a port went away (rtmidi's errors derive from these).
_MIDI_ERRORS = (OSError, ValueError, RuntimeError, ImportError, MemoryError)


class LearnRefused(BridgeError):
    """A learn or unbind that cannot be done; the message says why, for the page."""


class AmbiguousPort(BridgeError):
    """A configured port name matches more than one port."""

    def __init__(self, wanted: str, candidates: list[str]) -> None:
        self.wanted = wanted
        self.candidates = candidates
        super().__init__(f"{wanted!r} matches {len(candidates)} ports: {', '.join(candidates)}")


def match_port(wanted: str, names: Iterable[str]) -> str | None:
    """The port ``wanted`` names: an exact name, else the one port containing it.

    The part is matched regardless of case ("nanokontrol" finds
    "nanoKONTROL2:nanoKONTROL2 MIDI 1 20:0", whose numbers may change from one
    plug-in to the next). Returns None when nothing matches; raises
    :class:`AmbiguousPort`, listing the candidates, when several do.
    """
    names = list(names)
    if wanted in names:
        return wanted
    part = wanted.casefold()
    candidates = [
        name
        for name in names
        if part in name.casefold() and not any(own in name.casefold() for own in _RTMIDI_OWN_PORTS)
    ]
    if len(candidates) > 1:
        raise AmbiguousPort(wanted, candidates)
    return candidates[0] if candidates else None


# -- the MIDI system -------------------------------------------------------------------
class _Inlet(Protocol):
    """An open input, read by polling."""

    name: str

    def pending(self) -> list[mido.Message]: ...

    def close(self) -> None: ...


def message_from_bytes(data: Any) -> mido.Message | None:
    """The message in ``data`` (a list of byte values), or None when it is not a whole one."""
    try:
        return mido.Message.from_bytes(data)
    except (ValueError, TypeError, IndexError):
        return None  # a broken message is no control's business


class _RtmidiInlet:
    """A python-rtmidi input whose messages wait in rtmidi's own queue."""

    def __init__(self, rtmidi: Any, api: int, name: str, virtual: bool) -> None:
        rt = rtmidi.MidiIn(api, name=CLIENT_NAMES["input"], queue_size_limit=QUEUE_LIMIT)
        try:
            # Clock, sysex and active sensing set no control: dropped before Python sees them.
            rt.ignore_types(sysex=True, timing=True, active_sense=True)
            if virtual:
                rt.open_virtual_port(name)
            else:
                names = rt.get_ports()
                if name not in names:
                    raise OSError(f"unknown port {name!r}")
                rt.open_port(names.index(name))
        except BaseException:
            rt.delete()
            raise
        self._rt = rt
        self.name = name

    def pending(self) -> list[mido.Message]:
        messages = []
        for _ in range(READ_BATCH):
            item = self._rt.get_message()
            if item is None:
                break
            message = message_from_bytes(item[0])
            if message is not None:
                messages.append(message)
        return messages

    def close(self) -> None:
        self._rt.close_port()
        self._rt.delete()


class _MidoInlet:
    """An input of any other mido backend, read with ``iter_pending()``."""

    def __init__(self, port: Any) -> None:
        self._port = port
        self.name: str = port.name

    def pending(self) -> list[mido.Message]:
        return list(self._port.iter_pending())

    def close(self) -> None:
        self._port.close()


class MidiSystem:
    """The MIDI system behind a backend string: lists its ports and opens them.

    Raises ``OSError`` (or ``ValueError``, ``ImportError``) when there is no
    such system here: no ALSA sequencer, no JACK server, an unknown backend.
    """

    def __init__(self, backend_name: str) -> None:
        backend = mido.Backend(backend_name, load=True)
        self._rtmidi: Any = None
        self._api = 0
        self._listers: tuple[Any, Any] | None = None
        if backend.name == RTMIDI_BACKEND:
            import rtmidi

            api_ids = {n[len("API_") :]: getattr(rtmidi, n) for n in dir(rtmidi) if n.startswith("API_")}
            api = api_ids.get(backend.api) if backend.api else rtmidi.API_UNSPECIFIED
            if api is None:
                raise ValueError(f"unknown rtmidi API {backend.api!r}; one of {', '.join(sorted(api_ids))}")
            # One client per direction for the whole run: mido's own listing
            # opens and closes two MIDI clients per call, which every patchbay
            # on the machine would see flicker once a second.
            lister_in = rtmidi.MidiIn(api, name=_LISTER_CLIENT)
            try:
                lister_out = rtmidi.MidiOut(api, name=_LISTER_CLIENT)
            except BaseException:
                lister_in.delete()
                raise
            self._listers = (lister_in, lister_out)
            self._rtmidi = rtmidi
            # Pin the API rtmidi picked, so ports open where the listers look.
            self._api = lister_in.get_current_api()
            api_names = {number: name for name, number in api_ids.items()}
            backend = mido.Backend(backend.name, api=api_names[self._api], load=True)
        self.backend = backend

    def __str__(self) -> str:
        return f"{self.backend.name}/{self.backend.api}" if self.backend.api else str(self.backend.name)

    def inputs(self) -> list[str]:
        """Names of the ports one can read from."""
        if self._listers is not None:
            return list(self._listers[0].get_ports())
        return list(self.backend.get_input_names())

    def outputs(self) -> list[str]:
        """Names of the ports one can write to."""
        if self._listers is not None:
            return list(self._listers[1].get_ports())
        return list(self.backend.get_output_names())

    def open_input(self, name: str, virtual: bool) -> _Inlet:
        if self._rtmidi is not None:
            return _RtmidiInlet(self._rtmidi, self._api, name, virtual)
        return _MidoInlet(self.backend.open_input(name, virtual=virtual))

    def open_output(self, name: str, virtual: bool) -> Any:
        if virtual and self._rtmidi is not None:
            return self.backend.open_output(name, virtual=True, client_name=CLIENT_NAMES["output"])
        return self.backend.open_output(name, virtual=virtual)

    def close(self) -> None:
        if self._listers is not None:
            for lister in self._listers:
                lister.delete()
            self._listers = None


# -- the adapter -------------------------------------------------------------------------
@dataclass
class _Side:
    """One direction: what the config names, the open port and its state."""

    role: Role
    wanted: str
    port: Any = None  # an _Inlet for the input, a mido output port, or None
    state: State = "off"
    problem: object = None  # the last problem logged, so that each is logged once

    def status(self) -> dict[str, Any]:
        return {"name": self.wanted, "port": None if self.port is None else self.port.name, "state": self.state}


class MidiAdapter:
    """MIDI input and output ports as a hub source and sink.

    ``push(event, payload)`` sends a status event to every browser (and to
    later ones when they connect); this adapter pushes ``midi status`` on
    every change of a port's state, ``midi bindings``, ``midi learning`` and
    ``midi ghost``. ``notify(event, payload)`` tells the browsers connected
    now, for one-off messages (``midi learned``). ``bindings_file`` holds
    the learned bindings; without one, learned bindings last until a restart.
    """

    name = "midi"

    def __init__(
        self,
        hub: Hub,
        config: MidiConfig,
        push: Callable[[str, Any], None],
        poll_interval: float = POLL_INTERVAL,
        bindings_file: Path | None = None,
        notify: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.hub = hub
        self.config = config
        self.push = push
        self.notify = notify or push
        self.poll_interval = poll_interval
        self._in = _Side("input", config.input)
        self._out = _Side("output", config.output)
        # Bindings: the config's, overridden by learned ones; the tables are
        # swapped whole under the table lock, one binding change at a time.
        self._store = BindingStore(bindings_file) if bindings_file is not None else None
        self._overrides: dict[str, MidiMapping | None] = {}
        self._bind_lock = threading.Lock()
        self._table_lock = threading.Lock()
        self._takeover = SoftTakeover()
        self._ghost_lock = threading.Lock()
        self._learner = Learner()
        self._controls: dict[str, Control] = {}
        self._decoder = Decoder(())
        self._install({cid: c.midi for cid, c in hub.controls.items()})
        self._warn = LogLimiter(log)
        self._system: MidiSystem | None = None
        # The input port, between the reader and the watcher.
        self._in_lock = threading.Lock()
        self._has_input = threading.Event()
        # The output port and what was last sent on it; taken inside the
        # hub's dispatch lock, never the other way round.
        self._out_lock = threading.Lock()
        self._last_sent: dict[str, int] = {}
        # Output budget: a token bucket holding a tenth of a second's worth, and
        # the changes waiting for it, the latest per control, in order.
        self._tokens = float(self._burst)
        self._refilled = time.monotonic()
        self._held_out: dict[str, tuple[int, tuple[mido.Message, ...]]] = {}
        self._out_waiting = threading.Event()
        self.held_out = 0
        self._state_lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._resend_due = False
        #: How many times the ports were looked for (shown in /healthz).
        self.scans = 0

    # -- adapter surface -----------------------------------------------------------
    def start(self) -> None:
        """Load the learned bindings, open the ports (or note them missing) and start the threads. Never raises."""
        self._stopping.clear()
        self._load_bindings()
        try:
            self._start()
        except Exception:  # a MIDI fault of any kind must not stop the bridge
            log.exception("MIDI failed to start; MIDI is off, everything else runs")
            self._close_all()
            self._set_states("off")

    def stop(self) -> None:
        """Stop the threads, then close the ports."""
        self._stopping.set()
        self._has_input.set()
        self._out_waiting.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._close_all()
        with self._state_lock:
            self._in.state = self._out.state = "off"

    def send(self, change: Change) -> None:
        """Send ``change`` unless it came from MIDI (feedback aside) or the device shows it already."""
        control = self._controls.get(change.control.id, change.control)  # with its binding of now
        mapping = control.midi
        if mapping is None:
            return
        if change.origin.kind != "midi":
            # Set elsewhere: a pickup fader must reach the new value before it moves it.
            self._push_ghost(self._takeover.moved_elsewhere(control.id))
        number, messages = encode(control, change.value)
        with self._out_lock:
            if change.origin.kind == "midi" and not mapping.feedback:
                # The controller is there already: a later change to this same
                # number from elsewhere must not be skipped as "already sent".
                self._last_sent[control.id] = number
                return
            port = self._out.port
            if port is None:
                return  # missing: every value is sent when it comes back
            held = self._held_out
            held.pop(control.id, None)  # a newer value replaces one still waiting
            if self._last_sent.get(control.id) == number:
                return  # the device shows it already
            if held or not self._take(len(messages)):
                # Over the budget: the latest value per control waits its turn.
                held[control.id] = (number, messages)
                self.held_out += 1
                self._out_waiting.set()
                return
            if self._send(port, messages):
                self._last_sent[control.id] = number

    @property
    def _burst(self) -> int:
        return max(1, self.config.budget // 10)

    def _take(self, count: int) -> bool:
        """Take ``count`` messages from the budget (caller holds the output lock)."""
        if self.config.budget <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(float(self._burst), self._tokens + (now - self._refilled) * self.config.budget)
        self._refilled = now
        if self._tokens >= count:
            self._tokens -= count
            return True
        return False

    def _drain_held(self) -> None:
        """Send held changes as the budget allows; the final value of each control always goes."""
        while not self._stopping.is_set():
            self._out_waiting.wait()
            if self._stopping.is_set():
                return
            with self._out_lock:
                port = self._out.port
                while self._held_out and port is not None:
                    cid, (number, messages) = next(iter(self._held_out.items()))
                    if self._last_sent.get(cid) == number:
                        del self._held_out[cid]
                        continue
                    if not self._take(len(messages)):
                        break
                    del self._held_out[cid]
                    if self._send(port, messages):
                        self._last_sent[cid] = number
                if port is None:
                    self._held_out.clear()  # every value is sent when the device comes back
                if not self._held_out:
                    self._out_waiting.clear()
            self._stopping.wait(1.0 / max(1, self.config.budget) if self._held_out else 0)

    def describe(self) -> dict[str, Any]:
        """The MIDI part of ``/healthz``."""
        with self._state_lock:
            ports = {"input": self._in.status(), "output": self._out.status()}
        return {
            "backend": self.config.backend,
            "virtual": self.config.virtual,
            "scans": self.scans,
            "budget": self.config.budget,
            "held_out": self.held_out,
            **ports,
        }

    # -- start and stop --------------------------------------------------------------
    def _start(self) -> None:
        try:
            system = MidiSystem(self.config.backend)
            inputs, outputs = system.inputs(), system.outputs()
        except _MIDI_ERRORS as err:
            log.warning(
                "MIDI is off: backend %r is not available here (%s); everything else runs. "
                "Start the MIDI system (ALSA sequencer or JACK server) and restart the bridge.",
                self.config.backend,
                err,
            )
            self._set_states("off")
            return
        self._system = system
        log.info("MIDI backend %s; inputs found: %s; outputs found: %s", system, inputs or "none", outputs or "none")
        self._spawn(self._read, "midi-in")
        self._spawn(self._drain_held, "midi-out")
        self._scan(inputs, outputs)
        self._publish()
        self._spawn(self._watch, "midi-ports")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _close_all(self) -> None:
        self._close(self._in)
        self._close(self._out)
        if self._system is not None:
            self._system.close()
            self._system = None

    def _close(self, side: _Side) -> None:
        # Taken out of use under its lock first: the reader or send() never
        # touch a port that is being closed.
        with self._in_lock if side.role == "input" else self._out_lock:
            port, side.port = side.port, None
            if side.role == "output":
                self._last_sent.clear()
        if port is None:
            return
        try:
            port.close()
        except _MIDI_ERRORS as err:
            log.warning("MIDI %s %s: error on close (%s)", side.role, port.name, err)

    # -- looking for ports -------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            system = self._system
            if system is None:
                return
            try:
                # Virtual ports are the bridge's own: no need to list the others.
                inputs, outputs = ([], []) if self.config.virtual else (system.inputs(), system.outputs())
            except _MIDI_ERRORS as err:
                self._warn.warning("list", "MIDI: cannot list ports (%s); trying again", err)
                continue
            resend, self._resend_due = self._resend_due, False
            if self._scan(inputs, outputs):
                self._publish()
            if resend:
                self.hub.with_values(self._resend)

    def _scan(self, inputs: list[str], outputs: list[str]) -> bool:
        """Open what appeared, close what vanished; True when a state changed."""
        self.scans += 1
        changed = self._check(self._in, inputs)
        return self._check(self._out, outputs) or changed

    def _check(self, side: _Side, names: list[str]) -> bool:
        if self.config.virtual:
            return self._check_virtual(side)
        before = side.state
        if side.port is not None:
            if side.port.name in names:
                return False
            log.warning("MIDI %s %r disappeared; looking for %r every second", side.role, side.port.name, side.wanted)
            side.problem = "not found"  # said already: the next looks stay quiet
            self._close(side)
            self._set_state(side, "missing")
            return True
        try:
            found = match_port(side.wanted, names)
        except AmbiguousPort as err:
            self._problem(side, ("ambiguous", tuple(err.candidates)), "MIDI %s: %s; name one exactly", side.role, err)
            found = None
        else:
            if found is None:
                self._problem(
                    side,
                    "not found",
                    "MIDI %s %r not found (ports: %s); looking for it every second",
                    side.role,
                    side.wanted,
                    ", ".join(names) or "none",
                )
        if found is not None:
            try:
                self._open(side, found)
            except _MIDI_ERRORS as err:
                self._problem(
                    side, ("open", str(err)), "MIDI %s: cannot open %r (%s); trying again", side.role, found, err
                )
            else:
                side.problem = None
                log.info("MIDI %s: opened %r", side.role, found)
                return True
        self._set_state(side, "missing")
        return side.state != before

    def _check_virtual(self, side: _Side) -> bool:
        """Create the virtual port if it is not there yet (a busy MIDI system may refuse at first)."""
        if side.port is not None:
            return False
        before = side.state
        try:
            self._open(side, side.wanted, virtual=True)
        except _MIDI_ERRORS as err:
            self._problem(
                side,
                ("create", str(err)),
                "MIDI %s: cannot create virtual port %r (%s); trying again every second",
                side.role,
                side.wanted,
                err,
            )
            self._set_state(side, "missing")
            return side.state != before
        side.problem = None
        log.info("MIDI %s: created virtual port %r (client %r)", side.role, side.wanted, CLIENT_NAMES[side.role])
        return True

    def _problem(self, side: _Side, key: object, msg: str, *args: object) -> None:
        # Once per distinct problem, not once a second.
        if side.problem != key:
            side.problem = key
            log.warning(msg, *args)

    def _open(self, side: _Side, name: str, virtual: bool = False) -> None:
        system = self._system
        if system is None:  # stopped meanwhile
            return
        if side.role == "input":
            self._install_input(system.open_input(name, virtual=virtual))
        elif virtual:
            port = system.open_output(name, virtual=True)
            with self._out_lock:  # nobody listens yet: nothing to send
                side.port = port
        else:
            port = system.open_output(name, virtual=False)
            # Under the hub's dispatch order: no change slips between the
            # values sent here and the next send(), so the device ends on the newest.
            self.hub.with_values(lambda values: self._install_output(port, values))
        self._set_state(side, "connected")

    def _install_input(self, inlet: _Inlet) -> None:
        with self._in_lock:
            self._in.port = inlet
            self._has_input.set()

    def _install_output(self, port: Any, values: dict[str, Value]) -> None:
        with self._out_lock:
            self._out.port = port
            self._last_sent.clear()
            self._send_all(port, values)
        # A JACK connection takes effect a cycle or more after it is made, and
        # what is written before is dropped: send everything once more at the
        # next look. The same values again are harmless to any device.
        self._resend_due = True

    def _resend(self, values: dict[str, Value]) -> None:
        with self._out_lock:
            if self._out.port is not None:
                self._send_all(self._out.port, values)

    def _send_all(self, port: Any, values: dict[str, Value]) -> None:
        """Send every mapped control's value; the caller holds the output lock."""
        for control in self._controls.values():
            if control.midi is None:
                continue
            number, messages = encode(control, values[control.id])
            if not self._send(port, messages):
                return
            self._last_sent[control.id] = number

    def _send(self, port: Any, messages: tuple[mido.Message, ...]) -> bool:
        try:
            for message in messages:
                port.send(message)
        except _MIDI_ERRORS as err:
            self._warn.warning(("send", port.name), "MIDI output %r: cannot send (%s)", port.name, err)
            return False
        return True

    # -- status --------------------------------------------------------------------------
    def _set_state(self, side: _Side, state: State) -> None:
        with self._state_lock:
            side.state = state

    def _set_states(self, state: State) -> None:
        self._set_state(self._in, state)
        self._set_state(self._out, state)
        self._publish()

    def _publish(self) -> None:
        with self._state_lock:
            payload = {"input": self._in.status(), "output": self._out.status()}
        self.push("midi status", payload)

    # -- MIDI in -------------------------------------------------------------------------
    def _read(self) -> None:
        while True:
            self._has_input.wait()
            if self._stopping.is_set():
                return
            with self._in_lock:
                inlet = self._in.port
                if inlet is None:
                    # Cleared under the lock that installs an input: no wake-up is lost.
                    self._has_input.clear()
                    continue
                try:
                    messages = inlet.pending()
                except _MIDI_ERRORS as err:
                    self._warn.warning(("read", inlet.name), "MIDI input %r: cannot read (%s)", inlet.name, err)
                    messages = []
            if not messages:
                if self._learner.target is not None:
                    self._learn_poll()
                # A plain sleep costs half the CPU of an Event wait at this
                # rate; stop() is noticed one interval later at most.
                time.sleep(READ_INTERVAL)
                continue
            try:
                self._apply(inlet.name, messages)
            except Exception:  # the reader must outlive any one bad message
                log.exception("MIDI in: failed to apply %d messages from %r", len(messages), inlet.name)

    def _apply(self, port_name: str, messages: list[mido.Message]) -> None:
        if self._learner.target is not None:
            learned, messages = self._learner.feed(messages, time.monotonic())
            if learned is not None:
                self._learned(learned)  # the rest of the batch already uses the new binding
        origin = Origin("midi", port_name)
        for control, value in self._decoder.decode(messages, self._current):
            current = self._current(control) if control.type == "range" else None
            if isinstance(value, int | float) and isinstance(current, int | float):
                take, ghost = self._takeover.hardware(control, value, current)
                self._push_ghost(ghost)
                if not take:
                    continue  # not picked up yet: the sound stays where it is
            try:
                self.hub.set(control.id, value, origin)
            except (UnknownControl, InvalidValue) as err:
                self._warn.warning(("in", control.id), "MIDI in from %r rejected: %s", port_name, err)

    def _current(self, control: Control) -> Value:
        return self.hub.get(control.id)

    # -- bindings: the config's, learned ones, and the tables built from them ------------
    def _install(self, mappings: dict[str, MidiMapping | None]) -> None:
        """Swap in the tables for ``mappings`` (every control id -> its binding or None)."""
        controls = {cid: replace(c, midi=mappings.get(cid)) for cid, c in self.hub.controls.items()}
        decoder = Decoder(controls.values())
        with self._table_lock:
            self._controls = controls
            self._decoder = decoder
        for ghost in self._takeover.configure({cid: takeover_mode(c, c.midi) for cid, c in controls.items()}):
            self._push_ghost(ghost)

    def _load_bindings(self) -> None:
        if self._store is not None:
            self._overrides = self._store.load(self.hub.controls)
            if self._overrides:
                log.info("MIDI: %d bindings from %s override the config's", len(self._overrides), self._store.path)
        where = str(self._store.path) if self._store is not None else "config"
        self._install(effective(self.hub.controls.values(), self._overrides, where))
        self._publish_bindings()
        self.push("midi learning", {"who": None})

    def bindings(self) -> dict[str, dict[str, Any] | None]:
        """Every control that can have a binding, with it (or None): what pages and the API show."""
        controls = self._controls
        return {
            cid: describe(c.midi, c.type, cid in self._overrides) for cid, c in controls.items() if c.type != "text"
        }

    def takeover_modes(self) -> dict[str, str]:
        """How each bound range meets values set elsewhere: "jump" or "pickup"."""
        return {cid: self._takeover.mode(cid) for cid, c in self._controls.items() if c.type == "range"}

    @property
    def learning(self) -> str | None:
        """The control waiting for the hardware, or None."""
        return self._learner.target

    def _publish_bindings(self) -> None:
        self.push("midi bindings", {"bindings": self.bindings(), "takeover": self.takeover_modes()})

    def _push_ghost(self, ghost: Ghost | None) -> None:
        """Tell every page where a waiting fader's hardware is (data None: picked up)."""
        if ghost is None:
            return
        with self._ghost_lock:  # pushed in the order decided: the last map is the newest
            cid, value = ghost
            self.push("midi ghost", {"who": cid, "data": value, "ghosts": self._takeover.ghosts()})

    def learn(self, cid: object) -> Control:
        """Wait for the next knob, fader or pad moved, and bind it to ``cid``.

        Raises :class:`UnknownControl`, or :class:`LearnRefused` saying why
        (a text control, MIDI off).
        """
        control = self.hub.control(cid)
        if control.type == "text":
            raise LearnRefused(f"{control.label} is a text control: text has no MIDI form")
        with self._state_lock:
            state = self._in.state
        if state == "off":
            raise LearnRefused("MIDI is off: no MIDI system for this backend here (see the log); nothing to learn from")
        self._learner.start(control)
        log.info("MIDI learn: move a knob, fader or pad for %s", control.id)
        self.push("midi learning", {"who": control.id})
        return control

    def cancel_learn(self) -> str | None:
        """Stop waiting; returns the control that was waiting, if any."""
        cid = self._learner.cancel()
        if cid is not None:
            log.info("MIDI learn for %s cancelled", cid)
            self.push("midi learning", {"who": None})
        return cid

    def _learn_poll(self) -> None:
        learned = self._learner.poll(time.monotonic())
        if learned is not None:
            self._learned(learned)

    def _learned(self, learned: Learned) -> None:
        self.push("midi learning", {"who": None})
        try:
            self.bind(learned.control_id, learned.mapping)
        except Exception:  # the reader must go on whatever befell the binding
            log.exception("MIDI learn: could not bind %s", learned.control_id)

    def bind(self, cid: str, mapping: MidiMapping) -> list[str]:
        """Bind ``cid`` to ``mapping`` now, and save it; returns the controls it was moved from."""
        control = self.hub.control(cid)
        with self._bind_lock:
            current = {c: ctl.midi for c, ctl in self._controls.items()}
            moved = [o for o, m in current.items() if o != cid and m is not None and overlaps(m, mapping)]
            current[cid] = mapping
            self._overrides[cid] = mapping
            changes: dict[str, dict[str, Any] | None] = {cid: to_table(mapping, control.type)}
            removals = []
            for other in moved:
                current[other] = None
                if self.hub.controls[other].midi is None:
                    self._overrides.pop(other, None)  # learned only: back to the config's "none"
                    removals.append(other)
                else:
                    self._overrides[other] = None  # the config's binding stays off
                    changes[other] = None
            problem = self._save(changes, removals)
            self._rebind(current, [cid, *moved])
        names = ", ".join(self.hub.controls[o].label for o in moved)
        message = f"{control.label}: {label(mapping)}" + (f", moved from {names}" if moved else "") + problem
        log.info(
            "MIDI learn: %s bound to %s%s%s",
            cid,
            label(mapping),
            f" (moved from {', '.join(moved)})" if moved else "",
            problem,
        )
        binding = describe(mapping, control.type, True)
        self.notify("midi learned", {"who": cid, "binding": binding, "moved_from": moved, "message": message})
        return moved

    def unbind(self, cid: object) -> bool:
        """Remove ``cid``'s binding (learned or from the config); False when it had none."""
        control = self.hub.control(cid)
        with self._bind_lock:
            if self._controls[control.id].midi is None:
                return False
            current = {c: ctl.midi for c, ctl in self._controls.items()}
            current[control.id] = None
            if control.midi is None:
                self._overrides.pop(control.id, None)
                problem = self._save({}, [control.id])
            else:
                self._overrides[control.id] = None
                problem = self._save({control.id: None}, [])
            self._rebind(current, [control.id])
        log.info("MIDI: %s unbound%s", control.id, problem)
        message = f"{control.label}: no MIDI binding{problem}"
        self.notify("midi learned", {"who": control.id, "binding": None, "moved_from": [], "message": message})
        return True

    def _save(self, changes: dict[str, dict[str, Any] | None], removals: list[str]) -> str:
        """Write the learned bindings; returns "" or what went wrong, for the message."""
        if self._store is None:
            return " (not saved: no mappings file)"
        try:
            self._store.update(changes, removals)
        except OSError as err:
            log.warning("MIDI mappings %s: cannot save (%s); the binding works until a restart", self._store.path, err)
            return f" (not saved: {err.strerror or err})"
        return ""

    def _rebind(self, mappings: dict[str, MidiMapping | None], changed: list[str]) -> None:
        """Install ``mappings``; the ``changed`` controls start afresh on the output and for takeover."""
        self._install(mappings)
        with self._out_lock:
            for cid in changed:
                self._last_sent.pop(cid, None)
                self._held_out.pop(cid, None)
        for cid in changed:
            self._push_ghost(self._takeover.reset(cid))
        self._publish_bindings()
