"""MIDI ports that come and go: the configured input and output, opened when they appear.

:class:`Ports` keeps the configured input and output: it opens a device
that appeared, closes one that vanished and creates virtual ports, each port
"connected", "missing" (looked for again) or "off" (no MIDI system). The MIDI
system itself is :mod:`bridge.midi.system`'s; when it is lost (the JACK
server went away), :meth:`Ports.drop_system` closes it whole and both ports
are "missing" until :meth:`Ports.open_system` reaches a new one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

from bridge.concurrency import run_blocking
from bridge.config import MidiConfig
from bridge.errors import AmbiguousPort, MidiPortError
from bridge.midi.system import CLIENT_NAMES, Direction, Inlet, MidiSystem, Outlet, match_port

log = logging.getLogger(__name__)

PortState = Literal["connected", "missing", "off"]


@dataclass
class Port:
    """One direction: what the config names, the open port and its state."""

    direction: Direction
    wanted: str
    port: Inlet | Outlet | None = None
    state: PortState = "off"
    problem: object = None  # the last problem logged, so that each is logged once
    #: The connections the bridge made to the device's port when it opened it (JACK): gone when the
    #: port went and came back between two looks, or when undone in a patchbay.
    links: frozenset[str] = frozenset()

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

    @property
    def system_lost(self) -> bool:
        """True when the MIDI system in use went away (the JACK server stopped)."""
        return self.system is not None and self.system.lost

    def drop_system(self) -> None:
        """Close both ports and the lost system; both "missing" until a new system is opened."""
        taken = [self._take_out(side) for side in (self.input, self.output)]
        system, self.system = self.system, None
        # Closing a client of a dead JACK server waits for libjack's timeouts (about
        # a second each): on an OS thread, so the web server keeps serving meanwhile.
        problems = run_blocking(_close_quietly, [port for port in taken if port is not None], system)
        for problem in problems:
            log.info("MIDI: %s (the MIDI system is gone)", problem)
        for side in (self.input, self.output):
            side.problem = None  # a new system: whatever goes wrong with it is news
        self.set_states("missing")

    def close_all(self) -> None:
        self._close(self.input)
        self._close(self.output)
        system, self.system = self.system, None
        if system is not None:
            for problem in system.close():
                log.warning("MIDI: %s", problem)

    # -- one port ------------------------------------------------------------------
    def _check(self, side: Port, names: list[str]) -> bool:
        if self.config.virtual:
            return self._check_virtual(side)
        before = side.state
        if side.port is not None:
            system = self.system
            now = system.connections(side.port.name) if system is not None and side.links else None
            unlinked = side.port.name in names and now is not None and not side.links <= now
            if side.port.name in names and not unlinked:
                return False
            log.warning(
                "MIDI %s %r %s; looking for %r every second",
                side.direction,
                side.port.name,
                "came back between two looks, without the bridge's connection" if unlinked else "disappeared",
                side.wanted,
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
        before = None if virtual else system.connections(name)
        port = system.open_input(name, virtual) if side.direction == "input" else system.open_output(name, virtual)
        side.port = port
        after = None if virtual else system.connections(name)
        side.links = after - before if after is not None and before is not None else frozenset()
        self._install[side.direction](port)
        self._set_state(side, "connected")

    def _take_out(self, side: Port) -> Inlet | Outlet | None:
        # Taken out of use first: the reader or send() never touch a port that is being closed.
        port, side.port = side.port, None
        self._install[side.direction](None)
        return port

    def _close(self, side: Port) -> None:
        port = self._take_out(side)
        if port is None:
            return
        try:
            port.close()
        except MidiPortError as err:
            log.warning("MIDI %s: %s", side.direction, err)

    def _set_state(self, side: Port, state: PortState) -> None:
        with self._state_lock:
            side.state = state


def _close_quietly(ports: list[Inlet | Outlet], system: MidiSystem | None) -> list[str]:
    """Close the ports, then the system, of a MIDI system that went away; the errors, expected ones.

    Runs on an OS thread: it returns what went wrong rather than logging it there.
    """
    problems = []
    with system.quiet() if system is not None else nullcontext():
        for port in ports:
            try:
                port.close()
            except MidiPortError as err:
                problems.append(str(err))
    if system is not None:
        problems.extend(system.close())
    return problems
