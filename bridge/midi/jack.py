"""Told when the JACK server goes away, and whether one is back: libjack's own API, through ctypes.

rtmidi does not notice that the JACK server died: its clients keep
listing the old ports, sending succeeds into nowhere, and no error
callback fires. Worse, libjack keeps its connection state per process
while any client is open, so a new rtmidi client made after the server
came back still sees the old server. So the bridge keeps one small JACK
client of its own (no ports, never activated) with a ``jack_on_shutdown``
callback; once it fires, every JACK client of the process must be closed
before a new server can be reached (:mod:`bridge.midi.ports` does that).

While the server is away, each failed ``jack_client_open`` makes libjack
print several lines to stderr; probing once a second would fill the log,
so libjack's error output is muted (:func:`muted`) for the probe, and for
the closing of the clients of a server that is gone. Only the MIDI
adapter's start and its watcher do either, never two at once.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bridge.concurrency import within
from bridge.errors import MidiPortError

log = logging.getLogger(__name__)

#: ``JackNoStartServer``: never start a server as a side effect of looking for one.
_NO_START_SERVER = 0x01
_SONAME = "libjack.so.0"
#: How long (seconds) closing the watching client may take.
CLOSE_WAIT = 2.0
_SHUTDOWN = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_MESSAGE = ctypes.CFUNCTYPE(None, ctypes.c_char_p)


def _ignore(message: bytes | None) -> None:
    """libjack's error output while probing: a server that is not there is the expected answer."""


_SILENT = _MESSAGE(_ignore)  # module-level: libjack holds the pointer after the call


@functools.cache
def _library() -> Any:
    """libjack, with the prototypes used here; :class:`MidiPortError` when it is not installed.

    Loaded by its soname (the one rtmidi links against), not through
    ``ctypes.util.find_library``, which runs ``ldconfig`` in a subprocess.
    """
    try:
        lib = ctypes.CDLL(_SONAME)
    except OSError as err:
        raise MidiPortError(f"libjack not found ({err})") from err
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    lib.jack_client_close.restype = ctypes.c_int
    lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _SHUTDOWN, ctypes.c_void_p]
    lib.jack_on_shutdown.restype = None
    lib.jack_set_error_function.argtypes = [_MESSAGE]
    lib.jack_set_error_function.restype = None
    lib.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.jack_port_by_name.restype = ctypes.c_void_p
    lib.jack_port_get_all_connections.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.jack_port_get_all_connections.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.jack_free.argtypes = [ctypes.c_void_p]
    lib.jack_free.restype = None
    return lib


def server_name() -> str:
    """The JACK server clients of this process reach: ``JACK_DEFAULT_SERVER``, else "default"."""
    return os.environ.get("JACK_DEFAULT_SERVER") or "default"


@contextmanager
def muted() -> Iterator[None]:
    """libjack's error output (to stderr) silenced meanwhile, for the whole process."""
    lib = _library()
    callback = ctypes.c_void_p.in_dll(lib, "jack_error_callback")
    saved = callback.value
    lib.jack_set_error_function(_SILENT)
    try:
        yield
    finally:
        callback.value = saved


class NoJackServer(MidiPortError):
    """libjack is here, but no JACK server of that name runs (yet)."""


class JackWatch:
    """A JACK client without ports whose only job is to hear that the server shut down.

    Opening it raises :class:`NoJackServer` when no server runs (the name
    of the server comes from ``JACK_DEFAULT_SERVER``, as for every client).
    """

    def __init__(self, client_name: str) -> None:
        self._lib = _library()
        self._gone = False
        # Kept on the instance: libjack calls it until the client is closed.
        self._on_shutdown = _SHUTDOWN(self._shutdown)
        status = ctypes.c_int(0)
        with muted():
            client = self._lib.jack_client_open(client_name.encode(), _NO_START_SERVER, ctypes.byref(status))
        if not client:
            raise NoJackServer(f"no JACK server (status 0x{status.value:x})")
        self._client: int | None = client
        self._lib.jack_on_shutdown(client, self._on_shutdown, None)

    def _shutdown(self, _arg: object) -> None:
        # On libjack's thread: a plain flag, read by the watcher at its next look.
        self._gone = True

    @property
    def gone(self) -> bool:
        """True once the server shut this client down (it stays so)."""
        return self._gone

    def connections(self, port: str) -> frozenset[str] | None:
        """The ports the JACK port named ``port`` is connected to (None: no such port, or closed)."""
        client = self._client
        if client is None:
            return None
        found = self._lib.jack_port_by_name(client, port.encode())
        if not found:
            return None
        names = self._lib.jack_port_get_all_connections(client, found)  # NULL-terminated, or NULL
        linked: set[str] = set()
        if names:
            try:
                at = 0
                while names[at] is not None:
                    linked.add(names[at].decode(errors="replace"))
                    at += 1
            finally:
                self._lib.jack_free(names)
        return frozenset(linked)

    def close(self) -> None:
        client, self._client = self._client, None
        # libjack's close waited for good once on a lock of its own (a full test run, another JACK client of
        # the process closed just before): given CLOSE_WAIT seconds, then left to finish on its own.
        if client is not None and not within(CLOSE_WAIT, self._lib.jack_client_close, client):
            log.warning("JACK: the watching client was not let go within %g s; left to close on its own", CLOSE_WAIT)
