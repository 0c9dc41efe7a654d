"""Mapping: what a curve adds to an OSC message going out, against a fader with none, in one run.

``python -m bench.mapping_bench`` times ``bridge.osc.codec.encode`` for a
plain fader and for the X32 monitor example's fader law (a breakpoint
table, with the desk's 0-1 range), and the curve alone both ways. Medians
of 5 runs of 100,000 calls each, in microseconds per call.
"""

from __future__ import annotations

import statistics
import timeit
from collections.abc import Callable
from pathlib import Path

from bridge.config import load_config
from bridge.mapping import from_wire, to_wire
from bridge.osc.codec import encode

ROOT = Path(__file__).resolve().parent.parent
CALLS = 100_000


def per_call(fn: Callable[[], object]) -> float:
    return statistics.median(timeit.repeat(fn, number=CALLS, repeat=5)) / CALLS * 1e6


def main() -> None:
    plain = next(c for c in load_config(ROOT / "config" / "default.toml").controls if c.type == "range")
    x32 = load_config(ROOT / "config" / "examples" / "x32-monitor.toml")
    law = next(c for c in x32.controls if c.osc_scale is not None and c.osc_scale.curve == "table")
    scale = law.osc_scale
    assert scale is not None and plain.osc_scale is None
    base = per_call(lambda: encode(plain.osc, plain, 40.0))
    mapped = per_call(lambda: encode(law.osc, law, -12.5))
    out = per_call(lambda: to_wire(scale, law.min, law.max, -12.5))
    back = per_call(lambda: from_wire(scale, law.min, law.max, 0.62))
    print(f"encode, plain fader:   {base:.2f} us")  # noqa: T201
    print(f"encode, X32 fader law: {mapped:.2f} us ({mapped / base:.2f}x)")  # noqa: T201
    print(f"the law alone: to the wire {out:.2f} us, from the wire {back:.2f} us")  # noqa: T201


if __name__ == "__main__":
    main()
