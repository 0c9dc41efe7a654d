"""The node load generator (``bench/loadgen.js``) driven from Python: one job, one result.

The generator is a single node process holding every client (raw WebSockets
speaking Engine.IO v4 / Socket.IO v5), so 1,000 clients cost it a fraction
of one core; the Python clients of :mod:`bench.common` saturate past about
100. Each result carries the generator's own CPU, how busy its one thread
was and its event-loop lag beside the server's CPU, and ``limit`` says which
side most likely set the figure.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from bench.common import ROOT, Measured, Server, free_port

LOADGEN = ROOT / "bench" / "loadgen.js"
#: Past this share of one core the generator's own queueing shows in its figures.
BUSY_LIMIT = 0.7
#: A sender this late on average (ms) sends in bursts, which the server folds (latest value wins).
LATE_LIMIT = 1.0

OSC_IN = "OSC in -> 10 raw listeners, 200/s"
FANOUT_10 = "fan-out, 10 clients, 200 changes/s (node)"
FANOUT_100 = "fan-out, 100 clients, 200 changes/s (node)"
SCALE_50 = "1,000 clients, 50 changes/s"
SCALE_10 = "1,000 clients, 10 changes/s"


def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None:
        raise RuntimeError("node is missing: apt-get install nodejs (make bench installs the rest)")
    if not (ROOT / "bench" / "node_modules" / "ws").is_dir():
        raise RuntimeError("bench/node_modules is missing: run make bench (npm ci in bench/)")
    return found


def run_job(server: Measured, job: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """Run ``job`` (see loadgen.js) against ``server``; the generator's result plus the server's CPU."""
    proc = subprocess.Popen(
        [node(), str(LOADGEN), json.dumps(job)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        ready = json.loads(proc.stdout.readline() or '{"error": "the generator exited"}')
        if not ready.get("ready"):
            raise RuntimeError(f"load generator: {ready.get('error')}")
        cpu0 = server.cpu_seconds()
        proc.stdin.write("go\n")
        proc.stdin.close()
        answer = json.loads(proc.stdout.readline() or '{"error": "the generator exited"}')
        cpu = server.cpu_seconds() - cpu0
        if "result" not in answer:
            raise RuntimeError(f"load generator: {answer.get('error')}")
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result: dict[str, Any] = answer["result"]
    result["server_cpu_s"] = round(cpu, 2)
    result["peak_rss_mb"] = round(server.peak_rss_mb(), 1)
    delivered_updates = result["delivered"] * job["count"] * job["clients"]
    result["server_us_per_update"] = round(cpu * 1e6 / delivered_updates, 1) if delivered_updates else None
    late = (result.get("send_late_mean_ms") or 0) > LATE_LIMIT
    result["limit"] = "loadgen" if late or (result.get("loadgen_busy") or 0) > BUSY_LIMIT else "server"
    return result


def fanout(
    server: Measured, clients: int, rate: float, seconds: float, base: int, who: str = "fader"
) -> dict[str, Any]:
    """One sender at ``rate`` changes/s for ``seconds``; ``clients`` receivers."""
    count = int(rate * seconds)
    job = {"kind": "socket", "url": server.url, "clients": clients, "rate": rate, "count": count}
    return run_job(server, {**job, "base": base, "who": who})


def osc_in(server: Measured, osc_port: int, clients: int, count: int, rate: float, base: int) -> dict[str, Any]:
    """OSC datagrams into /fader (``rate`` 0: as fast as possible); ``clients`` receivers."""
    job = {"kind": "osc", "url": server.url, "clients": clients, "rate": rate, "count": count, "base": base}
    return run_job(server, {**job, "who": "fader", "osc_port": osc_port})


def node_paths(root: Path, quick: bool, base: int) -> dict[str, dict[str, Any]]:
    """The node generator's paths against the bridge of ``root``."""
    results: dict[str, dict[str, Any]] = {}
    osc_port = free_port(socket.SOCK_DGRAM)
    extra = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\n'
    seconds = 2.0 if quick else 5.0
    with Server(extra, root=root) as server:
        results[OSC_IN] = osc_in(server, osc_port, 10, int(200 * seconds), 200, base)
        results[FANOUT_10] = fanout(server, 10, 200, seconds, base + 10_000)
        results[FANOUT_100] = fanout(server, 100, 200, seconds, base + 40_000)
    with Server("", root=root) as server:
        clients = 200 if quick else 1000
        results[SCALE_50] = fanout(server, clients, 50, seconds, base + 20_000)
        results[SCALE_10] = fanout(server, clients, 10, seconds, base + 30_000)
    return results
