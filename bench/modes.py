"""Threading against gevent, with every adapter of the bridge in place: ``python -m bench.modes``.

One run of the fan-out (10, 50, 100 clients at 200 changes/s), the 5,000-change
flood and the 16-fader sweep, for ``python -m bridge`` (threading, the pinned
mode) and ``python -m bench.gevent_bridge`` (the same bridge monkey-patched).
"""

from __future__ import annotations

import asyncio
import json

from bench.common import Server
from bench.suite import SWEEP_CONTROLS, fanout, flood_socket, sweep16


async def main() -> None:
    out = {}
    for name, module in (("threading", "bridge"), ("gevent", "bench.gevent_bridge")):
        with Server("", module=module) as s:
            for n in (10, 50, 100):
                r = await fanout(s, n, 200, 3.0, n * 5000)
                out[f"{name} fanout N={n}"] = {k: r[k] for k in ("p50_ms", "p99_ms", "delivered", "server_cpu_s")}
            r = await flood_socket(s, 10, 5000, 900_000)
            out[f"{name} flood 5000"] = {k: r[k] for k in ("settled_ms", "server_cpu_s")}
        with Server("", SWEEP_CONTROLS, module=module) as s:
            r = await sweep16(s, 10, 500, 1)
            out[f"{name} sweep16"] = {k: r[k] for k in ("settled_ms", "faders_on_last", "server_cpu_s")}
    for k, v in out.items():
        print(k, json.dumps(v))


if __name__ == "__main__":
    asyncio.run(main())
