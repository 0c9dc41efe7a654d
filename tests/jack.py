"""A real JACK server with the dummy driver, and MIDI ports of the test's own on it.

The server needs no sound card: ``jackd -d dummy`` runs its graph on a timer,
and JACK MIDI between clients is as real as with hardware.

JACK MIDI lives one period (64 frames, 1.3 ms here) in a port's buffer: a
client that misses a cycle loses its events. Without real-time scheduling,
on a busy two-core machine, clients do miss cycles, so the server runs in
synchronous mode (``-S``): it waits for every client before the next cycle
and nothing is dropped. For the same reason the peer reads its input from
rtmidi's queue, as the bridge does, rather than through a Python callback
on the JACK thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mido
import rtmidi

from tests.helpers import DEADLINE, terminate, wait_until

BACKEND = "mido.backends.rtmidi/UNIX_JACK"


def jack_available() -> str | None:
    """Why JACK tests cannot run here, or None when they can."""
    if shutil.which("jackd") is None:
        return "jackd is not installed (Debian package jackd2)"
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        return "python-rtmidi was built without JACK"
    return None


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class JackServer:
    """``jackd`` under a name of its own, so that tests never meet another server.

    :meth:`start` may be called again after :meth:`stop` or :meth:`kill`: a
    new server under the same name, as when a session manager restarts it.
    The test process must have closed its own JACK clients before that:
    while any is open, libjack keeps talking to the old server.
    """

    def __init__(self, log_dir: Path) -> None:
        self.name = unique_name("sbtest")
        self.log_path = log_dir / f"jackd-{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> JackServer:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["jackd", "-n", self.name, "-S", "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "64"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "JACK_NO_AUDIO_RESERVATION": "1"},
            )
        wait_until(self._ready, what=f"jackd {self.name} to accept clients")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"jackd exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
        # A client opens only once the server listens; libjack reads the
        # server name from the environment at every open.
        previous = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = self.name
        try:
            probe = rtmidi.MidiIn(rtapi=rtmidi.API_UNIX_JACK, name="probe")
        except rtmidi.SystemError:
            return False
        finally:
            _restore("JACK_DEFAULT_SERVER", previous)
        try:
            probe.get_ports()
        finally:
            probe.delete()
        return True

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without telling its clients goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def running_jack(folder: Path) -> Iterator[JackServer]:
    """A JACK server of its own for a run (a bench's), and JACK_DEFAULT_SERVER pointing at it meanwhile."""
    server = JackServer(folder)
    previous = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    try:
        server.start()
        yield server
    finally:
        _restore("JACK_DEFAULT_SERVER", previous)
        server.stop()


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


class MidiPeer:
    """The test's side of a MIDI cable: ports on the JACK server, and what came in."""

    def __init__(self) -> None:
        self.backend = mido.Backend(BACKEND, load=True)
        self._lister = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="peer lister")
        self._lister_in = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="peer lister")
        self.output: Any = None
        self.input: Any = None
        self._received: list[mido.Message] = []

    # -- ports ---------------------------------------------------------------------
    def sinks(self) -> list[str]:
        """Every JACK MIDI port one can write to."""
        return list(self._lister.get_ports())

    def sources(self) -> list[str]:
        """Every JACK MIDI port one can read from."""
        return list(self._lister_in.get_ports())

    def _new_input(self) -> Any:
        port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="peer", queue_size_limit=8192)
        port.ignore_types(sysex=True, timing=True, active_sense=True)
        return port

    def plug_in(self, out_name: str, in_name: str) -> None:
        """Act as a device: virtual ports the bridge finds by name."""
        self.output = self.backend.open_output(out_name, virtual=True)
        self.input = self._new_input()
        self.input.open_virtual_port(in_name)

    def connect(self, bridge_input: str, bridge_output: str) -> None:
        """Connect to the bridge's own (virtual) ports, found by their port name."""
        sink = wait_until(lambda: _ending(self.sinks(), bridge_input), what=f"a JACK port {bridge_input!r}")
        source = wait_until(lambda: _ending(self.sources(), bridge_output), what=f"a JACK port {bridge_output!r}")
        self.output = self.backend.open_output(sink)
        self.input = self._new_input()
        self.input.open_port(self.input.get_ports().index(source))

    def unplug(self) -> None:
        """Close the ports, as a device pulled out of its socket."""
        if self.input is not None:
            self.input.close_port()
            self.input.delete()
        if self.output is not None:
            self.output.close()
        self.input = self.output = None

    def close(self) -> None:
        self.unplug()
        self._lister.delete()
        self._lister_in.delete()

    # -- messages ------------------------------------------------------------------
    def send(self, *messages: mido.Message) -> None:
        for message in messages:
            self.output.send(message)

    def received(self) -> list[mido.Message]:
        """Everything received so far (since :meth:`clear`)."""
        while self.input is not None:
            item = self.input.get_message()
            if item is None:
                break
            self._received.append(mido.Message.from_bytes(item[0]))
        return list(self._received)

    def clear(self) -> None:
        self.received()
        self._received.clear()

    def wait_for(self, *wanted: mido.Message, timeout: float = DEADLINE) -> list[mido.Message]:
        """Wait until ``wanted`` arrived in this order (other messages may come between)."""
        want = [m.bytes() for m in wanted]

        def arrived() -> list[mido.Message] | None:
            got = self.received()
            i = 0
            for message in got:
                if i < len(want) and message.bytes() == want[i]:
                    i += 1
            return got if i == len(want) else None

        try:
            result: list[mido.Message] = wait_until(arrived, timeout, what=f"MIDI {wanted}")
        except AssertionError as err:
            raise AssertionError(f"{err}; received: {self.received()}") from None
        return result


def _ending(names: list[str], port: str) -> str | None:
    hits = [name for name in names if name.endswith(f":{port}")]
    return hits[0] if len(hits) == 1 else None
