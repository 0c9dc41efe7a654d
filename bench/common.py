"""Bench plumbing: a bridge process, many cheap Socket.IO clients in one asyncio loop, stats."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import socketio
from pythonosc.osc_message_builder import OscMessageBuilder

from tests.helpers import free_port, terminate

ROOT = Path(__file__).resolve().parent.parent

BENCH_CONTROLS = """
[[controls]]
id = "fader"
type = "range"
min = 0
max = 1000000
step = 1
value = 0
midi = { channel = 1, cc = 1, hires = true }
takeover = "jump"  # the MIDI path is measured, not soft takeover: every message counts

[[controls]]
id = "cc"
type = "range"
min = 0
max = 127
step = 1
value = 0
midi = { channel = 1, cc = 2 }
"""


def osc(address: str, value: float) -> bytes:
    """One OSC message with one float argument."""
    builder = OscMessageBuilder(address=address)
    builder.add_arg(float(value))
    return bytes(builder.build().dgram)


class Measured:
    """CPU and memory of a server subprocess, read from /proc."""

    proc: subprocess.Popen[bytes] | None

    def cpu_seconds(self) -> float:
        """User + system CPU the server has used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_ready(self, url: str, log: Path | None) -> None:
        """Poll ``url``/healthz until it answers; fail with the log if the process died."""
        assert self.proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(log.read_text() if log else f"exited with {self.proc.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError(f"{url} did not start")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        terminate(self.proc)

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


class Server(Measured):
    """``python -m bridge`` with a bench config, in a subprocess."""

    def __init__(
        self,
        extra: str = "",
        controls: str = BENCH_CONTROLS,
        env: dict[str, str] | None = None,
        module: str = "bridge",
        root: Path = ROOT,
    ) -> None:
        self.module = module
        self.root = root
        self.folder = Path(tempfile.mkdtemp(prefix="bench-"))
        self.config = self.folder / "bench.toml"
        # Room for the 1,000-client scale path; every other limit at its default.
        server = '[server]\nstate_file = "state.json"\nmax_clients = 5000\n'
        self.config.write_text(f"{server}{extra}\n{controls}", encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        log = (self.folder / "bridge.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                self.module,
                "--config",
                str(self.config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "WARNING",
            ],
            cwd=self.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        self.wait_ready(self.url, self.folder / "bridge.log")
        return self


@dataclass
class Watcher:
    """One async client that stamps the arrival of every value it is sent."""

    sio: socketio.AsyncClient
    arrivals: dict[Any, float] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    count: int = 0


async def connect_watchers(
    url: str, n: int, client_class: type[socketio.AsyncClient] = socketio.AsyncClient
) -> list[Watcher]:
    watchers = []
    for _ in range(n):
        sio = client_class(reconnection=False)
        watcher = Watcher(sio)

        def on_update(msg: dict[str, Any], w: Watcher = watcher) -> None:
            w.arrivals.setdefault((msg["who"], msg["data"]), time.perf_counter())
            w.last[msg["who"]] = msg["data"]
            w.count += 1

        def on_snapshot(msg: dict[str, Any], w: Watcher = watcher) -> None:
            w.last.update(msg["values"])

        sio.on("update value", on_update)
        sio.on("snapshot", on_snapshot)
        await sio.connect(url, transports=["websocket"], wait_timeout=10)
        watchers.append(watcher)
    return watchers


async def paced_changes(sender: Watcher, count: int, rate: float, base: int = 1) -> dict[int, float]:
    """``fader`` set to ``base``, ``base + 1``... by ``sender``, ``rate`` a second, paced against the
    clock (not by sleeps, which drift under load); when each was sent (``time.perf_counter``), by value."""
    sent: dict[int, float] = {}
    start = time.perf_counter()
    for k in range(count):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[base + k] = time.perf_counter()
        await sender.sio.emit("value changed", {"who": "fader", "data": base + k})
    return sent


def trees(bases: list[Path]) -> dict[str, Path]:
    """The trees a multi-tree bench measures: each ``--base`` (``base``, or ``base1``, ``base2``...),
    then this one (``this``)."""
    named = {f"base{i + 1}" if len(bases) > 1 else "base": p.resolve() for i, p in enumerate(bases)}
    return {**named, "this": ROOT}


async def close_all(watchers: list[Watcher]) -> None:
    await asyncio.gather(*(w.sio.disconnect() for w in watchers), return_exceptions=True)


async def wait_all_on(watchers: list[Watcher], who: str, value: Any, timeout: float = 30.0) -> float | None:
    """perf_counter() when the last watcher showed ``who == value``; None on timeout."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(w.last.get(who) == value for w in watchers):
            return max(w.arrivals.get((who, value), time.perf_counter()) for w in watchers)
        await asyncio.sleep(0.001)
    return None


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p99/max in milliseconds."""
    if not samples:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan"), "n": 0}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
        "n": len(ordered),
    }


def process_cpu() -> float:
    """CPU seconds this (load generator) process has used."""
    t = os.times()
    return t.user + t.system


def save_results(kind: str, trees: dict[str, Path], runs: list[Any], text: str) -> Path:
    """Write a multi-tree run to ``bench/results/<kind>-<time>/`` (every run's figures, and the
    table of medians), print the table, and return the folder."""
    out = ROOT / "bench" / "results" / time.strftime(f"{kind}-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"trees": {k: str(v) for k, v in trees.items()}, "runs": runs}))
    (out / "results.md").write_text(f"Medians of {len(runs)} run(s), {time.strftime('%Y-%m-%d %H:%M')}\n\n{text}\n")
    print(text)
    print(f"\nwritten to {out}", file=sys.stderr)
    return out
