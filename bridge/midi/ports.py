"""MIDI ports: the MIDI system behind a backend string, port names, and ports that come and go.

The backend string comes from the config and is resolved with a
``mido.Backend`` object of this module's own (never ``mido.set_backend``,
which rewrites module globals). Whatever mido or python-rtmidi raise (no
ALSA sequencer, no JACK server, an unknown port, a port gone) leaves this
module as :class:`MidiPortError`: the adapter has one error to handle.

Inputs are read by polling rtmidi's own queue rather than through a Python
callback: a callback runs on the MIDI system's thread and must take the
GIL there; with JACK that thread is the JACK process thread, and while it
waits for the GIL the JACK cycles go by and their MIDI events are lost
(measured: most of a burst, as soon as other Python threads are busy).
rtmidi queues in C++ on that thread and no Python runs there.

:class:`Ports` keeps the configured input and output: it opens a device
that appeared, closes one that vanished and creates virtual ports, each port
"connected", "missing" (looked for again) or "off" (no MIDI system).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import mido

from bridge.config import MidiConfig
from bridge.errors import AmbiguousPort, MidiPortError

log = logging.getLogger(__name__)

PortState = Literal["connected", "missing", "off"]
Direction = Literal["input", "output"]

#: Messages rtmidi holds for the reader; a fast knob twist fits many times over.
QUEUE_LIMIT = 8192
#: Messages taken from the input at once, so the input lock is held briefly.
READ_BATCH = 1024
RTMIDI_BACKEND = "mido.backends.rtmidi"
#: MIDI client names of the bridge's ports, as other software lists them.
CLIENT_NAMES: dict[Direction, str] = {"input": "Stage Bridge in", "output": "Stage Bridge out"}
_LISTER_CLIENT = "Stage Bridge ports"
#: rtmidi's names for the ports it makes to reach a device: never a device to
#: match, or the bridge could end up listening to its own output.
_RTMIDI_OWN_PORTS = ("rtmidi input", "rtmidi output")
#: What mido and python-rtmidi raise when there is no MIDI system, no such
#: port, or a port went away (rtmidi's errors derive from these).
_MIDI_ERRORS = (OSError, ValueError, RuntimeError, ImportError, MemoryError)


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


def message_from_bytes(data: Any) -> mido.Message | None:
    """The message in ``data`` (a list of byte values), or None when it is not a whole one."""
    try:
        return mido.Message.from_bytes(data)
    except (ValueError, TypeError, IndexError):
        return None  # a broken message is no control's business


class Inlet(Protocol):
    """An open input, read by polling."""

    name: str

    def pending(self) -> list[mido.Message]: ...

    def close(self) -> None: ...


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
        try:
            for _ in range(READ_BATCH):
                item = self._rt.get_message()
                if item is None:
                    break
                message = message_from_bytes(item[0])
                if message is not None:
                    messages.append(message)
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"cannot read {self.name!r}: {err}") from err
        return messages

    def close(self) -> None:
        try:
            self._rt.close_port()
            self._rt.delete()
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"error closing {self.name!r}: {err}") from err


class _MidoInlet:
    """An input of any other mido backend, read with ``iter_pending()``."""

    def __init__(self, port: Any) -> None:
        self._port = port
        self.name: str = port.name

    def pending(self) -> list[mido.Message]:
        try:
            return list(self._port.iter_pending())
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"cannot read {self.name!r}: {err}") from err

    def close(self) -> None:
        try:
            self._port.close()
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"error closing {self.name!r}: {err}") from err


class Outlet:
    """An open output (a mido port) whose errors are :class:`MidiPortError`."""

    def __init__(self, port: Any) -> None:
        self._port = port
        self.name: str = port.name

    def send(self, messages: Iterable[mido.Message]) -> None:
        try:
            for message in messages:
                self._port.send(message)
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"cannot send to {self.name!r}: {err}") from err

    def close(self) -> None:
        try:
            self._port.close()
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"error closing {self.name!r}: {err}") from err


class MidiSystem:
    """The MIDI system behind a backend string: lists its ports and opens them.

    Raises :class:`MidiPortError` when there is no such system here: no ALSA
    sequencer, no JACK server, an unknown backend.
    """

    def __init__(self, backend_name: str) -> None:
        try:
            self._setup(backend_name)
        except _MIDI_ERRORS as err:
            raise MidiPortError(str(err) or type(err).__name__) from err

    def _setup(self, backend_name: str) -> None:
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
        try:
            if self._listers is not None:
                return list(self._listers[0].get_ports())
            return list(self.backend.get_input_names())
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"cannot list inputs: {err}") from err

    def outputs(self) -> list[str]:
        """Names of the ports one can write to."""
        try:
            if self._listers is not None:
                return list(self._listers[1].get_ports())
            return list(self.backend.get_output_names())
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"cannot list outputs: {err}") from err

    def open_input(self, name: str, virtual: bool) -> Inlet:
        try:
            if self._rtmidi is not None:
                return _RtmidiInlet(self._rtmidi, self._api, name, virtual)
            return _MidoInlet(self.backend.open_input(name, virtual=virtual))
        except _MIDI_ERRORS as err:
            raise MidiPortError(str(err) or type(err).__name__) from err

    def open_output(self, name: str, virtual: bool) -> Outlet:
        try:
            if virtual and self._rtmidi is not None:
                return Outlet(self.backend.open_output(name, virtual=True, client_name=CLIENT_NAMES["output"]))
            return Outlet(self.backend.open_output(name, virtual=virtual))
        except _MIDI_ERRORS as err:
            raise MidiPortError(str(err) or type(err).__name__) from err

    def close(self) -> None:
        if self._listers is not None:
            for lister in self._listers:
                try:
                    lister.delete()
                except _MIDI_ERRORS as err:
                    log.warning("MIDI: error closing the port lister (%s)", err)
            self._listers = None


@dataclass
class Port:
    """One direction: what the config names, the open port and its state."""

    direction: Direction
    wanted: str
    port: Inlet | Outlet | None = None
    state: PortState = "off"
    problem: object = None  # the last problem logged, so that each is logged once

    def status(self) -> dict[str, Any]:
        return {"name": self.wanted, "port": None if self.port is None else self.port.name, "state": self.state}


#: Hands an opened port (or None: out of use) to its reader or writer.
Install = Callable[[Any], None]


class Ports:
    """The configured input and output: opened when they appear, closed when they vanish.

    ``install_input(inlet or None)`` and ``install_output(outlet or None)``
    put a port into use (or take it out of use, before it is closed) under
    the adapter's own locks.
    """

    def __init__(self, config: MidiConfig, install_input: Install, install_output: Install) -> None:
        self.config = config
        self.input = Port("input", config.input)
        self.output = Port("output", config.output)
        self._install = {"input": install_input, "output": install_output}
        self._state_lock = threading.Lock()
        self.system: MidiSystem | None = None
        #: How many times the ports were looked for (shown in /healthz).
        self.scans = 0

    def open_system(self) -> tuple[list[str], list[str]]:
        """Reach the MIDI system; the inputs and outputs it lists. :class:`MidiPortError` when there is none."""
        system = MidiSystem(self.config.backend)
        try:
            found = system.inputs(), system.outputs()
        except MidiPortError:
            system.close()
            raise
        self.system = system
        log.info("MIDI backend %s; inputs found: %s; outputs found: %s", system, found[0] or "none", found[1] or "none")
        return found

    def status(self) -> dict[str, Any]:
        with self._state_lock:
            return {"input": self.input.status(), "output": self.output.status()}

    def set_states(self, state: PortState) -> None:
        self._set_state(self.input, state)
        self._set_state(self.output, state)

    def look(self) -> bool:
        """List the ports (devices only: virtual ports are the bridge's own) and scan; True when a state changed."""
        system = self.system
        if system is None:
            return False
        inputs, outputs = ([], []) if self.config.virtual else (system.inputs(), system.outputs())
        return self.scan(inputs, outputs)

    def scan(self, inputs: list[str], outputs: list[str]) -> bool:
        """Open what appeared, close what vanished; True when a state changed."""
        self.scans += 1
        changed = self._check(self.input, inputs)
        return self._check(self.output, outputs) or changed

    def close_all(self) -> None:
        self._close(self.input)
        self._close(self.output)
        if self.system is not None:
            self.system.close()
            self.system = None

    # -- one port ------------------------------------------------------------------
    def _check(self, side: Port, names: list[str]) -> bool:
        if self.config.virtual:
            return self._check_virtual(side)
        before = side.state
        if side.port is not None:
            if side.port.name in names:
                return False
            log.warning(
                "MIDI %s %r disappeared; looking for %r every second", side.direction, side.port.name, side.wanted
            )
            side.problem = "not found"  # said already: the next looks stay quiet
            self._close(side)
            self._set_state(side, "missing")
            return True
        try:
            found = match_port(side.wanted, names)
        except AmbiguousPort as err:
            self._problem(
                side, ("ambiguous", tuple(err.candidates)), "MIDI %s: %s; name one exactly", side.direction, err
            )
            found = None
        else:
            if found is None:
                self._problem(
                    side,
                    "not found",
                    "MIDI %s %r not found (ports: %s); looking for it every second",
                    side.direction,
                    side.wanted,
                    ", ".join(names) or "none",
                )
        if found is not None:
            try:
                self._open(side, found)
            except MidiPortError as err:
                self._problem(
                    side, ("open", str(err)), "MIDI %s: cannot open %r (%s); trying again", side.direction, found, err
                )
            else:
                side.problem = None
                log.info("MIDI %s: opened %r", side.direction, found)
                return True
        self._set_state(side, "missing")
        return side.state != before

    def _check_virtual(self, side: Port) -> bool:
        """Create the virtual port if it is not there yet (a busy MIDI system may refuse at first)."""
        if side.port is not None:
            return False
        before = side.state
        try:
            self._open(side, side.wanted, virtual=True)
        except MidiPortError as err:
            self._problem(
                side,
                ("create", str(err)),
                "MIDI %s: cannot create virtual port %r (%s); trying again every second",
                side.direction,
                side.wanted,
                err,
            )
            self._set_state(side, "missing")
            return side.state != before
        side.problem = None
        log.info(
            "MIDI %s: created virtual port %r (client %r)", side.direction, side.wanted, CLIENT_NAMES[side.direction]
        )
        return True

    def _problem(self, side: Port, key: object, msg: str, *args: object) -> None:
        # Once per distinct problem, not once a second.
        if side.problem != key:
            side.problem = key
            log.warning(msg, *args)

    def _open(self, side: Port, name: str, virtual: bool = False) -> None:
        system = self.system
        if system is None:  # stopped meanwhile
            return
        port: Inlet | Outlet
        port = system.open_input(name, virtual) if side.direction == "input" else system.open_output(name, virtual)
        side.port = port
        self._install[side.direction](port)
        self._set_state(side, "connected")

    def _close(self, side: Port) -> None:
        # Taken out of use first: the reader or send() never touch a port that is being closed.
        port, side.port = side.port, None
        self._install[side.direction](None)
        if port is None:
            return
        try:
            port.close()
        except MidiPortError as err:
            log.warning("MIDI %s: %s", side.direction, err)

    def _set_state(self, side: Port, state: PortState) -> None:
        with self._state_lock:
            side.state = state
