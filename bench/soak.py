"""Soak: a whole show's worth of traffic on one bridge, then what it left behind.

``python -m bench.soak [--minutes 10]`` (``make soak MINUTES=30``) runs, on
one bridge process with OSC, MIDI over a JACK dummy server, and scenes:

* 200 Socket.IO clients, a quarter of them leaving and as many new ones
  joining every 15 s (waves of phones);
* 200 changes a second from those browsers, spread over them;
* OSC in (50 messages a second over UDP) and OSC out to a UDP target of ours;
* MIDI in (50 CCs a second from a JACK port of ours) and MIDI out to it;
* a scene saved and another recalled with a 3 s fade every 20 s.

Every 5 s it samples the server's resident memory, open descriptors, OS
threads and greenlets (``/healthz?runtime=1``). At the end it sets every
control to a final value over HTTP and waits until every client shows it,
then disconnects them all and waits for the descriptors to come back.

Pass rule (printed with the figures; exit code 0 or 1): resident memory,
and the anonymous part of it (RSS also counts shared pages: libjack's
shared memory is most of it), at the end of the load within 5 % of the
first minute's (after warm-up);
descriptors and live greenlets (within 10), once every client left, back
to where they were before the first one joined; every client on the final
values; no traceback or error in the bridge's log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import Server, osc
from tests.helpers import free_port
from tests.jack import BACKEND, JackServer, MidiPeer, jack_available, unique_name

CLIENTS = 200
WAVE = 50
WAVE_PERIOD = 15.0
BROWSER_RATE = 200
OSC_RATE = 50
MIDI_RATE = 50
SCENE_PERIOD = 20.0
SAMPLE_PERIOD = 5.0
WARM_UP = 60.0
#: Resident memory may grow this much (a fraction) after warm-up.
RSS_GROWTH_LIMIT = 0.05
FADERS = 16

CONTROLS = "".join(
    f'[[controls]]\nid = "f{n}"\ntype = "range"\nmin = 0\nmax = 127\nstep = 1\nvalue = 0\n'
    f'takeover = "jump"\nmidi = {{ channel = 1, cc = {n} }}\n\n'
    for n in range(1, FADERS + 1)
) + (
    '[[controls]]\nid = "t1"\ntype = "toggle"\nmidi = { channel = 1, note = 60 }\n\n'
    '[[controls]]\nid = "txt"\ntype = "text"\nvalue = ""\n'
)
FADER_IDS = [f"f{n}" for n in range(1, FADERS + 1)]


@dataclass
class Counts:
    """What the load generator sent and received."""

    browser_sent: int = 0
    osc_sent: int = 0
    osc_received: int = 0
    midi_sent: int = 0
    midi_received: int = 0
    joins: int = 0
    leaves: int = 0
    scenes_saved: int = 0
    scenes_recalled: int = 0
    join_failures: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


def http(url: str, method: str = "GET", body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


class OscSink(asyncio.DatagramProtocol):
    """The OSC target: counts what the bridge mirrors out."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.counts.osc_received += 1


class RawClient:
    """A browser as the soak needs it: Socket.IO over one raw WebSocket, answering pings, keeping the last values.

    python-socketio's client costs several times more CPU per message; with
    200 of them taking every change, the load generator, not the bridge,
    would be what falls behind (and the bridge would rightly drop clients
    that answer its pings too late).
    """

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.last: dict[str, Any] = {}
        self.gone = False
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, url: str) -> RawClient:
        ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket", heartbeat=None)
        opened = await ws.receive_str(timeout=30)
        if not opened.startswith("0{"):
            raise RuntimeError(f"not an Engine.IO open packet: {opened[:60]!r}")
        await ws.send_str("40")
        return cls(ws)

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frame = message.data
            if frame == "2":
                await self.ws.send_str("3")
            elif frame.startswith('42["update value"'):
                body = json.loads(frame[2:])[1]
                self.last[body["who"]] = body["data"]
            elif frame.startswith('42["snapshot"'):
                self.last.update(json.loads(frame[2:])[1]["values"])
        self.gone = True

    async def emit(self, who: str, data: object) -> None:
        await self.ws.send_str("42" + json.dumps(["value changed", {"who": who, "data": data}]))

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


class Soak:
    def __init__(self, minutes: float, folder: Path) -> None:
        self.seconds = minutes * 60
        self.folder = folder
        self.counts = Counts()
        self.clients: list[RawClient] = []
        self.http: aiohttp.ClientSession | None = None
        self.stopping = asyncio.Event()
        self.rng = random.Random(19)  # noqa: S311 - load, not secrets

    # -- the load ------------------------------------------------------------------
    async def paced(self, rate: float, step: Any) -> None:
        """Call ``step()`` ``rate`` times a second until stopped, catching up after a slow turn."""
        start = time.monotonic()
        n = 0
        while not self.stopping.is_set():
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await step()
            n += 1

    async def browser_change(self) -> None:
        if not self.clients:
            return
        client = self.rng.choice(self.clients)
        if self.rng.random() < 0.05:
            who, data = "txt", f"line {self.counts.browser_sent}"
        else:
            who, data = self.rng.choice(FADER_IDS), self.rng.randint(0, 127)
        try:
            await client.emit(who, data)
        except Exception:  # noqa: BLE001 - a client caught mid-leave: count nothing
            return
        self.counts.browser_sent += 1

    async def waves(self, url: str) -> None:
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), WAVE_PERIOD)
                return
            except TimeoutError:
                pass
            leaving = self.rng.sample(self.clients, WAVE)
            self.clients = [c for c in self.clients if c not in leaving]
            await asyncio.gather(*(c.close() for c in leaving), return_exceptions=True)
            self.counts.leaves += len(leaving)
            await self.join(url, WAVE)

    async def join(self, url: str, n: int) -> None:
        """Connect ``n`` more clients, ten at a time; one that fails is counted and tried once more."""
        assert self.http is not None
        session = self.http
        for start in range(0, n, 10):
            results = await asyncio.gather(
                *(RawClient.connect(session, url) for _ in range(min(10, n - start))), return_exceptions=True
            )
            for result in results:
                if isinstance(result, BaseException):
                    self.counts.join_failures.append(repr(result))
                    try:
                        result = await RawClient.connect(session, url)
                    except Exception as err:  # noqa: BLE001 - counted, and the run goes on
                        self.counts.join_failures.append(f"again: {err!r}")
                        continue
                self.clients.append(result)
                self.counts.joins += 1

    async def scenes(self, url: str) -> None:
        k = 0
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), SCENE_PERIOD)
                return
            except TimeoutError:
                pass
            await asyncio.to_thread(http, f"{url}/api/scenes/soak-{k % 4}", "PUT", {})
            self.counts.scenes_saved += 1
            if k:
                await asyncio.to_thread(http, f"{url}/api/scenes/soak-{(k - 1) % 4}/recall", "POST", {"fade": 3})
                self.counts.scenes_recalled += 1
            k += 1

    async def sample(self, url: str, started: float) -> None:
        while not self.stopping.is_set():
            body = await asyncio.to_thread(http, f"{url}/healthz?runtime=1")
            self.counts.samples.append({"t": time.monotonic() - started, **body["runtime"]})
            try:
                await asyncio.wait_for(self.stopping.wait(), SAMPLE_PERIOD)
            except TimeoutError:
                pass

    # -- the run -------------------------------------------------------------------
    def run(self) -> int:
        """Start JACK and the bridge, drive them, and stop them whatever happens (Ctrl-C, SIGTERM)."""
        jack = JackServer(self.folder)
        os.environ["JACK_DEFAULT_SERVER"] = jack.name  # this process's MIDI peer, and the bridge's
        osc_in = free_port(socket.SOCK_DGRAM)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        names = {"input": unique_name("soak-in"), "output": unique_name("soak-out")}
        extra = (
            f'[osc]\nlisten = "127.0.0.1:{osc_in}"\ntargets = ["127.0.0.1:{sink.getsockname()[1]}"]\n'
            f'[midi]\nbackend = "{BACKEND}"\ninput = "{names["input"]}"\noutput = "{names["output"]}"\n'
            "virtual = true\n"
        )
        jack.start()
        try:
            with Server(extra=extra, controls=CONTROLS, env={"JACK_DEFAULT_SERVER": jack.name}) as server:
                peer = MidiPeer()
                try:
                    peer.connect(names["input"], names["output"])
                    return asyncio.run(self.session(server, peer, osc_in, sink))
                finally:
                    peer.close()
        finally:
            sink.close()
            jack.stop()

    async def session(self, server: Server, peer: MidiPeer, osc_in: int, sink: socket.socket) -> int:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: OscSink(self.counts), sock=sink)
        # No limit on connections: aiohttp pools 100 by default, and the 101st client would wait forever.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            self.http = session
            return await self.drive(server, peer, osc_in)

    async def drive(self, server: Server, peer: MidiPeer, osc_in: int) -> int:
        url = server.url
        idle = http(f"{url}/healthz?runtime=1")["runtime"]
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.setblocking(False)
        await self.join(url, CLIENTS)

        async def osc_step() -> None:
            who = self.rng.choice(FADER_IDS)
            udp.sendto(osc(f"/{who}", self.rng.randint(0, 127)), ("127.0.0.1", osc_in))
            self.counts.osc_sent += 1

        async def midi_step() -> None:
            import mido

            peer.send(mido.Message("control_change", channel=0, control=self.rng.randint(1, FADERS), value=64))
            self.counts.midi_sent += 1

        async def midi_drain() -> None:
            while not self.stopping.is_set():
                while peer.input.get_message() is not None:
                    self.counts.midi_received += 1
                await asyncio.sleep(0.01)

        started = time.monotonic()
        tasks = [
            asyncio.create_task(self.paced(BROWSER_RATE, self.browser_change)),
            asyncio.create_task(self.paced(OSC_RATE, osc_step)),
            asyncio.create_task(self.paced(MIDI_RATE, midi_step)),
            asyncio.create_task(midi_drain()),
            asyncio.create_task(self.waves(url)),
            asyncio.create_task(self.scenes(url)),
            asyncio.create_task(self.sample(url, started)),
        ]
        last_report = started
        while time.monotonic() - started < self.seconds:
            await asyncio.sleep(1)
            if time.monotonic() - last_report >= 60:
                last_report = time.monotonic()
                s = self.counts.samples[-1]
                print(
                    f"  {int((last_report - started) / 60)} min: rss {s['rss_kb'] / 1024:.1f} MB "
                    f"(anonymous {s['anon_kb'] / 1024:.1f}), fds {s['fds']}, "
                    f"threads {s['threads']}, greenlets {s.get('greenlets')}, clients {len(self.clients)}",
                    flush=True,
                )
        self.stopping.set()
        await asyncio.gather(*tasks)
        udp.close()
        end = http(f"{url}/healthz?runtime=1")
        return await self.verdict(server, idle, end)

    async def verdict(self, server: Server, idle: dict[str, int], end: dict[str, Any]) -> int:
        url = server.url
        # Final values over HTTP (after any fade still running has ended: a recall's fade is 3 s).
        await asyncio.sleep(3.5)
        finals = {cid: (i * 7) % 128 for i, cid in enumerate(FADER_IDS)} | {"t1": 1, "txt": "the end"}
        for cid, value in finals.items():
            await asyncio.to_thread(http, f"{url}/api/values/{cid}", "PUT", {"value": value})
        deadline = time.monotonic() + 30
        dropped = [c for c in self.clients if c.gone]
        lagging = self.clients
        while time.monotonic() < deadline:
            lagging = [c for c in self.clients if any(c.last.get(k) != v for k, v in finals.items())]
            if not lagging:
                break
            await asyncio.sleep(0.1)
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        # The server closes its side within a ping or two; the descriptors follow.
        deadline = time.monotonic() + 60
        after = http(f"{url}/healthz?runtime=1")
        while time.monotonic() < deadline:
            after = http(f"{url}/healthz?runtime=1")
            back = after["runtime"]["fds"] <= idle["fds"] and after["runtime"]["greenlets"] <= idle["greenlets"] + 10
            if after["adapters"]["web"]["clients"] == 0 and back:
                break
            await asyncio.sleep(0.5)
        log = (server.folder / "bridge.log").read_text(encoding="utf-8", errors="replace")
        problems = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
        warm = next((s for s in self.counts.samples if s["t"] >= WARM_UP), self.counts.samples[0])
        last = end["runtime"]
        growth = (last["rss_kb"] - warm["rss_kb"]) / warm["rss_kb"]
        anon_growth = (last["anon_kb"] - warm["anon_kb"]) / warm["anon_kb"]
        web, osc_health = after["adapters"]["web"], after["adapters"]["osc"]
        figures = {
            "minutes": round(self.seconds / 60, 2),
            "rss_mb": {"idle": idle["rss_kb"] / 1024, "at_1_min": warm["rss_kb"] / 1024, "end": last["rss_kb"] / 1024},
            "rss_growth_pct": round(100 * growth, 2),
            "anon_mb": {
                "idle": idle["anon_kb"] / 1024,
                "at_1_min": warm["anon_kb"] / 1024,
                "end": last["anon_kb"] / 1024,
            },
            "anon_growth_pct": round(100 * anon_growth, 2),
            "fds": {
                "idle": idle["fds"],
                "at_1_min": warm["fds"],
                "end_of_load": last["fds"],
                "after": after["runtime"]["fds"],
            },
            "threads": {
                "idle": idle["threads"],
                "at_1_min": warm["threads"],
                "end": last["threads"],
                "after": after["runtime"]["threads"],
            },
            "greenlets": {
                "idle": idle.get("greenlets"),
                "at_1_min": warm.get("greenlets"),
                "end": last.get("greenlets"),
                "after": after["runtime"].get("greenlets"),
            },
            "sent": {"browser": self.counts.browser_sent, "osc": self.counts.osc_sent, "midi": self.counts.midi_sent},
            "received": {"osc": self.counts.osc_received, "midi": self.counts.midi_received},
            "server": {
                "web_received": web["received"],
                "web_rejected": web["rejected"],
                "throttled": web["throttled"],
                "osc_received": osc_health["received"],
                "osc_dropped": osc_health["dropped"],
            },
            "clients": {
                "joins": self.counts.joins,
                "leaves": self.counts.leaves,
                "dropped_by_server": len(dropped),
                "lagging_at_end": len(lagging),
                "join_failures": len(self.counts.join_failures),
                "join_failure_reasons": sorted(set(self.counts.join_failures))[:5],
            },
            "scenes": {"saved": self.counts.scenes_saved, "recalled": self.counts.scenes_recalled},
            "log_problems": problems[:5],
        }
        checks = {
            f"RSS growth after warm-up under {RSS_GROWTH_LIMIT:.0%}": growth < RSS_GROWTH_LIMIT,
            f"anonymous memory growth after warm-up under {RSS_GROWTH_LIMIT:.0%}": anon_growth < RSS_GROWTH_LIMIT,
            "descriptors back to the idle baseline": after["runtime"]["fds"] <= idle["fds"],
            "greenlets back to the idle baseline (within 10)": after["runtime"]["greenlets"] <= idle["greenlets"] + 10,
            "every client on the final values": not lagging,
            "no traceback or error in the log": not problems,
            "every OSC datagram received by the server": osc_health["received"] == self.counts.osc_sent,
        }
        print(json.dumps(figures, indent=1))
        print("pass rule: RSS and anonymous memory growth < 5 % after the first minute;")
        print("           descriptors and greenlets back to the baseline;")
        print("           every client on the final values; no traceback or error in the log")
        for name, ok in checks.items():
            print(f"  {'PASS' if ok else 'FAIL'}  {name}")
        passed = all(checks.values())
        print("soak:", "PASS" if passed else "FAIL")
        return 0 if passed else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    # SIGTERM (a timeout, a CI stop) unwinds like Ctrl-C: the bridge and the JACK server are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    reason = jack_available()
    if reason is not None:
        raise SystemExit(f"soak: {reason}")
    folder = Path(tempfile.mkdtemp(prefix="soak-"))
    print(f"soak: {args.minutes:g} minutes, {CLIENTS} clients in waves of {WAVE}, {BROWSER_RATE} changes/s", flush=True)
    sys.exit(Soak(args.minutes, folder).run())


if __name__ == "__main__":
    main()
