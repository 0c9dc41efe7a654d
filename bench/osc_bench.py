"""OSC latency and burst: ``python -m bench.osc_bench [--clients 10] [--messages 1000] [--runs 3]``.

- OSC in -> clients: a UDP message per 5 ms to /fader, time until each of N
  socket clients has it (p50/p99 over every message and client).
- clients -> OSC out: a socket client changes /fader every 5 ms, time until a
  UDP target receives it.
- burst: 5,000 OSC messages to one address as fast as possible, then the time
  from the last send until every client shows the last value.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
from typing import Any

from bench.common import Server, free_port
from bench.suite import osc_in, osc_out


async def run_once(clients: int, messages: int, burst: int) -> dict[str, Any]:
    osc_port = free_port(socket.SOCK_DGRAM)
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    extra = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["127.0.0.1:{target.getsockname()[1]}"]\n'
    try:
        with Server(extra) as server:
            osc_in_result = await osc_in(server, osc_port, clients, messages, 200, 1)
            osc_out_result = await osc_out(server, target, messages, 200, 10 * messages)
            flood = await osc_in(server, osc_port, clients, burst, None, 100 * messages)
    finally:
        target.close()
    return {
        "osc_in": osc_in_result,
        "osc_out": osc_out_result,
        "burst": {
            "messages": burst,
            "received_by_bridge": flood["datagrams_counted"],
            "all_clients_on_last_ms": flood["settled_ms"],
            "peak_rss_mb": flood["peak_rss_mb"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [asyncio.run(run_once(args.clients, args.messages, args.burst)) for _ in range(args.runs)]
    summary = {
        "osc_in_p50_ms": statistics.median(r["osc_in"]["p50_ms"] for r in runs),
        "osc_in_p99_ms": statistics.median(r["osc_in"]["p99_ms"] for r in runs),
        "osc_out_p50_ms": statistics.median(r["osc_out"]["p50_ms"] for r in runs),
        "osc_out_p99_ms": statistics.median(r["osc_out"]["p99_ms"] for r in runs),
        "burst_all_clients_on_last_ms": statistics.median(
            r["burst"]["all_clients_on_last_ms"] or float("inf") for r in runs
        ),
        "burst_received": [r["burst"]["received_by_bridge"] for r in runs],
    }
    print(json.dumps({"runs": runs, "median_of_runs": summary}, indent=1))


if __name__ == "__main__":
    main()
