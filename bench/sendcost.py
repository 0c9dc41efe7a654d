"""What one ``send`` of a small frame to a loopback TCP socket costs: ``python -m bench.sendcost``.

The floor under every fan-out: the bridge writes each update to each
browser with one ``send``. Here plain Python (no gevent) writes a 50-byte
WebSocket frame to each of 10 connected sockets, 600 rounds 5 ms apart,
while the reading end is in another process that either waits in
``epoll`` and reads (so each ``send`` may have to wake it) or sleeps and
never reads. Prints the median microseconds per ``send`` of each, over
``--runs`` runs taking turns.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import statistics
import time

SOCKETS = 10
ROUNDS = 600
FRAME = b"\x81\x30" + b"x" * 48  # a server-to-browser text frame of 48 bytes


def _reader(port: int, reading: bool, seconds: float) -> None:
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(SOCKETS)]
    if not reading:
        time.sleep(seconds)
        return
    selector = selectors.EpollSelector()
    for conn in conns:
        conn.setblocking(False)
        selector.register(conn, selectors.EVENT_READ)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in selector.select(0.5):
            try:
                key.fileobj.recv(65536)  # type: ignore[union-attr]
            except BlockingIOError:
                pass


def one_run(reading: bool) -> float:
    """Median microseconds per ``send`` over :data:`ROUNDS` rounds."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(SOCKETS)
    seconds = ROUNDS * 0.006 + 2
    pid = os.fork()
    if pid == 0:
        try:
            _reader(listener.getsockname()[1], reading, seconds)
        finally:
            os._exit(0)
    socks = [listener.accept()[0] for _ in range(SOCKETS)]
    try:
        for sock in socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the bridge's sockets
        per_send = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            for sock in socks:
                sock.send(FRAME)
            per_send.append((time.perf_counter() - start) / SOCKETS * 1e6)
            time.sleep(0.005)
        return statistics.median(per_send)
    finally:
        for sock in socks:
            sock.close()
        listener.close()
        os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sendcost")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"reader waiting in epoll": [], "reader asleep": []}
    for _ in range(args.runs):
        results["reader waiting in epoll"].append(one_run(True))
        results["reader asleep"].append(one_run(False))
    for name, runs in results.items():
        print(f"{name}: median {statistics.median(runs):.1f} us per send (runs {', '.join(f'{r:.1f}' for r in runs)})")


if __name__ == "__main__":
    main()
