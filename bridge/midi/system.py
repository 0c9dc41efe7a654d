"""The MIDI system behind a backend string: its ports listed, opened, read and written.

The backend string comes from the config and is resolved with a
``mido.Backend`` object of this module's own (never ``mido.set_backend``,
which rewrites module globals). Whatever mido or python-rtmidi raise (no
ALSA sequencer, no JACK server, an unknown port, a port gone) leaves this
module as :class:`MidiPortError`: the adapter has one error to handle.

An rtmidi input wakes its reader, except under JACK. Its callback runs on
the MIDI system's thread and does the least that can be done there: it
appends the message's bytes to a deque and, for the first message since the
reader last looked, writes one byte to a pipe (a deque append is atomic;
``os.write`` is the plain system call, which gevent does not patch). The
reader waits on the pipe (with ``select``, which gevent makes cooperative)
and decodes the messages on its own thread. A Python callback must take the
GIL, though, and with JACK that thread is the JACK process thread, which
must never wait: while the bridge's loop runs Python, the callback waits for
the switch interval (5 ms, several JACK periods; ``python -m
bench.jack_gil`` measures it), which a real-time JACK server counts as an
xrun. So a JACK input is read the other way: rtmidi queues
each message in C++ on the JACK thread, with no Python there, and the
reader takes them every :data:`READ_INTERVAL` (half of it on average, under
half a 64-frame period at 48 kHz). Inputs of other mido backends are
polled the same way.

With JACK, the system itself may go away (the server restarts): a
:class:`~bridge.midi.jack.JackWatch` hears it, and :attr:`MidiSystem.lost`
says so; the system must then be closed, every client of it, and a new one
opened once a server is back.

Which ports are wanted, and their coming and going, is :mod:`bridge.midi.ports`'.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections import deque
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal, Protocol

import mido

from bridge.errors import AmbiguousPort, MidiPortError
from bridge.midi.jack import JackWatch, muted, server_name

log = logging.getLogger(__name__)

Direction = Literal["input", "output"]

#: Messages rtmidi holds for the reader; a fast knob twist fits many times over.
QUEUE_LIMIT = 8192
#: Messages taken from the input at once, so the input lock is held briefly.
READ_BATCH = 1024
#: Seconds between two reads of an idle input that cannot wake its reader.
READ_INTERVAL = 0.001
RTMIDI_BACKEND = "mido.backends.rtmidi"
#: MIDI client names of the bridge's ports, as other software lists them.
CLIENT_NAMES: dict[Direction, str] = {"input": "Stage Bridge in", "output": "Stage Bridge out"}
_LISTER_CLIENT = "Stage Bridge ports"
_WATCH_CLIENT = "Stage Bridge watch"
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
    """An open input: :meth:`wait` until messages may be there (or ``timeout``), then :meth:`pending`."""

    name: str
    #: True when a message wakes the reader; else :meth:`wait` is a :data:`READ_INTERVAL` pause.
    wakes: bool

    def wait(self, timeout: float) -> None: ...

    def pending(self) -> list[mido.Message]: ...

    def close(self) -> None: ...


class _RtmidiInlet:
    """A python-rtmidi input: its callback hands the messages over and wakes the reader (``wake``),
    or rtmidi queues them and the reader polls."""

    def __init__(self, rtmidi: Any, api: int, name: str, virtual: bool, wake: bool) -> None:
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
        self.wakes = wake
        # The oldest go first if the reader ever falls this far behind: the newest values win.
        self._arrived: deque[list[int]] = deque(maxlen=QUEUE_LIMIT)
        self._woken = False
        self._wake_read = self._wake_write = -1
        if wake:
            self._wake_read, self._wake_write = os.pipe()
            os.set_blocking(self._wake_read, False)
            os.set_blocking(self._wake_write, False)
            rt.set_callback(self._on_message)

    def _on_message(self, event: tuple[list[int], float], data: object = None) -> None:
        # On the MIDI system's thread: hand over and wake, nothing more.
        self._arrived.append(event[0])
        if not self._woken:
            self._woken = True
            try:
                os.write(self._wake_write, b"\0")
            except OSError:
                pass  # full (the reader is woken already) or closing

    def wait(self, timeout: float) -> None:
        if not self.wakes:
            time.sleep(min(timeout, READ_INTERVAL))
        elif not self._arrived:
            select.select([self._wake_read], [], [], timeout)

    def pending(self) -> list[mido.Message]:
        return self._woken_pending() if self.wakes else self._queued()

    def _woken_pending(self) -> list[mido.Message]:
        try:
            os.read(self._wake_read, 4096)
        except OSError:
            pass  # nothing written since the last look
        self._woken = False  # before taking: a message arriving from now on writes again
        messages = []
        arrived = self._arrived
        for _ in range(READ_BATCH):
            try:
                data = arrived.popleft()
            except IndexError:
                break
            message = message_from_bytes(data)
            if message is not None:
                messages.append(message)
        return messages

    def _queued(self) -> list[mido.Message]:
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
            if self.wakes:
                self._rt.cancel_callback()  # before closing, so no callback runs on a closed port
            self._rt.close_port()
            self._rt.delete()
        except _MIDI_ERRORS as err:
            raise MidiPortError(f"error closing {self.name!r}: {err}") from err
        finally:
            if self.wakes:
                os.close(self._wake_read)
                os.close(self._wake_write)


class _MidoInlet:
    """An input of any other mido backend, read with ``iter_pending()``."""

    def __init__(self, port: Any) -> None:
        self._port = port
        self.name: str = port.name
        self.wakes = False

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, READ_INTERVAL))

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
        self._watch: JackWatch | None = None
        if backend.name == RTMIDI_BACKEND:
            import rtmidi

            api_ids = {n[len("API_") :]: getattr(rtmidi, n) for n in dir(rtmidi) if n.startswith("API_")}
            api = api_ids.get(backend.api) if backend.api else rtmidi.API_UNSPECIFIED
            if api is None:
                raise ValueError(f"unknown rtmidi API {backend.api!r}; one of {', '.join(sorted(api_ids))}")
            if api == rtmidi.API_UNIX_JACK:
                # First, and quietly: without a server, no rtmidi client is tried (each
                # failed one prints to stderr), and none would notice the server leave.
                self._watch = JackWatch(_WATCH_CLIENT)
            # One client per direction for the whole run: mido's own listing
            # opens and closes two MIDI clients per call, which every patchbay
            # on the machine would see flicker once a second.
            try:
                lister_in = rtmidi.MidiIn(api, name=_LISTER_CLIENT)
                try:
                    lister_out = rtmidi.MidiOut(api, name=_LISTER_CLIENT)
                except BaseException:
                    lister_in.delete()
                    raise
            except BaseException:
                self._close_watch()
                raise
            self._listers = (lister_in, lister_out)
            self._rtmidi = rtmidi
            # Pin the API rtmidi picked, so ports open where the listers look.
            self._api = lister_in.get_current_api()
            if self._api == rtmidi.API_UNIX_JACK and self._watch is None:
                # No API named, and rtmidi chose JACK (no ALSA sequencer here): watched all the same.
                try:
                    self._watch = JackWatch(_WATCH_CLIENT)
                except MidiPortError:
                    self.close()
                    raise
            api_names = {number: name for name, number in api_ids.items()}
            backend = mido.Backend(backend.name, api=api_names[self._api], load=True)
        self.backend = backend

    def connections(self, port: str) -> frozenset[str] | None:
        """The ports the device's port ``port`` is connected to (JACK only; else None)."""
        return self._watch.connections(port) if self._watch is not None else None

    @property
    def lost(self) -> bool:
        """True once the JACK server behind this system went away: close it and open a new one."""
        return self._watch is not None and self._watch.gone

    def __str__(self) -> str:
        return f"{self.backend.name}/{self.backend.api}" if self.backend.api else str(self.backend.name)

    @property
    def server(self) -> str:
        """What serves the ports, for the log: the JACK server's name, or the backend."""
        return f"JACK server {server_name()!r}" if self._watch is not None else str(self)

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
                # No Python on the JACK process thread: a JACK input is polled (see above).
                wake = self._api != self._rtmidi.API_UNIX_JACK
                return _RtmidiInlet(self._rtmidi, self._api, name, virtual, wake)
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

    def close(self) -> list[str]:
        """Close every client of this system; what went wrong, for the caller to log."""
        with self.quiet():
            return self._close()

    def quiet(self) -> AbstractContextManager[None]:
        """While the server is gone, libjack says "Server is not running" for each client closed: known."""
        return muted() if self.lost else nullcontext()

    def _close(self) -> list[str]:
        problems = []
        if self._listers is not None:
            for lister in self._listers:
                try:
                    lister.delete()
                except _MIDI_ERRORS as err:
                    problems.append(f"error closing the port lister ({err})")
            self._listers = None
        self._close_watch()
        return problems

    def _close_watch(self) -> None:
        # Last: while any JACK client of the process is open, libjack keeps the old server's state.
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
