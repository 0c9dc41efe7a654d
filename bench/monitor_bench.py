"""What the message monitor costs: ``python -m bench.monitor_bench [RUNS]`` (``make bench`` runs it once too).

Every run starts fresh bridges side by side, in an order that turns each run:

* the fan-out at 100 clients (one sender, 200 changes/s, 5 s) with the
  monitor's hooks left out altogether (``STAGE_BRIDGE_MONITOR=off``: the
  bridge as it was before the monitor), with the hooks in and no drawer open
  (one check per message), and with one drawer open;
* OSC in at 1,000 messages/s for 5 s (mirrored to an OSC target and fanned
  out to 10 clients) with no drawer open and with one open, the drawer
  getting every entry: the OSC message in, the pages and the target out.

It prints the medians of RUNS runs (5 by default) and writes them to
``bench/results/<time>-monitor/``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from typing import Any

import socketio

from bench.common import ROOT, Server, free_port
from bench.suite import fanout, median_results, osc_in, progress

Result = dict[str, Any]
KEYS = ("p50_ms", "p99_ms", "max_ms", "delivered", "all_on_last", "server_cpu_s", "drawer_entries", "drawer_skipped")


class Drawer:
    """One page with its monitor drawer open, counting what it is sent."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.entries = 0
        self.skipped = 0
        self.sio.on("monitor", self._batch)

    def _batch(self, batch: dict[str, Any]) -> None:
        self.entries += len(batch["entries"])
        self.skipped += batch["skipped"]

    async def open(self, url: str) -> Drawer:
        await self.sio.connect(url, transports=["websocket"], wait_timeout=10)
        answer = await self.sio.call("monitor open", None, timeout=10)
        if not answer.get("ok"):
            raise RuntimeError(f"the drawer did not open: {answer}")
        return self

    async def close(self) -> None:
        await self.sio.disconnect()


def osc_extra(target: socket.socket) -> tuple[str, int]:
    port = free_port(socket.SOCK_DGRAM)
    extra = f'[osc]\nlisten = "127.0.0.1:{port}"\ntargets = ["127.0.0.1:{target.getsockname()[1]}"]\n'
    return extra, port


async def with_drawer(server: Server, measure: Any) -> Result:
    drawer = await Drawer().open(server.url)
    try:
        result: Result = await measure()
        await asyncio.sleep(0.3)  # the drawer's last batch (sent every 0.1 s)
        result["drawer_entries"] = drawer.entries
        result["drawer_skipped"] = drawer.skipped
        return result
    finally:
        await drawer.close()


async def one_run(turn: int) -> dict[str, Result]:
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    out: dict[str, Result] = {}
    base = 1 + turn * 1_000_000 // 10
    variants = [("hooks off (before)", {"STAGE_BRIDGE_MONITOR": "off"}, False), ("no drawer", {}, False)]
    variants.append(("one drawer open", {}, True))
    variants = variants[turn % 3 :] + variants[: turn % 3]  # each variant goes first in some run
    try:
        for label, env, drawer in variants:
            extra, _port = osc_extra(target)
            with Server(extra, env=env) as server:
                progress(f"fanout N=100, 200/s [{label}]")

                async def measure(server: Server = server) -> Result:
                    return await fanout(server, 100, 200, 5.0, base)

                out[f"fanout N=100, 200 changes/s [{label}]"] = (
                    await with_drawer(server, measure) if drawer else await measure()
                )
        for label, drawer in (("no drawer", False), ("one drawer open", True))[:: 1 if turn % 2 else -1]:
            extra, port = osc_extra(target)
            with Server(extra) as server:
                progress(f"OSC in 1,000/s -> 10 clients [{label}]")

                async def flood(server: Server = server, port: int = port) -> Result:
                    return await osc_in(server, port, 10, 5000, 1000.0, base)

                out[f"OSC in 1,000 msg/s -> 10 clients + 1 target [{label}]"] = (
                    await with_drawer(server, flood) if drawer else await flood()
                )
    finally:
        target.close()
    return {path: {k: row[k] for k in KEYS if k in row} for path, row in out.items()}


def table(results: dict[str, Result]) -> str:
    lines = ["| path | " + " | ".join(KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    for path, row in sorted(results.items()):
        lines.append(f"| {path} | " + " | ".join(str(row.get(k, "")) for k in KEYS) + " |")
    return "\n".join(lines)


async def run(runs: int) -> dict[str, Result]:
    collected = []
    for turn in range(runs):
        progress(f"monitor bench: run {turn + 1} of {runs}")
        collected.append(await one_run(turn))
    medians = median_results(collected)
    out = ROOT / "bench" / "results" / (time.strftime("%Y%m%d-%H%M%S") + "-monitor")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"runs": collected, "median": medians}, indent=1))
    stamp = time.strftime("%Y-%m-%d %H:%M")
    (out / "results.md").write_text(f"Medians of {runs} run(s), {stamp}\n\n{table(medians)}\n")
    print(table(medians))
    print(f"\nwritten to {out}")
    return medians


if __name__ == "__main__":
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
