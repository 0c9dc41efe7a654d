"""What the echo memory costs the OSC fan-out: ``python -m bench.echoes [--runs 5]``.

Every message the bridge sends is remembered for a moment, so that the
same message coming straight back is known as an echo (``bridge/echoes.py``).
That is one more step per target per change, on the hot path. This bench
runs the real OSC adapter in process with 10 UDP targets on loopback (the
sockets are real, nobody reads them) and hands it 20,000 changes of a
fader, each a new value, taking turns between the adapter as it is and the
same adapter with a memory that remembers nothing. It prints the median
microseconds per change of each over ``--runs`` runs, and the ratio; then
what one ``sent`` and one ``back`` cost alone.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from collections.abc import Hashable, Iterable
from pathlib import Path

from bridge.config import load_config
from bridge.echoes import Echoes
from bridge.hub import Hub
from bridge.model import Change, Origin
from bridge.osc.adapter import OscAdapter

TARGETS = 10
CHANGES = 20_000

CONFIG = """[server]
state_file = ""
[osc]
listen = "127.0.0.1:0"
targets = [{targets}]
[[controls]]
id = "fader"
type = "range"
max = 1
osc = "/fader"
"""


class Forgetful(Echoes):
    """A memory that remembers nothing: the fan-out as it was without one."""

    def sent_all(self, sendings: Iterable[tuple[Hashable, Hashable, bool]], now: float) -> None:
        return None


def one_run(adapter: OscAdapter, memory: Echoes) -> float:
    """Microseconds per change handed to the adapter."""
    adapter.echoes = memory
    control = adapter.hub.controls["fader"]
    origin = Origin("web", "bench")
    changes = [Change(control, i / CHANGES, origin) for i in range(CHANGES)]
    started = time.perf_counter()
    for change in changes:
        adapter.send(change)
    return (time.perf_counter() - started) / CHANGES * 1e6


def alone(runs: int) -> tuple[float, float]:
    """Microseconds per ``sent`` and per ``back`` of 100,000 distinct messages, medians."""
    sent, back = [], []
    for _ in range(runs):
        memory = Echoes()
        messages = [b"/fader\x00\x00,f\x00\x00" + i.to_bytes(4, "big") for i in range(100_000)]
        now = time.monotonic()
        started = time.perf_counter()
        for message in messages:
            memory.sent("127.0.0.1", message, now)
        middle = time.perf_counter()
        for message in messages:
            memory.back("127.0.0.1", message, now)
        ended = time.perf_counter()
        sent.append((middle - started) / len(messages) * 1e6)
        back.append((ended - middle) / len(messages) * 1e6)
    return statistics.median(sent), statistics.median(back)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sinks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(TARGETS)]
    for sink in sinks:
        sink.bind(("127.0.0.1", 0))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    targets = ", ".join(f'"127.0.0.1:{s.getsockname()[1]}"' for s in sinks)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.toml"
        path.write_text(CONFIG.format(targets=targets), encoding="utf-8")
        config = load_config(path)
    assert config.osc is not None
    adapter = OscAdapter(Hub(config.controls), config.osc)
    adapter.start()
    try:
        remembering, forgetting = [], []
        for _ in range(args.runs):  # taking turns, so that the machine's moods fall on both
            remembering.append(one_run(adapter, Echoes()))
            forgetting.append(one_run(adapter, Forgetful()))
    finally:
        adapter.stop()
        for sink in sinks:
            sink.close()
    with_memory, without = statistics.median(remembering), statistics.median(forgetting)
    print(f"OSC fan-out to {TARGETS} UDP targets, {CHANGES:,} changes, medians of {args.runs} runs:")
    print(f"  with the echo memory:    {with_memory:6.1f} us per change")
    print(f"  without (remembers nothing): {without:6.1f} us per change")
    print(f"  ratio: {with_memory / without:.2f}")
    sent, back = alone(args.runs)
    print(f"  one sent(): {sent:.2f} us, one back(): {back:.2f} us (100,000 distinct messages)")


if __name__ == "__main__":
    main()
