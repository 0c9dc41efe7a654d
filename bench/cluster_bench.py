"""The cluster beside one process: the same browsers, one change every 100 ms.

``python -m bench.cluster_bench [--clients 500] [--processes 3]`` starts
Redis (AOF, fsync every second) and ``--processes`` bridges sharing it,
connects ``--clients`` watchers to each and one sender to the first, and
measures, for every change, the time until each watcher has it; then the
same with every watcher on one bridge. ``make bench`` runs it as part of the
suite. The load generator is one asyncio loop on the same cores as the
servers and Redis; its CPU is reported beside theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    Server,
    Watcher,
    close_all,
    connect_watchers,
    paced_changes,
    percentiles,
    process_cpu,
    wait_all_on,
)
from cluster.services import RedisServer

Result = dict[str, Any]


class Group:
    """Several servers measured as one: CPU summed, the largest peak RSS."""

    def __init__(self, servers: list[Server], redis: RedisServer | None = None) -> None:
        self.servers = servers
        self.redis = redis

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)

    def redis_cpu(self) -> float:
        if self.redis is None or self.redis.proc is None:
            return 0.0
        fields = Path(f"/proc/{self.redis.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        return max(s.peak_rss_mb() for s in self.servers)


async def drive(group: Group, sender: Watcher, watchers: list[Watcher], rate: float, seconds: float) -> Result:
    """One change of ``fader`` every 1/rate s from ``sender``; what the watchers saw, and when."""
    count = int(rate * seconds)
    cpu0, gen0, redis0 = group.cpu_seconds(), process_cpu(), group.redis_cpu()
    sent = await paced_changes(sender, count, rate)
    done = await wait_all_on(watchers, "fader", count, timeout=60)
    lat = [w.arrivals[("fader", v)] - t for v, t in sent.items() for w in watchers if ("fader", v) in w.arrivals]
    return {
        **percentiles(lat),
        "delivered": round(len(lat) / max(1, count * len(watchers)), 4),
        "all_on_last": done is not None,
        "server_cpu_s": round(group.cpu_seconds() - cpu0, 2),
        "redis_cpu_s": round(group.redis_cpu() - redis0, 2),
        "loadgen_cpu_s": round(process_cpu() - gen0, 2),
        "peak_rss_mb": round(group.peak_rss_mb(), 1),
    }


async def cluster_run(clients: int, processes: int, rate: float, seconds: float) -> Result:
    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    redis = RedisServer(folder / "redis")
    redis.start()
    try:
        extra = f'[cluster]\nredis = "{redis.url}"\n'
        servers = [Server(extra).__enter__() for _ in range(processes)]
        try:
            crowds = await asyncio.gather(*(connect_watchers(s.url, clients) for s in servers))
            (sender,) = await connect_watchers(servers[0].url, 1)
            watchers = [w for crowd in crowds for w in crowd]
            try:
                result = await drive(Group(servers, redis), sender, watchers, rate, seconds)
                result["clients"] = f"{processes} x {clients}"
                count = int(rate * seconds)
                result["delivered_by_process"] = [
                    round(
                        sum(1 for w in crowd for v in range(1, count + 1) if ("fader", v) in w.arrivals)
                        / max(1, count * len(crowd)),
                        4,
                    )
                    for crowd in crowds
                ]
                return result
            finally:
                await close_all([sender, *watchers])
        finally:
            for server in servers:
                server.__exit__(None, None, None)
    finally:
        redis.stop()


async def single_run(clients: int, rate: float, seconds: float) -> Result:
    with Server("") as server:
        watchers = await connect_watchers(server.url, clients)
        (sender,) = await connect_watchers(server.url, 1)
        try:
            result = await drive(Group([server]), sender, watchers, rate, seconds)
            result["clients"] = f"1 x {clients}"
            return result
        finally:
            await close_all([sender, *watchers])


async def run_once(clients: int = 500, processes: int = 3, rate: float = 10, seconds: float = 10) -> dict[str, Result]:
    """Both layouts, the cluster first; keyed like the suite's paths."""
    name = f"{processes} x {clients} clients, {rate:g} changes/s"
    return {
        f"cluster {name} [bridge]": await cluster_run(clients, processes, rate, seconds),
        f"one process, {processes * clients} clients, {rate:g} changes/s [bridge]": await single_run(
            processes * clients, rate, seconds
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500, help="watchers per process")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10.0, help="changes per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    results = asyncio.run(run_once(args.clients, args.processes, args.rate, args.seconds))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
