"""``python -m cluster.run`` (``make cluster``): Redis, nginx and three bridge processes, for a try-out.

Everything runs on this machine: Redis (AOF, fsync every second) and the
bridges on loopback, nginx on ``--host``/``--port`` (127.0.0.1:8080 by
default). The first process keeps the config's ``[osc]`` and ``[midi]``
tables, the hardware side; the others run without them. Their configs, logs
and Redis's data go to a fresh temporary folder, printed at start. Ctrl-C
(or one of them dying) stops every child, each by its PID.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import FrameType

from bridge.config import load_config
from bridge.errors import ConfigError
from cluster.services import ROOT, Nginx, RedisServer, Service, free_port

_TABLE = re.compile(r"^\s*\[")
_HARDWARE_TABLE = re.compile(r"^\s*\[(osc|midi)\]\s*(#.*)?$")
_REDIS_LINE = re.compile(r"^redis\s*=.*$", re.MULTILINE)


def member_text(base: str, redis_url: str, hardware: bool) -> str:
    """The base config for one process: its Redis URL, and ``[osc]``/``[midi]`` only on the hardware one."""
    if _REDIS_LINE.search(base) is None:
        raise SystemExit("error: the config needs a [cluster] table with redis = ...")
    text = _REDIS_LINE.sub(f'redis = "{redis_url}"', base, count=1)
    if hardware:
        return text
    kept: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        if _TABLE.match(line):
            skipping = bool(_HARDWARE_TABLE.match(line))
        if not skipping:
            kept.append(line)
    return "".join(kept)


class BridgeChild(Service):
    """``python -m bridge`` on loopback, one process of the cluster."""

    def __init__(self, folder: Path, config: Path, port: int) -> None:
        self.name = f"bridge-{port}"
        super().__init__(folder, port)
        self.config = config

    def command(self) -> list[str]:
        config, port = str(self.config), str(self.port)
        return [sys.executable, "-m", "bridge", "--config", config, "--host", "127.0.0.1", "--port", port]

    def start(self) -> Service:
        with self.log_path.open("ab") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.run", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "cluster.toml"))
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--host", default="127.0.0.1", help="where nginx listens (0.0.0.0: phones on the LAN too)")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="stage-bridge-cluster-"))
    print(f"configs, logs and Redis data in {folder}", flush=True)
    base = Path(args.config).read_text(encoding="utf-8")
    children: list[Service] = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        redis_server = RedisServer(folder / "redis")
        children.append(redis_server.start())
        print(f"  redis  {redis_server.url} (pid {redis_server.proc.pid if redis_server.proc else '?'})", flush=True)
        bridges = []
        for i in range(args.processes):
            config = folder / f"bridge-{i + 1}.toml"
            config.write_text(member_text(base, redis_server.url, hardware=i == 0), encoding="utf-8")
            try:
                load_config(config)
            except ConfigError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            bridge = BridgeChild(folder, config, free_port())
            children.append(bridge.start())
            bridges.append(bridge)
            role = "with the config's [osc]/[midi]" if i == 0 else "web only"
            print(f"  bridge http://127.0.0.1:{bridge.port}/ ({role})", flush=True)
        nginx = Nginx(folder / "nginx", [b.port for b in bridges], port=args.port, host=args.host)
        children.append(nginx.start())
        print(f"\n  open {nginx.url}/   (Ctrl-C stops everything)\n", flush=True)
        while all(child.running for child in children):
            time.sleep(0.5)
        gone = [child.name for child in children if not child.running]
        print(f"{', '.join(gone)} stopped; stopping the rest", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):
            child.stop()


if __name__ == "__main__":
    sys.exit(main())
