"""The bench suite: every path, against the bridge and the classic recipe, in one run.

``python -m bench [--quick] [--runs N] [--base DIR] [--out DIR]`` (``make
bench``) writes ``results.md``, ``results.json`` and ``latency.png`` to
``bench/results/<timestamp>/`` and prints the Markdown table. Figures are
medians of ``--runs`` runs. ``--base DIR`` measures another checkout of the
project too (``git worktree add DIR main``), in every run, before this tree:
its rows are marked ``[base]`` and the table gives this tree's p99 as a
ratio of the base's.

The paths with many clients also run with the node load generator
(:mod:`bench.nodegen`, its CPU and whether it was the limit reported beside
the server's), and the page's own paths in Chromium
(:mod:`bench.browser_bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from pythonosc.osc_message import OscMessage

from bench import browser_bench, nodegen
from bench.cluster_bench import run_once as cluster_run_once
from bench.common import (
    ROOT,
    Measured,
    Server,
    Watcher,
    close_all,
    connect_watchers,
    free_port,
    osc,
    paced_changes,
    percentiles,
    process_cpu,
    wait_all_on,
)
from bench.midi_bench import run_once as midi_run_once

Result = dict[str, Any]


class Classic(Measured):
    """The classic recipe app in a subprocess, with the same surface as :class:`Server`."""

    def __init__(self, mode: str = "threading") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = mode
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Classic:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.classic_app", str(self.port), self.mode],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_ready(self.url, None)
        return self


def progress(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


async def measure(
    server: Any, watchers: list[Watcher], drive: Callable[[], Awaitable[dict[int, float]]], last: int
) -> Result:
    """Run ``drive`` (which returns send times by value) and collect what the watchers saw."""
    cpu0, gen0 = server.cpu_seconds(), process_cpu()
    sent = await drive()
    ended = time.perf_counter()
    done = await wait_all_on(watchers, "fader", last, timeout=30)
    lat = [w.arrivals[("fader", i)] - t for i, t in sent.items() for w in watchers if ("fader", i) in w.arrivals]
    return {
        **percentiles(lat),
        "delivered": round(len(lat) / max(1, len(sent) * len(watchers)), 4),
        "all_on_last": done is not None,
        "settled_ms": None if done is None else round(max(0.0, done - ended) * 1000, 1),
        "server_cpu_s": round(server.cpu_seconds() - cpu0, 2),
        "loadgen_cpu_s": round(process_cpu() - gen0, 2),
        "peak_rss_mb": round(server.peak_rss_mb(), 1),
    }


async def fanout(server: Any, clients: int, rate: float, seconds: float, base: int) -> Result:
    """One sender at ``rate`` changes/s for ``seconds``; ``clients`` watchers."""
    watchers = await connect_watchers(server.url, clients + 1)
    sender, watchers = watchers[0], watchers[1:]
    count = int(rate * seconds)

    try:
        return await measure(server, watchers, lambda: paced_changes(sender, count, rate, base), base + count - 1)
    finally:
        await close_all([sender, *watchers])


async def flood_socket(server: Any, clients: int, count: int, base: int) -> Result:
    watchers = await connect_watchers(server.url, clients + 1)
    sender, watchers = watchers[0], watchers[1:]

    async def drive() -> dict[int, float]:
        sent = {}
        for k in range(count):
            sent[base + k] = time.perf_counter()
            await sender.sio.emit("value changed", {"who": "fader", "data": base + k})
        return sent

    try:
        return await measure(server, watchers, drive, base + count - 1)
    finally:
        await close_all([sender, *watchers])


async def osc_in(server: Server, osc_port: int, clients: int, count: int, rate: float | None, base: int) -> Result:
    """OSC messages into /fader (paced at ``rate``, or as fast as possible), watched by sockets."""
    watchers = await connect_watchers(server.url, clients)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    received0 = osc_received(server)

    async def drive() -> dict[int, float]:
        sent = {}
        start = time.perf_counter()
        for k in range(count):
            if rate:
                delay = start + k / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            sent[base + k] = time.perf_counter()
            sock.sendto(osc("/fader", base + k), ("127.0.0.1", osc_port))
        return sent

    try:
        result = await measure(server, watchers, drive, base + count - 1)
        result["datagrams_counted"] = osc_received(server) - received0
        return result
    finally:
        sock.close()
        await close_all(watchers)


def osc_received(server: Server) -> int:
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as resp:
        return int(json.loads(resp.read())["adapters"]["osc"]["received"])


async def osc_out(
    server: Server, target: socket.socket, count: int, rate: float, base: int, watching: int = 0
) -> Result:
    """A socket client changes /fader at ``rate``; time until the OSC target has each value
    (``watching``: that many more clients get every change meanwhile)."""
    watchers = await connect_watchers(server.url, 1 + watching)
    loop = asyncio.get_running_loop()
    got: dict[int, float] = {}
    target.setblocking(False)

    def on_datagram() -> None:
        while True:
            try:
                data = target.recv(65535)
            except BlockingIOError:
                return
            got.setdefault(int(OscMessage(data).params[0]), time.perf_counter())

    loop.add_reader(target.fileno(), on_datagram)
    cpu0, gen0 = server.cpu_seconds(), process_cpu()
    sent = {}
    start = time.perf_counter()
    for k in range(count):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[base + k] = time.perf_counter()
        await watchers[0].sio.emit("value changed", {"who": "fader", "data": base + k})
    deadline = time.perf_counter() + 10
    while base + count - 1 not in got and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    loop.remove_reader(target.fileno())
    await close_all(watchers)
    lat = [got[v] - t for v, t in sent.items() if v in got]
    return {
        **percentiles(lat),
        "delivered": round(len(lat) / count, 4),
        "all_on_last": base + count - 1 in got,
        "server_cpu_s": round(server.cpu_seconds() - cpu0, 2),
        "loadgen_cpu_s": round(process_cpu() - gen0, 2),
        "peak_rss_mb": round(server.peak_rss_mb(), 1),
    }


SWEEP_CONTROLS = "".join(
    f'\n[[controls]]\nid = "f{i}"\ntype = "range"\nmin = 0\nmax = 1000000\nstep = 1\n' for i in range(16)
)


async def sweep16(server: Any, clients: int, steps: int, base: int) -> Result:
    """16 faders swept at once from 16 senders, as fast as they go; every client must end on every last value."""
    watchers = await connect_watchers(server.url, clients + 16)
    senders, watchers = watchers[:16], watchers[16:]
    cpu0, gen0 = server.cpu_seconds(), process_cpu()
    start = time.perf_counter()

    async def sweep(i: int, w: Watcher) -> None:
        for k in range(steps):
            await w.sio.emit("value changed", {"who": f"f{i}", "data": base + k})

    await asyncio.gather(*(sweep(i, w) for i, w in enumerate(senders)))
    ended = time.perf_counter()
    deadline = time.perf_counter() + 15  # one deadline for all 16: an app that loses order never gets there
    finals = []
    for i in range(16):
        remaining = max(0.05, deadline - time.perf_counter())
        finals.append(await wait_all_on(watchers, f"f{i}", base + steps - 1, timeout=remaining))
    on_last = sum(w.last.get(f"f{i}") == base + steps - 1 for w in watchers for i in range(16))
    await close_all([*senders, *watchers])
    ok = all(f is not None for f in finals)
    return {
        "changes": 16 * steps,
        "faders_on_last": f"{on_last}/{16 * len(watchers)}",
        "send_s": round(ended - start, 3),
        "all_on_last": ok,
        "settled_ms": round(max(0.0, max(f for f in finals if f) - ended) * 1000, 1) if ok else None,
        "server_cpu_s": round(server.cpu_seconds() - cpu0, 2),
        "loadgen_cpu_s": round(process_cpu() - gen0, 2),
    }


async def run_paths(quick: bool, root: Path = ROOT, tag: str = "bridge", classic: bool = True) -> dict[str, Result]:
    """One run of every path against the bridge of ``root`` (rows marked ``[tag]``) and, with
    ``classic``, the classic recipe."""
    sizes = [2, 10, 50] if quick else [2, 10, 50, 100, 500]
    seconds = 2.0 if quick else 5.0
    results: dict[str, Result] = {}
    osc_port = free_port(socket.SOCK_DGRAM)
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    extra = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["127.0.0.1:{target.getsockname()[1]}"]\n'
    base = 1

    def both(bridge: Any, other: Any) -> list[tuple[str, Any]]:
        return [(tag, bridge), ("classic", other)] if classic else [(tag, bridge)]

    with Server(extra, root=root) as bridge, Classic() if classic else nullcontext() as reference:
        for n in sizes:
            for name, server in both(bridge, reference):
                progress(f"fanout N={n} [{name}]")
                results[f"fanout N={n} [{name}]"] = await fanout(server, n, 200, seconds, base)
                base += 10_000
        flood = 1000 if quick else 5000
        for name, server in both(bridge, reference):
            progress(f"flood {flood} socket, 10 clients [{name}]")
            results[f"flood {flood} socket, 10 clients [{name}]"] = await flood_socket(server, 10, flood, base)
            base += 10_000
        progress(f"osc in -> 10 clients [{tag}]")
        results[f"osc in -> 10 clients [{tag}]"] = await osc_in(bridge, osc_port, 10, 1000, 200, base)
        base += 10_000
        progress(f"osc flood {flood} -> 10 clients [{tag}]")
        results[f"osc flood {flood} -> 10 clients [{tag}]"] = await osc_in(bridge, osc_port, 10, flood, None, base)
        base += 10_000
        progress(f"osc burst 1000 -> 10 clients [{tag}]")
        results[f"osc burst 1000 -> 10 clients [{tag}]"] = await osc_in(bridge, osc_port, 10, 1000, None, base)
        base += 10_000
        progress(f"clients -> osc out [{tag}]")
        results[f"clients -> osc out [{tag}]"] = await osc_out(bridge, target, 1000, 200, base)
        base += 10_000
    target.close()
    with Server("", SWEEP_CONTROLS, root=root) as bridge, Classic() if classic else nullcontext() as reference:
        for name, server in both(bridge, reference):
            progress(f"16 faders swept, 10 clients [{name}]")
            results[f"16 faders swept, 10 clients [{name}]"] = await sweep16(server, 10, 200 if quick else 500, base)
            base += 10_000
    progress(f"midi in/out and 1000-CC burst over JACK [{tag}]")
    midi = await midi_run_once(10, 300 if quick else 1000, 1000, root=root)
    results[f"midi in -> 10 clients [{tag}]"] = midi["midi_in"]
    results[f"clients -> midi out [{tag}]"] = midi["midi_out"]
    results[f"midi burst 1000 CC -> 10 clients [{tag}]"] = {
        "settled_ms": midi["burst"]["all_clients_on_last_ms"],
        "all_on_last": midi["burst"]["all_clients_on_last_ms"] is not None,
        "peak_rss_mb": midi["burst"]["peak_rss_mb"],
    }
    scale = 200 if quick else 1000
    with Server("", root=root) as bridge:
        progress(f"scale {scale} clients, 10 changes/s (Python clients) [{tag}]")
        results[f"scale {scale} clients, 10 changes/s [{tag}]"] = await fanout(bridge, scale, 10, seconds, base)
    progress(f"node generator: OSC in, fan-out, 1,000 clients [{tag}]")
    for path, row in nodegen.node_paths(root, quick, base).items():
        results[f"{path} [{tag}]"] = row
    base += 100_000
    if classic:
        with Classic() as reference:
            progress(f"{nodegen.FANOUT_10} [classic]")
            results[f"{nodegen.FANOUT_10} [classic]"] = nodegen.fanout(reference, 10, 200, seconds, base)
    progress(f"Chromium: mouse down -> 9 other pages; JACK MIDI in -> a page [{tag}]")
    # Playwright's sync API in a thread of its own: it refuses to run inside this asyncio loop.
    pages = await asyncio.to_thread(browser_bench.run_once, 20 if quick else 60, root)
    for path, row in pages.items():
        results[f"{path} [{tag}]"] = row
    if root == ROOT:
        per_process = 100 if quick else 500
        progress(f"cluster 3 x {per_process} clients beside one process, 10 changes/s [{tag}]")
        results.update(await cluster_run_once(per_process, 3, 10, seconds * 2))
    return results


async def run_trees(quick: bool, base: Path | None) -> dict[str, Result]:
    """One run of every path: the base tree first (when given), then this one and the classic recipe."""
    results: dict[str, Result] = {}
    if base is not None:
        results.update(await run_paths(quick, base, "base", classic=False))
    results.update(await run_paths(quick))
    return results


def median_results(runs: list[dict[str, Result]]) -> dict[str, Result]:
    merged: dict[str, Result] = {}
    for path in runs[0]:
        merged[path] = {}
        for key, first in runs[0][path].items():
            values = [r[path][key] for r in runs if path in r]
            if isinstance(first, bool):
                merged[path][key] = all(values)
            elif isinstance(first, int | float) and all(isinstance(v, int | float) for v in values):
                merged[path][key] = round(statistics.median(values), 3)
            else:
                # Words (which side was the limit): the most common, the latest on a tie.
                merged[path][key] = max(reversed(values), key=values.count)
    return merged


def markdown(results: dict[str, Result]) -> str:
    cols = [
        "p50_ms",
        "p99_ms",
        "max_ms",
        "delivered",
        "all_on_last",
        "settled_ms",
        "server_cpu_s",
        "server_us_per_update",
        "loadgen_cpu_s",
        "loadgen_busy",
        "limit",
        "peak_rss_mb",
    ]
    lines = [
        "| path | " + " | ".join(cols) + " | p99 ratio vs classic | p99 ratio vs base |",
        "|---" * (len(cols) + 3) + "|",
    ]
    for path, row in results.items():
        ratio = ""
        against_base = ""
        if path.endswith("[bridge]"):
            before = results.get(path.replace("[bridge]", "[base]"))
            if before and before.get("p99_ms") and row.get("p99_ms"):
                against_base = f"{row['p99_ms'] / before['p99_ms']:.2f}"
            if before and before.get("settled_ms") and row.get("settled_ms") is not None:
                against_base += f" (settle {row['settled_ms'] / before['settled_ms']:.3f})"
            ref = results.get(path.replace("[bridge]", "[classic]"))
            if ref and ref.get("p99_ms") and row.get("p99_ms"):
                ratio = f"{row['p99_ms'] / ref['p99_ms']:.2f}"
            if ref and ref.get("settled_ms") and row.get("settled_ms") is not None:
                ratio += f" (settle {row['settled_ms'] / ref['settled_ms']:.3f})"
        cells = [str(row.get(c, "")) for c in cols]
        lines.append(f"| {path} | " + " | ".join(cells) + f" | {ratio} | {against_base} |")
    return "\n".join(lines)


def plot(results: dict[str, Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p for p in results if "p99_ms" in results[p] and results[p]["p99_ms"] == results[p]["p99_ms"]]
    fig, ax = plt.subplots(figsize=(10, max(4, 0.35 * len(names))))
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], [results[n]["p50_ms"] for n in names], height=0.4, label="p50")
    ax.barh([i - 0.2 for i in y], [results[n]["p99_ms"] for n in names], height=0.4, label="p99")
    ax.set_yticks(list(y), names, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run: a smoke test of the suite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--base", type=Path, default=None, help="another checkout (git worktree add DIR main) measured in the same run"
    )
    args = parser.parse_args()
    runs_n = 1 if args.quick else args.runs
    out = args.out or ROOT / "bench" / "results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    runs = [asyncio.run(run_trees(args.quick, args.base.resolve() if args.base else None)) for _ in range(runs_n)]
    results = median_results(runs)
    table = markdown(results)
    (out / "results.json").write_text(json.dumps({"runs": runs, "median": results}, indent=1))
    (out / "results.md").write_text(f"Medians of {runs_n} run(s), {time.strftime('%Y-%m-%d %H:%M')}\n\n{table}\n")
    plot(results, out / "latency.png")
    print(table)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
