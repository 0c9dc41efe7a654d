"""``python -m bridge --config FILE [--host H] [--port P]``: start the bridge.

Also installed as the ``stage-bridge`` command (:mod:`bridge.command`), with
``--check FILE`` (read a config, say whether it is fine, start nothing) and
``--version``.
"""

from __future__ import annotations

# First of all, when run as a program: gevent patches the standard library
# before anything imports it. Importing this module (a test does) patches nothing.
if __name__ == "__main__":
    from bridge.concurrency import patch

    patch()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from bridge.app import Bridge  # noqa: E402
from bridge.config import DEFAULT_CONFIG, Config, load_config  # noqa: E402
from bridge.errors import BridgeError, ConfigError  # noqa: E402
from bridge.net import lan_address, urls  # noqa: E402
from bridge.serve import HttpServer  # noqa: E402
from bridge.tls import prepare as prepare_tls  # noqa: E402

log = logging.getLogger("bridge")

EXIT_CONFIG = 2
EXIT_START = 1


def parse_args(argv: list[str] | None = None, prog: str = "python -m bridge") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description="Stage Bridge: browser controls bridged to OSC and MIDI.")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="TOML config file (default: %(default)s)")
    parser.add_argument("--host", help="interface to serve on (overrides [server] host)")
    parser.add_argument("--port", type=int, help="HTTP port (overrides [server] port)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--check", metavar="FILE", help="read FILE as a config and exit: 0 when it is fine, 2 with the error"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return parser.parse_args(argv)


def version() -> str:
    """The installed package's version (the source's when run from a checkout that is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("stage-bridge")
    except PackageNotFoundError:
        from bridge import __version__

        return __version__


def check(path: str) -> int:
    """``--check FILE``: the same checks as a start, and one line saying what was found or what is wrong."""
    try:
        config = load_config(path)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201 - the one line a user reads
        return EXIT_CONFIG
    tables = [name for name in ("osc", "midi", "oscquery", "cluster") if getattr(config, name) is not None]
    server = config.server
    if server.tls is not None and not server.tls.auto:
        try:  # (files of one's own: a start reads them, so does the check; "auto" makes its own)
            prepare_tls(server.tls).context()
        except BridgeError as err:
            print(f"error: {err}", file=sys.stderr)  # noqa: T201
            return EXIT_CONFIG
    tables += ["tls"] if server.tls is not None else []
    print(  # noqa: T201
        f"{path}: ok, {len(config.controls)} controls" + (f"; {', '.join(tables)}" if tables else ""), flush=True
    )
    return 0


def _websocket_leftovers(record: logging.LogRecord) -> bool:
    """Drop Werkzeug's "code 400" for the bytes a closing WebSocket leaves behind.

    When a browser leaves, the WebSocket session ends on the server first and
    Werkzeug reads the client's last frame (it starts with 0x81 or 0x88) as
    if it were a new HTTP request. Nothing is wrong; the line would only
    alarm whoever watches the log during a show.
    """
    message = record.getMessage()
    return not ("code 400" in message and ("\\x81" in message or "\\x88" in message))


def main(argv: list[str] | None = None, prog: str = "python -m bridge") -> int:
    args = parse_args(argv, prog)
    if args.check is not None:
        return check(args.check)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Werkzeug serves only the threading model (bridge.concurrency); its notice that it is a
    # development server, and its line per request, would only bury what matters on stage.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("werkzeug").addFilter(_websocket_leftovers)
    # gevent-websocket logs a line per HTTP request at INFO: the same noise under gevent.
    logging.getLogger("geventwebsocket").setLevel(logging.WARNING)
    try:
        config: Config = load_config(args.config)
        if args.port is not None and not 0 < args.port <= 65535:
            raise ConfigError(args.config, "--port", f"expected 1-65535, got {args.port}")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201 - the one line a user reads
        return EXIT_CONFIG
    overrides = {key: value for key, value in (("host", args.host), ("port", args.port)) if value is not None}
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, **overrides))
    server = config.server

    bridge = Bridge(config)
    bridge.reloader.overrides = overrides  # the command line wins over every version of the file
    try:
        tls = None
        if server.tls is not None:
            served = prepare_tls(server.tls, [server.host, *(lan for lan in [lan_address()] if lan)])
            log.info("TLS certificate %s, SHA-256 fingerprint %s", served.cert, served.fingerprint)
            tls = served.context()
        http = HttpServer(bridge, server.host, server.port, tls)  # bound now: a taken port stops here
        bridge.start()
    except BridgeError as err:
        bridge.stop()
        print(f"error: {err}", file=sys.stderr)  # noqa: T201
        return EXIT_START
    try:
        found = urls(server.host, server.port, server.scheme)
        log.info("Stage Bridge serving %s with config %s", ", ".join(found), config.path)
        access = bridge.access
        for url in found:
            if access.key is None:
                print(f"  open {url}", flush=True)  # noqa: T201
                continue
            print(f"  open {url}?key={access.key}  (control)", flush=True)  # noqa: T201
            if access.viewer_key:
                print(f"  open {url}?key={access.viewer_key}  (view only)", flush=True)  # noqa: T201
        http.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        http.close()
        bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
