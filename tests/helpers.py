"""Shared test tools: free ports, config files, a real bridge process, Socket.IO clients."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import socketio

from bridge.config import TlsConfig, load_config
from bridge.errors import ConfigError
from bridge.hub import Hub
from bridge.model import MAX_TEXT_LENGTH, Control

ROOT = Path(__file__).resolve().parent.parent
DEADLINE = 15.0


def assert_in_bounds(hub: Hub) -> None:
    """Every stored value fits its control: a finite number within bounds, 0/1, or capped text."""
    assert_values_in_bounds(hub.controls, hub.values())


def assert_values_in_bounds(controls: Mapping[str, Control], values: Mapping[str, object]) -> None:
    """:func:`assert_in_bounds` for values read from a server (``GET /api/values``)."""
    assert set(values) == set(controls), f"controls {sorted(controls)}, values of {sorted(values)}"
    for cid, value in values.items():
        control = controls[cid]
        if control.type == "range":
            assert isinstance(value, int | float) and not isinstance(value, bool)
            assert math.isfinite(value) and control.min <= value <= control.max
        elif control.type == "text":
            assert isinstance(value, str) and len(value) <= MAX_TEXT_LENGTH
        else:
            assert value in (0, 1)


def unavailable(reason: str) -> None:
    """A system part the test needs is missing: skip, but fail under CI, where it must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def terminate(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL if it is still there after 10 s; its exit code."""
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


#: Tests pick ports below Linux's ephemeral range (32768-60999), where the kernel picks the local port of every
#: connection and of every bind to port 0: a port handed out and not yet listened on cannot be taken meanwhile by
#: a client's connection. Under pytest-xdist each worker walks a share of its own, so two never hand out one port.
FIRST_PORT, LAST_PORT = 16384, 32767


def _port_walk() -> Iterator[int]:
    workers = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    share = (LAST_PORT + 1 - FIRST_PORT) // workers
    start, offset = FIRST_PORT + (worker % workers) * share, random.randrange(share)
    for step in itertools.count():
        yield start + (offset + step) % share


_ports = _port_walk()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of this process's share that nothing on 127.0.0.1 uses now; the walk comes back to it only
    after the whole share (8,192 ports with two workers)."""
    for tried, port in enumerate(_ports):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                if tried > 1000:
                    raise
                continue  # taken, or in TIME_WAIT
            return port
    raise AssertionError("unreachable: the walk never ends")


def saved(state: Path) -> dict[str, Any]:
    """A state file's document; ``{}`` while there is none yet (it is written whole, by a rename)."""
    try:
        document: dict[str, Any] = json.loads(state.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return document


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


CONTROLS_TOML = """
[[controls]]
id = "slider1"
type = "range"
label = "Slider 1"
min = 0
max = 50
step = 1
value = 25
midi = { channel = 1, cc = 1 }

[[controls]]
id = "slider2"
type = "range"
label = "Slider 2"
min = 0
max = 50
step = 1
value = 0
midi = { channel = 1, cc = 2 }

[[controls]]
id = "fine"
type = "range"
label = "Fine"
min = -1.0
max = 1.0
value = 0.0
midi = { channel = 2, cc = 7, hires = true }

[[controls]]
id = "bend"
type = "range"
label = "Bend"
min = 0
max = 1
value = 0.5
midi = { channel = 3, pitchbend = true }

[[controls]]
id = "txt1"
type = "text"
label = "Text"
value = ""

[[controls]]
id = "toggle1"
type = "toggle"
label = "Toggle"
midi = { channel = 1, note = 60 }

[[controls]]
id = "button1"
type = "button"
label = "Button"
midi = { channel = 1, note = 61 }
"""


def write_config(folder: Path, extra: str = "", controls: str = CONTROLS_TOML, state_file: str = "state.json") -> Path:
    """A config file in ``folder`` with the test controls and any extra tables."""
    path = folder / "bridge.toml"
    path.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = 5000\nstate_file = "{state_file}"\n{extra}\n{controls}',
        encoding="utf-8",
    )
    return path


def secure(config: Path, certificate: tuple[Path, Path]) -> Path:
    """Serve ``config`` over HTTPS with ``tls = "auto"``, the kept certificate being ``certificate`` (cert, key):
    the one the test browsers are told to accept."""
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[server]\n", '[server]\ntls = "auto"\n', 1), encoding="utf-8")
    tls = load_config(config).server.tls
    assert tls is not None
    shutil.copyfile(certificate[0], tls.cert)
    shutil.copyfile(certificate[1], tls.key)
    return config


#: Where a test finds the certificate to trust for an https:// origin (its bridge's).
TRUSTED: dict[str, Path] = {}


def tls_context(url: str) -> ssl.SSLContext | None:
    """For an https:// URL of a test bridge: a context that trusts its certificate (and checks it); else None."""
    if not url.startswith("https://"):
        return None
    origin = "/".join(url.split("/")[:3])
    return ssl.create_default_context(cafile=str(TRUSTED[origin]))


class BridgeProcess:
    """``python -m bridge`` in a subprocess on a free port (https:// when its config has ``[server] tls``)."""

    def __init__(self, config: Path, env: dict[str, str] | None = None, wrapper: Sequence[str] = ()) -> None:
        self.config = config
        #: A command the bridge runs under (it must exec it, so the PID stays the bridge's).
        self.wrapper = list(wrapper)
        self.port = free_port()
        self.tls: TlsConfig | None = None
        try:
            self.tls = load_config(config).server.tls
        except ConfigError:
            pass  # a test of a broken config: it never serves
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        if self.tls is not None:
            TRUSTED[self.url] = self.tls.cert
        self.log_path = config.parent / f"bridge-{self.port}.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> BridgeProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                sys.executable,
                "-m",
                "bridge",
                "--config",
                str(self.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        log.close()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"bridge exited with {self.proc.returncode}:\n{self.output()}")
            if self.tls is not None and not self.tls.cert.exists():
                return False  # not made yet
            try:
                with self.open(self.url + "/healthz", timeout=1) as resp:
                    return bool(resp.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_until(ready, what="the bridge to serve /healthz")

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        return terminate(self.proc) if self.proc is not None else None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no chance to save anything
        self.proc.wait(timeout=10)

    # -- HTTP ------------------------------------------------------------------
    def open(self, request: str | urllib.request.Request, timeout: float = 5) -> Any:
        """``urllib.request.urlopen``, trusting this bridge's certificate under HTTPS."""
        url = request if isinstance(request, str) else request.full_url
        return urllib.request.urlopen(request, timeout=timeout, context=tls_context(url))  # noqa: S310

    def put_values(self, **values: object) -> None:
        """Set each control over the HTTP API; every one must be taken."""
        for cid, value in values.items():
            status, body = self.put_json(f"/api/values/{cid}", {"value": value})
            assert status == 200, body

    def get_json(self, path: str, key: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        with self.open(urllib.request.Request(self.url + path, headers=headers)) as resp:
            return json.loads(resp.read())

    def get_text(self, path: str) -> str:
        with self.open(self.url + path) as resp:
            return str(resp.read().decode("utf-8"))

    def put_json(self, path: str, body: object, key: str | None = None) -> tuple[int, Any]:
        return self.request_json("PUT", path, body, key)

    def delete_json(self, path: str, key: str | None = None) -> tuple[int, Any]:
        return self.request_json("DELETE", path, key=key)

    def request_json(
        self, method: str, path: str, body: object = None, key: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """The status and JSON answer of ``method path`` (with ``body`` as JSON, if any, and more ``headers``)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self.open(req) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")


#: The events a test client keeps.
RECORDED = (
    "update value",
    "snapshot",
    "rejected",
    "update look",
    "midi status",
    "osc status",
    "layout",
    "config",
    "scenes",
)
#: What the MIDI adapter pushes besides its status: bindings, learning, takeover ghosts.
MIDI_PUSHES = ("midi bindings", "midi learning", "midi learned", "midi ghost")


class Client:
    """A real python-socketio client that records every event it gets."""

    def __init__(self, url: str) -> None:
        session = None
        if url.startswith("https://"):
            import requests

            # Polling through requests, the WebSocket (wss) through websocket-client: both check this certificate.
            session = requests.Session()
            session.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment wins over verify
            session.verify = str(TRUSTED["/".join(url.split("/")[:3])])
        self.sio = socketio.Client(
            reconnection=True, reconnection_delay=0.1, reconnection_delay_max=0.5, http_session=session
        )
        self.events: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        for name in (*RECORDED, *MIDI_PUSHES):
            self.sio.on(name, self._recorder(name))
        self.sio.connect(url, wait_timeout=10)

    def _recorder(self, name: str) -> Callable[[Any], None]:
        def record(data: Any = None) -> None:
            with self._lock:
                self.events.append((name, data))

        return record

    def of(self, name: str) -> list[Any]:
        with self._lock:
            return [data for event, data in self.events if event == name]

    def clear(self) -> None:
        with self._lock:
            self.events.clear()

    def send(self, who: Any, data: Any) -> None:
        self.sio.emit("value changed", {"who": who, "data": data})

    def wait_event(self, name: str, match: Callable[[Any], bool] = lambda _: True, timeout: float = DEADLINE) -> Any:
        def found() -> Any:
            for data in self.of(name):
                if match(data):
                    return {"hit": data}
            return None

        return wait_until(found, timeout, what=f"event {name!r}")["hit"]

    def wait_value(self, who: str, data: Any, timeout: float = DEADLINE) -> None:
        """Wait until an ``update value`` (or ``snapshot``) shows ``who`` at ``data``."""

        def shows() -> bool:
            for event, payload in reversed(self.events_copy()):
                if event == "update value" and payload["who"] == who:
                    return bool(payload["data"] == data)
                if event == "snapshot" and who in payload["values"]:
                    return bool(payload["values"][who] == data)
            return False

        wait_until(shows, timeout, what=f"{who} == {data!r} at a client")

    def events_copy(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        # No new reconnection loop from here on (the server may be gone before
        # the loss is noticed), and shutdown() ends one already running: a
        # loop left behind would retry for the rest of the session.
        self.sio.reconnection = False
        self.sio.reconnection_attempts = 1  # a loop already running ends after its next try at the latest
        self.sio.shutdown()
        # A loop that began as the server went may miss shutdown()'s abort (it
        # clears the flag as it starts): wait for it to end here, so that it
        # never draws from `random` during a later test (Hypothesis warns of that).
        task = getattr(self.sio, "_reconnect_task", None)
        if task is not None:
            self.sio._reconnect_abort.set()
            task.join(timeout=DEADLINE)
