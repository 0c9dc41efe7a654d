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
``bench/results/<time>-monitor/``. First it times the hook itself in this
process, where the machine's load matters least: the check on the way of a
message with no drawer open, the record with one open, and the formatting
the monitor's thread does later.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
import timeit
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


def hook_costs(number: int = 1_000_000) -> dict[str, float]:
    """Nanoseconds per message: the check with no drawer open, the record with one open, the later formatting."""
    import mido
    from pythonosc.osc_message_builder import OscMessageBuilder

    from bridge.monitor import Monitor, describe

    monitor = Monitor(lambda event, payload, room: None)
    builder = OscMessageBuilder(address="/ch/01/mix/01/level")
    builder.add_arg(0.75)
    packet = bytes(builder.build().dgram)
    hook = "if m.watching:\n    m.saw('osc/udp', 'out', '10.0.0.5:10023', p, None, 'send1')"
    names = {"m": monitor, "p": packet}
    idle = min(timeit.repeat(hook, globals=names, number=number, repeat=5)) / number
    monitor.open("bench")
    watched = min(timeit.repeat(hook, globals=names, number=number // 10, repeat=5)) / (number // 10)
    message = mido.Message("control_change", channel=0, control=7, value=100)
    entries = [(1, 0.0, "osc/udp", "out", "x", packet, None, "a"), (2, 0.0, "midi", "in", "x", message, None, "b")]
    shown = min(timeit.repeat(lambda: [describe(e) for e in entries], number=10_000, repeat=5)) / 20_000
    return {"idle_check_ns": idle * 1e9, "record_ns": watched * 1e9, "format_ns": shown * 1e9}


def table(results: dict[str, Result]) -> str:
    lines = ["| path | " + " | ".join(KEYS) + " |", "|---" * (len(KEYS) + 1) + "|"]
    for path, row in sorted(results.items()):
        lines.append(f"| {path} | " + " | ".join(str(row.get(k, "")) for k in KEYS) + " |")
    return "\n".join(lines)


async def run(runs: int) -> dict[str, Result]:
    costs = hook_costs()
    progress("hook per message: " + ", ".join(f"{k} {v:.0f}" for k, v in costs.items()))
    collected = []
    for turn in range(runs):
        progress(f"monitor bench: run {turn + 1} of {runs}")
        collected.append(await one_run(turn))
    medians = median_results(collected)
    out = ROOT / "bench" / "results" / (time.strftime("%Y%m%d-%H%M%S") + "-monitor")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"hook": costs, "runs": collected, "median": medians}, indent=1))
    stamp = time.strftime("%Y-%m-%d %H:%M")
    said = ", ".join(f"{k} {v:.0f}" for k, v in costs.items())
    (out / "results.md").write_text(f"Medians of {runs} run(s), {stamp}\n\n{table(medians)}\n\nHook: {said}\n")
    print(table(medians))
    print(f"\nthe hook, per message: {said}")
    print(f"\nwritten to {out}")
    return medians


if __name__ == "__main__":
    asyncio.run(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
