"""MIDI latency and burst over a JACK dummy server: ``python -m bench.midi_bench [--runs 3]``.

- MIDI in -> clients: a 14-bit CC pair every 5 ms into ``fader``, time until
  each of 10 socket clients has the value (p50/p99 over every message and client).
- clients -> MIDI out: a socket client changes ``cc`` every 5 ms, time until
  a JACK port of ours receives the CC.
- burst: 1,000 CC messages as fast as possible (a fast knob twist), then the
  time from the last one sent until every client shows the final value.

JACK runs as the tests run it: ``jackd -S --no-realtime -d dummy -r 48000 -p 64``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import mido

from bench.common import (
    BENCH_CONTROLS,
    ROOT,
    Server,
    close_all,
    connect_watchers,
    percentiles,
    process_cpu,
    wait_all_on,
)
from bridge.config import parse_config
from bridge.midi.codec import from_midi
from tests.jack import BACKEND, MidiPeer, running_jack

MIDI_EXTRA = f'[midi]\nbackend = "{BACKEND}"\ninput = "bench-in"\noutput = "bench-out"\nvirtual = true\n'


class StampedInput:
    """Reads our JACK input port every 0.2 ms and stamps each message on arrival."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.arrivals: list[tuple[float, list[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.port.get_message()
            if item is None:
                time.sleep(0.0002)
                continue
            self.arrivals.append((time.perf_counter(), item[0]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


async def run_once(
    clients: int, messages: int, burst: int, env: dict[str, str] | None = None, root: Path = ROOT
) -> dict[str, Any]:
    fader = parse_config(__import__("tomllib").loads(BENCH_CONTROLS), Path("bench.toml")).control("fader")
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        with running_jack(Path(folder)) as jack:
            with Server(MIDI_EXTRA, env={"JACK_DEFAULT_SERVER": jack.name, **(env or {})}, root=root) as server:
                peer = MidiPeer()
                peer.connect("bench-in", "bench-out")
                stamped = StampedInput(peer.input)
                watchers = await connect_watchers(server.url, clients)
                # MIDI in -> clients, 14-bit pairs into "fader"
                cpu0, gen0 = server.cpu_seconds(), process_cpu()
                sent: dict[Any, float] = {}
                start = time.perf_counter()
                for k in range(1, messages + 1):
                    delay = start + k / 200 - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    number = k * 16
                    value = from_midi(fader, number, 16383)
                    sent[value] = time.perf_counter()
                    peer.send(
                        mido.Message("control_change", channel=0, control=1, value=number >> 7),
                        mido.Message("control_change", channel=0, control=33, value=number & 0x7F),
                    )
                last_value = from_midi(fader, messages * 16, 16383)
                await wait_all_on(watchers, "fader", last_value)
                lat = [
                    w.arrivals[("fader", v)] - t
                    for v, t in sent.items()
                    for w in watchers
                    if ("fader", v) in w.arrivals
                ]
                result["midi_in"] = {
                    **percentiles(lat),
                    "delivered": round(len(lat) / (len(sent) * clients), 4),
                    "server_cpu_s": round(server.cpu_seconds() - cpu0, 2),
                    "loadgen_cpu_s": round(process_cpu() - gen0, 2),
                }
                # clients -> MIDI out, 7-bit CC on "cc"
                stamped.arrivals.clear()
                out_sent: list[tuple[int, float]] = []
                start = time.perf_counter()
                for k in range(1, messages + 1):
                    delay = start + k / 200 - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    value = (k * 37) % 128  # never the same number twice running, never the start value
                    out_sent.append((value, time.perf_counter()))
                    await watchers[0].sio.emit("value changed", {"who": "cc", "data": value})
                deadline = time.perf_counter() + 10
                while time.perf_counter() < deadline and len(stamped.arrivals) < messages:
                    await asyncio.sleep(0.01)
                arrivals = [(t, m[2]) for t, m in stamped.arrivals if len(m) == 3 and m[0] == 0xB0 and m[1] == 2]
                out_lat, j = [], 0
                for value, t in out_sent:
                    while j < len(arrivals) and arrivals[j][1] != value:
                        j += 1
                    if j < len(arrivals):
                        out_lat.append(arrivals[j][0] - t)
                        j += 1
                result["midi_out"] = {**percentiles(out_lat), "delivered": round(len(out_lat) / messages, 4)}
                # burst of CC into "cc"
                values = [k % 100 for k in range(burst - 1)] + [127]
                for value in values:
                    peer.send(mido.Message("control_change", channel=0, control=2, value=value))
                sent_last = time.perf_counter()
                done = await wait_all_on(watchers, "cc", 127)
                result["burst"] = {
                    "messages": burst,
                    "all_clients_on_last_ms": None if done is None else round(max(0.0, done - sent_last) * 1000, 1),
                    "peak_rss_mb": round(server.peak_rss_mb(), 1),
                }
                await close_all(watchers)
                stamped.close()
                peer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = [asyncio.run(run_once(args.clients, args.messages, args.burst)) for _ in range(args.runs)]
    summary = {
        "midi_in_p50_ms": statistics.median(r["midi_in"]["p50_ms"] for r in runs),
        "midi_in_p99_ms": statistics.median(r["midi_in"]["p99_ms"] for r in runs),
        "midi_out_p50_ms": statistics.median(r["midi_out"]["p50_ms"] for r in runs),
        "midi_out_p99_ms": statistics.median(r["midi_out"]["p99_ms"] for r in runs),
        "burst_all_clients_on_last_ms": statistics.median(
            r["burst"]["all_clients_on_last_ms"] or float("inf") for r in runs
        ),
    }
    print(json.dumps({"runs": runs, "median_of_runs": summary}, indent=1))


if __name__ == "__main__":
    main()
