"""Redis and nginx as child processes on loopback, for the try-out, the tests and the bench.

Each service runs in the foreground (no daemon) and is stopped by its own
PID. Redis keeps its data with AOF, fsynced every second, exactly as the
docs (docs/cluster.md) ask of a show; nginx runs the shipped ``config/nginx-cluster.conf``
with only its ports changed.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX_TEMPLATE = ROOT / "config" / "nginx-cluster.conf"
_UPSTREAM_SERVER = re.compile(r"^([ \t]*server[ \t]+)\S+:\d+([^;{\n]*;)[ \t]*\n", re.MULTILINE)


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 uses right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def executable(name: str) -> str | None:
    """Where ``name`` is, also in /usr/sbin (nginx), which a plain user's PATH may lack."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def _wait(ready: object, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout:.0f} s:\n{log.read_text(errors='replace')}")
        time.sleep(0.02)


class Service:
    """A child process with its log in ``folder``, stopped by its PID."""

    name = "service"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = folder / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> Service:
        command = self.command()
        found = executable(command[0])
        if found is None:
            raise RuntimeError(f"{command[0]} is not installed (apt-get install redis-server nginx)")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([found, *command[1:]], cwd=self.folder, stdout=log, stderr=subprocess.STDOUT)
        _wait(self.ready, self.proc, self.name, self.log_path)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)


class RedisServer(Service):
    """redis-server on 127.0.0.1, AOF on and fsynced every second, no RDB snapshots."""

    name = "redis"

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.folder),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
        ]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                # A Redis still loading its AOF answers -LOADING.
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


def render_nginx(listen: str, backends: list[int], template: Path = NGINX_TEMPLATE) -> str:
    """The shipped nginx config with its listen address and upstream servers replaced."""
    text = template.read_text(encoding="utf-8")
    found = _UPSTREAM_SERVER.findall(text)
    if not found or "listen 8080;" not in text:
        raise RuntimeError(f"{template}: expected 'listen 8080;' and upstream 'server host:port ...;' lines")
    params = found[0][1]
    lines = "".join(f"{found[0][0]}127.0.0.1:{port}{params}\n" for port in backends)
    first = _UPSTREAM_SERVER.search(text)
    assert first is not None  # noqa: S101 - found above
    text = text[: first.start()] + lines + _UPSTREAM_SERVER.sub("", text[first.start() :])
    return text.replace("listen 8080;", f"listen {listen};")


class Nginx(Service):
    """nginx in the foreground with the rendered config, its pid, logs and temp files in ``folder``."""

    name = "nginx"

    def __init__(self, folder: Path, backends: list[int], port: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(folder, port)
        self.config = folder / "nginx.conf"
        self.config.write_text(render_nginx(f"{host}:{self.port}", backends), encoding="utf-8")
        self.url = f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        folder = str(self.folder)
        return ["nginx", "-p", folder + "/", "-e", "error.log", "-c", str(self.config), "-g", "daemon off;"]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False
