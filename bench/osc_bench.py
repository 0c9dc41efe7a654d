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
import time
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

from bench.common import Server, close_all, connect_watchers, free_port, percentiles, process_cpu, wait_all_on


def osc(address: str, value: float) -> bytes:
    builder = OscMessageBuilder(address=address)
    builder.add_arg(float(value))
    return bytes(builder.build().dgram)


async def run_once(clients: int, messages: int, burst: int) -> dict[str, Any]:
    osc_port = free_port(socket.SOCK_DGRAM)
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.setblocking(False)
    extra = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["127.0.0.1:{target.getsockname()[1]}"]\n'
    result: dict[str, Any] = {}
    with Server(extra) as server:
        watchers = await connect_watchers(server.url, clients)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()

        # OSC in -> clients
        cpu0, gen0 = server.cpu_seconds(), process_cpu()
        sent: dict[int, float] = {}
        for i in range(1, messages + 1):
            sent[i] = time.perf_counter()
            sender.sendto(osc("/fader", i), ("127.0.0.1", osc_port))
            await asyncio.sleep(0.005)
        await wait_all_on(watchers, "fader", messages)
        lat = [w.arrivals[("fader", i)] - t for i, t in sent.items() for w in watchers if ("fader", i) in w.arrivals]
        result["osc_in"] = {
            **percentiles(lat),
            "delivered": round(len(lat) / (messages * clients), 4),
            "server_cpu_s": round(server.cpu_seconds() - cpu0, 2),
            "loadgen_cpu_s": round(process_cpu() - gen0, 2),
        }

        # clients -> OSC out
        while True:  # drain what the first part sent to the target
            try:
                target.recv(65535)
            except BlockingIOError:
                break
        got: dict[int, float] = {}

        def on_datagram() -> None:
            while True:
                try:
                    data = target.recv(65535)
                except BlockingIOError:
                    return
                got.setdefault(int(OscMessage(data).params[0]), time.perf_counter())

        loop.add_reader(target.fileno(), on_datagram)
        emitter = watchers[0].sio
        out_sent: dict[int, float] = {}
        base = 2 * messages
        for i in range(base, base + messages):
            out_sent[i] = time.perf_counter()
            await emitter.emit("value changed", {"who": "fader", "data": i})
            await asyncio.sleep(0.005)
        deadline = time.perf_counter() + 10
        while len(got) < messages and time.perf_counter() < deadline and (base + messages - 1) not in got:
            await asyncio.sleep(0.01)
        loop.remove_reader(target.fileno())
        out_lat = [got[i] - t for i, t in out_sent.items() if i in got]
        result["osc_out"] = {**percentiles(out_lat), "delivered": round(len(out_lat) / messages, 4)}

        # burst into one address
        health0 = json.loads(__import__("urllib.request").request.urlopen(server.url + "/healthz").read())
        received0 = health0["adapters"]["osc"]["received"]
        start = 10 * messages
        for i in range(start, start + burst):
            sender.sendto(osc("/fader", i), ("127.0.0.1", osc_port))
        sent_last = time.perf_counter()
        done = await wait_all_on(watchers, "fader", start + burst - 1)
        health = json.loads(__import__("urllib.request").request.urlopen(server.url + "/healthz").read())
        result["burst"] = {
            "messages": burst,
            "received_by_bridge": health["adapters"]["osc"]["received"] - received0,
            "all_clients_on_last_ms": None if done is None else round((done - sent_last) * 1000, 1),
            "peak_rss_mb": round(server.peak_rss_mb(), 1),
        }
        await close_all(watchers)
        sender.close()
    target.close()
    return result


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
