"""The paths where clients fall behind, this tree against others, in one run: ``python -m bench.behind``.

``python -m bench.behind [--base DIR ...] [--runs 3] [--quick]`` measures, per
run and for each tree in turn (so all see the same machine):

- one sender at 200 changes/s to 50, 100 and 500 Python clients (which,
  past about 50, cannot read as fast as the server writes);
- a flood of 5,000 changes from one socket, and of 5,000 OSC datagrams, to
  10 clients (how long until every client shows the last value);
- clients -> OSC out at 200/s, alone and with 100 more clients watching.

These are the rows of ``make bench`` where what the server does with a
client that is behind decides the figure. ``--base`` may be given several
times (``git worktree add DIR COMMIT``); each tree runs with this tree's
Python environment and bench. Prints a Markdown table of medians and writes
it with every run's figures to ``bench/results/behind-<time>/``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from pathlib import Path
from typing import Any

from bench.common import Server, free_port, save_results, trees
from bench.suite import fanout, flood_socket, median_results, osc_in, osc_out, progress

Result = dict[str, Any]


def paths(quick: bool) -> list[str]:
    sizes = [10, 50] if quick else [50, 100, 500]
    flood = 1000 if quick else 5000
    return [
        *(f"fanout N={n}" for n in sizes),
        f"flood {flood} socket, 10 clients",
        f"osc flood {flood} -> 10 clients",
        "clients -> osc out",
        "clients -> osc out, 100 pages watching",
    ]


async def one_tree(root: Path, quick: bool) -> dict[str, Result]:
    sizes = [10, 50] if quick else [50, 100, 500]
    seconds = 2.0 if quick else 5.0
    flood = 1000 if quick else 5000
    osc_port = free_port(socket.SOCK_DGRAM)
    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    extra = f'[osc]\nlisten = "127.0.0.1:{osc_port}"\ntargets = ["127.0.0.1:{target.getsockname()[1]}"]\n'
    out: dict[str, Result] = {}
    base = 1
    try:
        with Server(extra, root=root) as server:
            for n in sizes:
                out[f"fanout N={n}"] = await fanout(server, n, 200, seconds, base)
                base += 10_000
            out[f"flood {flood} socket, 10 clients"] = await flood_socket(server, 10, flood, base)
            base += 10_000
            out[f"osc flood {flood} -> 10 clients"] = await osc_in(server, osc_port, 10, flood, None, base)
            base += 10_000
            out["clients -> osc out"] = await osc_out(server, target, 1000, 200, base)
            base += 10_000
            out["clients -> osc out, 100 pages watching"] = await osc_out(server, target, 1000, 200, base, 100)
    finally:
        target.close()
    return out


def run_once(trees: dict[str, Path], quick: bool) -> dict[str, Result]:
    out: dict[str, Result] = {}
    for name, root in trees.items():
        progress(f"behind paths [{name}]")
        for path, row in asyncio.run(one_tree(root, quick)).items():
            out[f"{path} [{name}]"] = row
    return out


def cell(row: Result) -> str:
    if not row:
        return ""
    if row.get("p50_ms") is None or "flood" in str(row.get("_path", "")):
        text = f"settled {row.get('settled_ms')} ms"
    else:
        text = f"{row.get('p50_ms')} / {row.get('p99_ms')} ms"
    extra = []
    if row.get("delivered") is not None:
        extra.append(f"{row['delivered'] * 100:.1f} %")
    if row.get("server_cpu_s") is not None:
        extra.append(f"srv {row['server_cpu_s']} s")
    return text + (f" ({', '.join(extra)})" if extra else "")


def table(medians: dict[str, Result], names: list[str], quick: bool) -> str:
    lines = ["| path | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for path in paths(quick):
        cells = [cell({**medians.get(f"{path} [{name}]", {}), "_path": path}) for name in names]
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.behind")
    parser.add_argument("--base", type=Path, action="append", default=[], help="another checkout (repeatable)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    measured = trees(args.base)
    runs = [run_once(measured, args.quick) for _ in range(1 if args.quick else args.runs)]
    save_results("behind", measured, runs, table(median_results(runs), list(measured), args.quick))


if __name__ == "__main__":
    main()
