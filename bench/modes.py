"""The server models side by side, every adapter of the bridge in place: ``python -m bench.modes [RUNS]``.

Runs ``python -m bridge`` under gevent (the pinned model), threading and
eventlet (``STAGE_BRIDGE_SERVER_MODEL``), with OSC in and out configured,
through the fan-out at 10, 50 and 100 clients (200 changes/s), the
5,000-change flood and the 16-fader sweep, and prints the medians of RUNS
runs (3 by default) with each model's ratio to gevent.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from bench.common import Server, free_port
from bench.suite import SWEEP_CONTROLS, fanout, flood_socket, median_results, sweep16

MODELS = ("gevent", "threading", "eventlet")
KEYS = ("p50_ms", "p99_ms", "delivered", "settled_ms", "server_cpu_s", "loadgen_cpu_s")


async def one_run(model: str) -> dict[str, dict[str, Any]]:
    # A fresh server each run: values start again from the bottom of the fader (0-1,000,000).
    env = {"STAGE_BRIDGE_SERVER_MODEL": model}
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    osc_port = free_port(socket.SOCK_DGRAM)
    extra = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["127.0.0.1:{target.getsockname()[1]}"]\n'
    out: dict[str, dict[str, Any]] = {}
    try:
        with Server(extra, env=env) as s:
            for n in (10, 50, 100):
                out[f"fanout N={n}"] = await fanout(s, n, 200, 3.0, n * 5000)
            out["flood 5000"] = await flood_socket(s, 10, 5000, 900_000)
        with Server(extra, SWEEP_CONTROLS, env=env) as s:
            out["sweep16"] = await sweep16(s, 10, 500, 1)
    finally:
        target.close()
    return {path: {k: r.get(k) for k in KEYS if k in r} for path, r in out.items()}


async def main(runs: int) -> None:
    collected: list[dict[str, dict[str, Any]]] = []
    for run in range(runs):
        one: dict[str, dict[str, Any]] = {}
        for model in MODELS:
            print(f"run {run + 1}/{runs}: {model}", file=sys.stderr, flush=True)
            for path, row in (await one_run(model)).items():
                one[f"{model} {path}"] = row
        collected.append(one)
    medians = median_results(collected)
    for name, row in medians.items():
        model, path = name.split(" ", 1)
        ref = medians.get(f"gevent {path}", {})
        ratio = {
            k: round(row[k] / ref[k], 2)
            for k in ("p99_ms", "settled_ms", "server_cpu_s")
            if isinstance(row.get(k), int | float) and isinstance(ref.get(k), int | float) and ref[k]
        }
        print(name, json.dumps(row), "ratio to gevent:", json.dumps(ratio))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
