"""What a Python MIDI callback costs the JACK process thread: ``python -m bench.jack_gil [--runs 3]``.

python-rtmidi calls an input's callback on the thread that received the
message; with JACK that is the JACK process thread, which runs the graph
once a period (64 frames at 48 kHz: 1.33 ms) and must never wait. A
Python callback must first take the GIL. This bench opens a JACK input
with a callback that does what the bridge's did (append to a deque), sends
it 3 bursts of 1,000 CCs from another process, and stamps each call. With
the main thread idle, one call follows the other within microseconds; with
the main thread running Python (as the bridge's event loop does while it
fans a change out), each wait lasts until the interpreter makes the busy
thread let go: the switch interval, 5 ms. Those stamps show the gaps: the
JACK thread stood still for that long, inside its process callback.

This is why the bridge reads a JACK input from rtmidi's queue instead
(``bridge/midi/system.py``): rtmidi queues in C++ on the JACK thread, and
no Python runs there. The same bursts through that queue are counted too.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import rtmidi

from tests.jack import jack_available, running_jack

BURSTS = 3
PER_BURST = 1000
#: Gaps longer than this between two calls in a burst mean the JACK thread stood still.
STALL = 0.001

SENDER = f"""
import sys, time, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name="jack-gil sender")
names = out.get_ports()
out.open_port(next(i for i, n in enumerate(names) if sys.argv[1] in n))
print("ready", flush=True)
sys.stdin.readline()
for _ in range({BURSTS}):
    for i in range({PER_BURST}):
        out.send_message([0xB0, 7, i % 128])
    time.sleep(0.3)
out.close_port()
"""


def one(busy: bool, callback: bool) -> dict[str, float]:
    """One run: 3 bursts into an input read by a callback or from rtmidi's queue, the main thread busy or not."""
    port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="jack-gil receiver", queue_size_limit=8192)
    port.open_virtual_port("in")
    stamps: list[float] = []
    arrived: deque[list[int]] = deque()
    if callback:

        def on_message(event: tuple[list[int], float], data: object = None) -> None:
            stamps.append(time.perf_counter())
            arrived.append(event[0])

        port.set_callback(on_message)
    sender = subprocess.Popen(
        [sys.executable, "-c", SENDER, "jack-gil receiver:in"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert sender.stdout is not None and sender.stdin is not None
        if sender.stdout.readline().strip() != "ready":
            raise RuntimeError("the sender did not start")
        sender.stdin.write("go\n")
        sender.stdin.flush()
        total = BURSTS * PER_BURST
        deadline = time.monotonic() + 10
        received = 0
        while received < total and time.monotonic() < deadline:
            if not callback:
                while port.get_message() is not None:
                    received += 1
            else:
                received = len(arrived)
            if busy:
                sum(range(20_000))  # Python work, as a fan-out is; the GIL is let go only when forced
            else:
                time.sleep(0.001)
        sender.wait(timeout=10)
    finally:
        if callback:
            port.cancel_callback()
        port.close_port()
        port.delete()
    result: dict[str, float] = {"received": received}
    if callback and len(stamps) > 1:
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))[: -(BURSTS - 1)]  # not the pauses
        result["max_gap_ms"] = gaps[-1] * 1000
        result["stalls"] = sum(g > STALL for g in gaps)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jack_gil")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    reason = jack_available()
    if reason is not None:
        raise SystemExit(f"jack_gil: {reason}")
    with tempfile.TemporaryDirectory(prefix="jack-gil-") as folder, running_jack(Path(folder)):
        interval = sys.getswitchinterval() * 1000
        print(f"switch interval {interval:g} ms; {BURSTS} bursts of {PER_BURST} CC; medians of {args.runs}")
        print("| input read by | main thread | received | longest gap in a burst | gaps over 1 ms |")
        print("|---|---|---|---|---|")
        for callback in (True, False):
            for busy in (False, True):
                runs = [one(busy, callback) for _ in range(args.runs)]
                received = statistics.median(r["received"] for r in runs)
                how = "a Python callback (JACK thread)" if callback else "rtmidi's queue (polled)"
                if callback:
                    gap = f"{statistics.median(r['max_gap_ms'] for r in runs):.2f} ms"
                    stalls = f"{statistics.median(r['stalls'] for r in runs):g}"
                else:
                    gap = stalls = "no Python on the JACK thread"
                main_thread = "running Python" if busy else "idle"
                print(f"| {how} | {main_thread} | {received:g} of {BURSTS * PER_BURST} | {gap} | {stalls} |")


if __name__ == "__main__":
    main()
