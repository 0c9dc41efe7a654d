"""Live config: how long from a save to every page holding the new surface.

``python -m bench.reload_bench [--clients 50] [--saves 10]`` runs a bridge with
32 faders, connects the clients (cheap async Socket.IO clients in one loop),
and measures, per save:

- **save -> last layout**: the file written (a new file renamed over the old
  one, as editors do) until the last client has its ``layout`` event: the
  watcher's look every 0.25 s and its 0.1 s settle are in it, which is what
  a user waits for;
- **POST -> last layout**: ``POST /api/config/reload`` after an edit the
  watcher cannot see (same size and time), until the last client has its
  layout: reading, checking and applying the file, rendering the surface
  and sending it, without the watcher's wait;
- **PATCH -> last layout**: the editor's ``PATCH /api/config/controls/<id>``
  (a label), until the last client has its layout: the change made to the
  text, checked, written with its backup, and applied.

Prints medians and maxima in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import urllib.request
from typing import Any

import socketio

from bench.common import Server

FADERS = "".join(
    f'\n[[controls]]\nid = "ch{n:02}"\ntype = "range"\nlabel = "Ch {n:02}"\nmax = 100\ngroup = "Band"\n'
    for n in range(1, 33)
)


async def connect(url: str, n: int) -> tuple[list[socketio.AsyncClient], list[dict[int, float]]]:
    clients, seen = [], []
    for _ in range(n):
        sio = socketio.AsyncClient(reconnection=False)
        arrivals: dict[int, float] = {}

        def on_layout(msg: dict[str, Any], arrivals: dict[int, float] = arrivals) -> None:
            arrivals.setdefault(msg["generation"], time.perf_counter())

        sio.on("layout", on_layout)
        await sio.connect(url, transports=["websocket"], wait_timeout=10)
        clients.append(sio)
        seen.append(arrivals)
    return clients, seen


async def last_arrival(seen: list[dict[int, float]], generation: int, timeout: float = 10.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if all(generation in s for s in seen):
            return max(s[generation] for s in seen)
        await asyncio.sleep(0.001)
    raise TimeoutError(f"not every client got layout {generation}")


async def run(clients_n: int, saves: int) -> dict[str, list[float]]:
    with Server(controls=FADERS) as server:
        path = server.config
        clients, seen = await connect(server.url, clients_n)
        by_save: list[float] = []
        by_post: list[float] = []
        by_patch: list[float] = []
        generation = 1
        try:
            for i in range(saves):
                text = path.read_text(encoding="utf-8")
                new = text.replace("Ch 01", "Xx 01") if i % 2 == 0 else text.replace("Xx 01", "Ch 01")
                fresh = path.with_name(path.name + ".new")
                fresh.write_text(new, encoding="utf-8")
                fresh.replace(path)
                start = time.perf_counter()
                generation += 1
                by_save.append(await last_arrival(seen, generation) - start)

                # Same size and time: only the POST reloads it.
                stat = path.stat()
                text = path.read_text(encoding="utf-8")
                new = text.replace("Ch 02", "Yy 02") if i % 2 == 0 else text.replace("Yy 02", "Ch 02")
                with path.open("w", encoding="utf-8") as fh:
                    fh.write(new)
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
                request = urllib.request.Request(server.url + "/api/config/reload", data=b"", method="POST")
                start = time.perf_counter()
                await asyncio.to_thread(lambda r=request: urllib.request.urlopen(r, timeout=10).read())
                generation += 1
                by_post.append(await last_arrival(seen, generation) - start)

                version = json.loads(urllib.request.urlopen(server.url + "/api/config", timeout=10).read())["version"]
                body = json.dumps({"label": f"Edit {i}"}).encode()
                headers = {"Content-Type": "application/json", "If-Match": version}
                request = urllib.request.Request(
                    server.url + "/api/config/controls/ch03", data=body, method="PATCH", headers=headers
                )
                start = time.perf_counter()
                await asyncio.to_thread(lambda r=request: urllib.request.urlopen(r, timeout=10).read())
                generation += 1
                by_patch.append(await last_arrival(seen, generation) - start)
        finally:
            await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    return {"save": by_save, "post": by_post, "patch": by_patch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--saves", type=int, default=10)
    args = parser.parse_args()
    found = asyncio.run(run(args.clients, args.saves))
    rows = (("save", "save -> last layout"), ("post", "POST -> last layout"), ("patch", "PATCH -> last layout"))
    for name, label in rows:
        ms = [s * 1000 for s in found[name]]
        print(  # noqa: T201
            f"{label:22} clients={args.clients} n={len(ms)} median={statistics.median(ms):.1f} ms max={max(ms):.1f} ms"
        )


if __name__ == "__main__":
    main()
