"""The application factory. It builds everything and opens nothing.

Ports, threads and files open in :meth:`Bridge.start`, which ``python -m
bridge`` calls; a test can build as many apps as it likes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from bridge.auth import Access, Origins
from bridge.concurrency import async_mode
from bridge.config import Config
from bridge.hub import Adapter, Hub
from bridge.midi import api as midi_api
from bridge.midi.adapter import MidiAdapter
from bridge.midi.learn import bindings_path
from bridge.scenes import api as scenes_api
from bridge.scenes.engine import Scenes
from bridge.scenes.store import scene_file_for
from bridge.state import StateStore, load_state
from bridge.web import pages
from bridge.web.adapter import WebAdapter

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent


class Bridge:
    """The running parts of one bridge: the Flask app, the hub, the adapters."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"))
        self.app.json.sort_keys = False  # type: ignore[attr-defined]
        server = config.server
        self.app.config["MAX_CONTENT_LENGTH"] = server.max_payload
        # The page's own origin and the listed ones, on both transports (the
        # WebSocket upgrade is checked by the HTTP server, see bridge.serve).
        self.origins = Origins(server.allowed_origins)
        self.socketio = SocketIO(
            self.app,
            # Pinned by the process, not guessed from what is installed: gevent when
            # ``python -m bridge`` patched the standard library (see bridge.concurrency).
            async_mode=async_mode(),
            cors_allowed_origins=self.origins,
            max_http_buffer_size=server.max_payload,
            # A phone that locks its screen or leaves the Wi-Fi is noticed within
            # about 10 s, not the 45 s of the defaults; one tiny packet per 5 s.
            ping_interval=5,
            ping_timeout=5,
            # One browser's changes are handled in the order it sent them (the
            # default runs each event on a thread of its own, which can reorder
            # the end of a fast drag). Browsers still run side by side.
            async_handlers=False,
        )
        self.access = Access.from_config(server.key, server.viewer_key)
        self.hub = Hub(config.controls)
        self.state: StateStore | None = None
        if config.server.state_file is not None:
            self.state = StateStore(self.hub, config.server.state_file)
        self.web = WebAdapter(
            self.hub,
            self.socketio,
            access=self.access,
            max_rate=server.max_rate,
            max_clients=server.max_clients,
            views=config.views,
        )
        self.web.register()
        self.app.register_blueprint(pages.blueprint(self.hub, self.access, self.web.views, self.status))
        state_file = config.server.state_file
        self.scenes = Scenes(self.hub, scene_file_for(state_file) if state_file else None, push=self.web.push)
        scenes_api.register(self.app, self.web, self.access, self.scenes)
        self.midi: MidiAdapter | None = None
        for adapter in self._transport_adapters():
            self.hub.add_adapter(adapter)
        midi_api.register(self.app, self.web, self.access, self.midi)
        self.app.extensions["stage_bridge"] = self
        self._started = False

    def _transport_adapters(self) -> list[Adapter]:
        adapters: list[Adapter] = [self.web]
        if self.config.cluster is not None:
            # First: it joins the cluster at start, so every other adapter starts on its values.
            from bridge.cluster.adapter import ClusterAdapter

            adapters.insert(0, ClusterAdapter(self.hub, self.config.cluster))
        if self.state is not None:
            adapters.append(self.state)
        adapters.append(self.scenes)
        if self.config.osc is not None:
            from bridge.osc.adapter import OscAdapter

            adapters.append(OscAdapter(self.hub, self.config.osc, commands=self.scenes.osc_commands()))
        if self.config.midi is not None:
            self.midi = MidiAdapter(
                self.hub,
                self.config.midi,
                push=self.web.push,
                bindings_file=bindings_path(self.config.path),
                notify=self.web.server.emit,
            )
            adapters.append(self.midi)
        oscquery = None
        if self.config.oscquery is not None:
            from bridge.oscquery.adapter import OscQueryAdapter

            oscquery = OscQueryAdapter(self.hub, self.config, self.access)
            adapters.append(oscquery)
        if self.config.discovery.mdns:
            from bridge.discovery import Advertiser

            # Last: it announces the ports the others have bound.
            port = (lambda: oscquery.port) if oscquery is not None else None
            adapters.append(Advertiser(self.config, oscquery_port=port))
        return adapters

    def start(self) -> None:
        """Restore the saved values, then open every adapter's ports and threads."""
        if not self.access.enabled:
            log.warning("no [server] key set: anyone on this network can control the show")
        if self.state is not None:
            restored = load_state(self.state.path, self.hub.controls)
            self.hub.restore(restored)
            if restored:
                log.info("restored %d values from %s", len(restored), self.state.path)
        self._started = True
        for adapter in self.hub.adapters:
            adapter.start()

    def stop(self) -> None:
        """Close every adapter (the state is saved one last time)."""
        if not self._started:
            return
        self._started = False
        for adapter in reversed(self.hub.adapters):
            try:
                adapter.stop()
            except Exception:  # keep closing the others
                log.exception("adapter %s failed to stop", adapter.name)

    def status(self) -> dict[str, Any]:
        """The document ``/healthz`` serves."""
        adapters: dict[str, Any] = {}
        for adapter in self.hub.adapters:
            describe = getattr(adapter, "describe", None)
            if describe is not None:
                adapters[adapter.name] = describe()
        return {
            "status": "ok",
            "server_model": self.socketio.async_mode,
            "controls": len(self.hub.controls),
            "adapters": adapters,
        }


def create_app(config: Config) -> Flask:
    """Build the Flask app for ``config``; ``get_bridge(app)`` gives its parts."""
    return Bridge(config).app


def get_bridge(app: Flask) -> Bridge:
    """The :class:`Bridge` that ``create_app`` built around ``app``."""
    bridge: Bridge = app.extensions["stage_bridge"]
    return bridge
