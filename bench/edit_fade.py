"""What an editor save costs a fade under way: ``python -m bench.edit_fade [--runs 3] [--base DIR]``.

A lighting or sound fade moves its controls every 10 ms (``STEP_INTERVAL``),
by the clock: a step that comes late lands where the line is by then, so the
fade shows a jump as long as the delay. An edit made from the page's editor
while a fade runs (a label corrected mid-show) is read, changed, checked,
written and applied by the same process; whatever of that holds the server
shows as a gap between two steps.

The bench runs a bridge with 120 faders (as a mixing desk's surface has),
fades one of them from 0 to 1,000,000 over 8 s, and records at a Socket.IO
client when each step arrives. For 2 s nothing else happens (the quiet
gaps); then the editor changes a label every 0.5 s (``PATCH
/api/config/controls/<id>``, as the page's editor does). It prints, per run,
the longest gap between two steps with no edit and around each edit (the
median over the edits), in milliseconds; then the medians over the runs.
With ``--base DIR`` (another tree of the bridge) the two take turns.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import socketio

from bench.common import ROOT, Server

FADERS = "".join(
    f'\n[[controls]]\nid = "ch{n:03}"\ntype = "range"\nlabel = "Ch {n:03}"\nmax = 1000000\nstep = 1\n'
    f'group = "Bank {1 + (n - 1) // 24}"\n'
    for n in range(1, 121)
)
FADE = 8.0
QUIET = 2.0
EDITS = 8
EVERY = 0.5


def request(url: str, method: str, body: object = None, headers: dict[str, str] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    wanted = {"Content-Type": "application/json", **(headers or {})}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=wanted), timeout=10) as r:
        return json.loads(r.read() or b"null")


def one_run(root: Path) -> tuple[float, float]:
    """The longest gap between two fade steps (ms) with no edit, and the median over the edits of
    the longest gap around each."""
    with Server(controls=FADERS, root=root) as server:
        arrivals: list[float] = []
        done = threading.Event()
        sio = socketio.Client(reconnection=False)

        @sio.on("update value")
        def on_update(message: dict[str, Any]) -> None:
            if message.get("who") == "ch001":
                arrivals.append(time.perf_counter())
                if message.get("data") == 1_000_000:
                    done.set()

        sio.connect(server.url, transports=["websocket"], wait_timeout=10)
        try:
            request(server.url + "/api/values/ch001", "PUT", {"value": 1_000_000})
            request(server.url + "/api/scenes/Up", "PUT")
            request(server.url + "/api/values/ch001", "PUT", {"value": 0})
            arrivals.clear()
            done.clear()
            started = time.perf_counter()
            request(server.url + "/api/scenes/Up/recall", "POST", {"fade": FADE})
            time.sleep(QUIET)
            edits: list[tuple[float, float]] = []
            for i in range(EDITS):
                version = request(server.url + "/api/config", "GET")["version"]
                before = time.perf_counter()
                request(
                    server.url + "/api/config/controls/ch060",
                    "PATCH",
                    {"label": f"Edit {i}"},
                    {"If-Match": version},
                )
                edits.append((before, time.perf_counter()))
                time.sleep(EVERY)
            if not done.wait(FADE + 10):
                raise RuntimeError("the fade did not end")
        finally:
            sio.disconnect()
    gaps = [(b, b - a) for a, b in itertools.pairwise(arrivals)]
    quiet = max(gap for at, gap in gaps if started + 0.2 < at < started + QUIET)
    around = [max((gap for at, gap in gaps if sent <= at <= answered + 0.05), default=0.0) for sent, answered in edits]
    return quiet * 1000, statistics.median(around) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base", type=Path, help="another tree of the bridge, measured in turns with this one")
    args = parser.parse_args()
    trees = [("this tree", ROOT)] + ([("base", args.base.resolve())] if args.base else [])
    found: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in trees}
    for run in range(args.runs):
        for name, root in trees:
            quiet, edit = one_run(root)
            found[name].append((quiet, edit))
            print(f"run {run + 1} {name:9} longest gap: quiet {quiet:6.1f} ms, around an edit {edit:6.1f} ms")  # noqa: T201
    for name, rows in found.items():
        quiet = statistics.median(q for q, _ in rows)
        edit = statistics.median(e for _, e in rows)
        print(f"median    {name:9} longest gap: quiet {quiet:6.1f} ms, around an edit {edit:6.1f} ms")  # noqa: T201


if __name__ == "__main__":
    main()
