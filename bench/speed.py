"""The paths of the speed targets, this tree against another, in one run: ``python -m bench.speed``.

``python -m bench.speed [--base DIR] [--runs 3] [--quick]`` measures, per run
and for each tree in turn (so both see the same machine):

- mouse down in 1 of 10 pages -> shown in the 9 others (Chromium);
- JACK MIDI CC in -> shown in a page (Chromium);
- OSC in -> 10 raw WebSocket listeners, 200 datagrams/s (node generator);
- 10 clients, one change every 5 ms (node generator);
- 1,000 clients, one change every 20 ms, and 10 changes/s (node generator).

``--base DIR`` is another checkout of the project (``git worktree add DIR
main``), run with this tree's Python environment and bench. Prints a
Markdown table of medians, base beside this tree, and writes it with every
run's figures to ``bench/results/speed-<time>/``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import browser_bench, nodegen
from bench.common import save_results, trees
from bench.suite import median_results, progress

Result = dict[str, Any]

#: The issue's targets, for the table: (p50, p99) in ms, or a note.
TARGETS = {
    browser_bench.MOUSE: "p50 <= 4, p99 <= 10",
    browser_bench.MIDI: "below Open Stage Control's (1.93 / 3.4 measured earlier)",
    nodegen.OSC_IN: "p50 <= 0.35, p99 <= 1",
    nodegen.FANOUT_10: "",
    nodegen.FANOUT_100: "",
    nodegen.SCALE_50: "p99 <= 50, delivered >= 99 %",
    nodegen.SCALE_10: "p99 <= 25",
}


def run_once(trees: dict[str, Path], quick: bool) -> dict[str, Result]:
    out: dict[str, Result] = {}
    for name, root in trees.items():
        progress(f"node paths [{name}]")
        for path, row in nodegen.node_paths(root, quick, 1).items():
            out[f"{path} [{name}]"] = row
        progress(f"browser paths [{name}]")
        for path, row in browser_bench.run_once(20 if quick else 60, root).items():
            out[f"{path} [{name}]"] = row
    return out


COLUMNS = ("p50_ms", "p99_ms", "delivered", "server_cpu_s", "server_us_per_update", "loadgen_cpu_s", "limit")


def table(medians: dict[str, Result], names: list[str]) -> str:
    head = "| path | " + " | ".join(f"{n}: p50 / p99 ms" for n in names) + " | target |"
    lines = [head, "|---" * (len(names) + 2) + "|"]
    for path, target in TARGETS.items():
        cells = []
        for name in names:
            row = medians.get(f"{path} [{name}]", {})
            cell = f"{row.get('p50_ms')} / {row.get('p99_ms')}"
            extra: list[str] = []
            if "delivered" in row:
                extra.append(f"{row['delivered'] * 100:.1f} % delivered")
            if row.get("before_send_p50_ms") is not None:
                extra.append(f"{row['before_send_p50_ms']} before the page sends")
            if row.get("send_to_first_write_p50_ms") is not None:
                extra.append(
                    f"{row['send_to_first_write_p50_ms']} from the send until the server began writing "
                    f"(from a raw client's send {row.get('raw_send_to_first_write_p50_ms')}), "
                    f"{row.get('first_write_to_page_p50_ms')} from there to the frame's arrival in a page, "
                    f"{row.get('arrival_to_shown_p50_ms')} from there to shown"
                )
            if row.get("server_cpu_s") is not None:
                extra.append(f"server {row['server_cpu_s']} s CPU")
            if row.get("server_us_per_update") is not None:
                extra.append(f"{row['server_us_per_update']} us/update")
            if row.get("loadgen_cpu_s") is not None:
                extra.append(f"generator {row['loadgen_cpu_s']} s CPU, limit: {row.get('limit')}")
            cells.append(cell + (f" ({'; '.join(extra)})" if extra else ""))
        lines.append(f"| {path} | " + " | ".join(cells) + f" | {target} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None, run: Callable[..., dict[str, Result]] = run_once) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.speed")
    parser.add_argument("--base", type=Path, help="another checkout to measure beside this one")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    measured = trees([args.base] if args.base else [])
    runs = [run(measured, args.quick) for _ in range(1 if args.quick else args.runs)]
    save_results("speed", measured, runs, table(median_results(runs), list(measured)))


if __name__ == "__main__":
    main()
