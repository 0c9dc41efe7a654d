"""Many Python clients in one process, taken apart: ``python -m bench.crowd [--base DIR ...]``.

The fan-out row with 500 Python clients is the one row of ``make bench``
still worse than before the speed work (its p99). This measures where that
comes from, per tree (several take turns in each run) and per client model:

- ``python-socketio``: the clients as ``make bench`` has them. python-socketio's
  asyncio client answers a ping as it reads it but runs each event's
  handler as a task of its own, so its pongs run ahead of what it handled;
- ``in order``: the same clients handling each message before reading the
  next, as a browser's Engine.IO client does.

For each: p50 / p99 over every update delivered, the same for changes sent
after the first :data:`SETTLE` seconds (the start of the stream apart), and
how many updates were delivered. The clients' own garbage collector is
frozen while they run (``gc.freeze()``), so its pauses do not blur the
figures. ``--clients``, ``--rate`` and ``--seconds`` set the row (500,
200/s, 5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from pathlib import Path
from typing import Any

import engineio
import socketio

from bench.common import (
    Server,
    close_all,
    connect_watchers,
    paced_changes,
    percentiles,
    save_results,
    trees,
    wait_all_on,
)
from bench.suite import progress

#: Changes sent this long (seconds) after the first are "after the start".
SETTLE = 1.5
MODELS = ("python-socketio", "in order")


class _InOrderEngineIO(engineio.AsyncClient):  # type: ignore[misc]
    """python-engineio's asyncio client, each message handled before the next packet is read."""

    async def _receive_packet(self, pkt: Any) -> None:
        if pkt.packet_type == engineio.packet.MESSAGE:
            await self._trigger_event("message", pkt.data, run_async=False)
        else:
            await super()._receive_packet(pkt)


class InOrderClient(socketio.AsyncClient):  # type: ignore[misc]
    """A python-socketio asyncio client that handles its messages in order, as a browser does."""

    def _engineio_client_class(self) -> type[engineio.AsyncClient]:
        return _InOrderEngineIO


async def one_row(root: Path, model: str, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    with Server("", root=root) as server:
        client_class = InOrderClient if model == "in order" else socketio.AsyncClient
        watchers = await connect_watchers(server.url, clients + 1, client_class)
        sender, watchers = watchers[0], watchers[1:]
        gc.collect()
        gc.freeze()
        try:
            count = int(rate * seconds)
            start = time.perf_counter()
            sent = await paced_changes(sender, count, rate)
            await wait_all_on(watchers, "fader", count, timeout=60)
            every, settled = [], []
            for value, at in sent.items():
                for watcher in watchers:
                    arrived = watcher.arrivals.get(("fader", value))
                    if arrived is not None:
                        every.append(arrived - at)
                        if at - start >= SETTLE:
                            settled.append(arrived - at)
            return {
                "all": percentiles(every),
                "after_start": percentiles(settled),
                "delivered": len(every),
                "offered": count * clients,
            }
        finally:
            gc.unfreeze()
            await close_all([sender, *watchers])


def run_once(trees: dict[str, Path], clients: int, rate: float, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, root in trees.items():
        for model in MODELS:
            progress(f"{clients} clients, {model} [{name}]")
            out[f"{model} [{name}]"] = asyncio.run(one_row(root, model, clients, rate, seconds))
    return out


def _median(runs: list[dict[str, Any]], key: str, part: str, field: str) -> float:
    return round(statistics.median(run[key][part][field] for run in runs), 1)


def table(runs: list[dict[str, Any]], names: list[str], clients: int) -> str:
    lines = [
        f"| {clients} Python clients | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for model in MODELS:
        for part, label in (("all", "all"), ("after_start", f"changes sent after the first {SETTLE} s")):
            cells = []
            for name in names:
                key = f"{model} [{name}]"
                cells.append(f"{_median(runs, key, part, 'p50_ms')} / {_median(runs, key, part, 'p99_ms')} ms")
            lines.append(f"| {model}, p50 / p99, {label} | " + " | ".join(cells) + " |")
        delivered = [
            f"{statistics.median(run[f'{model} [{name}]']['delivered'] for run in runs):,.0f}" for name in names
        ]
        lines.append(f"| {model}, updates delivered | " + " | ".join(delivered) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.crowd")
    parser.add_argument("--base", type=Path, action="append", default=[], help="another checkout (repeatable)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    measured = trees(args.base)
    runs = [run_once(measured, args.clients, args.rate, args.seconds) for _ in range(args.runs)]
    save_results("crowd", measured, runs, table(runs, list(measured), args.clients))


if __name__ == "__main__":
    main()
