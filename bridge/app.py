"""The application factory. It builds everything and opens nothing.

Ports, threads and files open in :meth:`Bridge.start`, which ``python -m
bridge`` calls; a test can build as many apps as it likes.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from flask import Flask
from flask_socketio import SocketIO

from bridge.auth import Access, Origins, Role, keys_file_for
from bridge.concurrency import async_mode
from bridge.config import Config, DiscoveryConfig
from bridge.config.sections import home_of
from bridge.echoes import Echoes
from bridge.errors import BridgeError
from bridge.hub import Adapter, Held, Hub
from bridge.logs import LibraryTracebacks, LogLimiter
from bridge.looks import Looks
from bridge.midi import api as midi_api
from bridge.midi.adapter import MidiAdapter
from bridge.midi.learn import bindings_path
from bridge.model import Value
from bridge.monitor import IDLE, Monitor, attach, switched_on, targets
from bridge.reload import Reloader
from bridge.restore import load_state
from bridge.scenes import api as scenes_api
from bridge.scenes.engine import Scenes
from bridge.scenes.store import scene_file_for
from bridge.state import DiskReport, StateStore, sweep
from bridge.web import config_api, editor_api, monitor_events, pages, polling
from bridge.web.adapter import WebAdapter

log = logging.getLogger(__name__)


def _quiet_library_tracebacks() -> None:
    """Engine.IO logs a traceback at every broken polling request; one line is enough (bridge.logs)."""
    engineio_log = logging.getLogger("engineio.server")
    if not any(isinstance(f, LibraryTracebacks) for f in engineio_log.filters):
        engineio_log.addFilter(LibraryTracebacks(LogLimiter(log)))


ROOT = Path(__file__).resolve().parent.parent


def shipped(name: str) -> Path:
    """A folder the bridge ships (``static``, ``templates``): at the top of a checkout, else in the package."""
    if (ROOT / "pyproject.toml").is_file() and (ROOT / name).is_dir():
        return ROOT / name
    return Path(__file__).resolve().parent / name


#: The tables whose adapter has ports: a reload that changes one starts a new adapter for it.
PORTED = ("osc", "midi", "oscquery", "discovery")


class Bridge:
    """The running parts of one bridge: the Flask app, the hub, the adapters."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app = Flask(__name__, template_folder=str(shipped("templates")), static_folder=str(shipped("static")))
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
        _quiet_library_tracebacks()
        # A polling POST the library would leave unanswered is refused before it reads it.
        self.app.wsgi_app = polling.guard(self.app.wsgi_app, limit=server.max_payload)  # type: ignore[method-assign,assignment]
        # The keys "auto" stands for are kept beside the state file (or the config), as the certificate is.
        kept = keys_file_for(server.state_file or home_of(config.path) / config.path.name)
        self.access = Access.from_config(server.key, server.viewer_key, kept)
        self.hub = Hub(config.controls)
        self.looks = Looks(self.hub.controls)
        #: What went out over the network lately (OSC, OSCQuery), to know its echoes: one for both, as an
        #: OSCQuery client may answer over UDP, and kept across reloads that restart either.
        self.echoes = Echoes()
        self.state: StateStore | None = None
        #: The "saving" banner of the pages: the state or scenes file the disk refuses.
        self.disk = DiskReport()
        if config.server.state_file is not None:
            self.state = StateStore(self.hub, config.server.state_file, self.looks, self.disk.told("state"))
        self.web = WebAdapter(
            self.hub,
            self.socketio,
            access=self.access,
            max_rate=server.max_rate,
            max_clients=server.max_clients,
            views=config.views,
            looks=self.looks,
        )
        self.web.register()
        self.disk.push = self.web.push
        # The message monitor: nothing recorded, one check per message, until a page opens its drawer.
        self.monitor = Monitor(
            emit=lambda event, payload, room: self.socketio.server.emit(event, payload, room=room),
            status=lambda: targets(self.status()),
            counters=self._activity,
            present=lambda sid: self.web.role(sid) is not None,
            enabled=switched_on(),
        )
        monitor_events.register(self.web, self.monitor)
        self.app.register_blueprint(
            pages.blueprint(
                self.hub,
                self.access,
                self.web.views,
                self.status,
                self.looks,
                self.monitor if self.monitor.enabled else IDLE,
            )
        )
        state_file = config.server.state_file
        scene_file = scene_file_for(state_file) if state_file else None
        self.scenes = Scenes(self.hub, scene_file, push=self.web.push, on_change=self.disk.told("scenes"))
        scenes_api.register(self.app, self.web, self.access, self.scenes)
        self.reloader = Reloader(self, self.web.push)
        config_api.register(self.app, self.access, self.reloader)
        editor_api.register(self.app, self.access, self)
        self.ported: dict[str, Adapter | None] = {}
        for adapter in self._adapters():
            self._attach(adapter)
            self.hub.add_adapter(adapter)
        midi_api.register(self.app, self.web, self.access, lambda: self.midi)
        self.app.extensions["stage_bridge"] = self
        self._started = False

    @property
    def midi(self) -> MidiAdapter | None:
        midi = self.ported.get("midi")
        return midi if isinstance(midi, MidiAdapter) else None

    def _adapters(self) -> list[Adapter]:
        adapters: list[Adapter] = [self.web]
        if self.config.cluster is not None:
            # First: it joins the cluster at start, so every other adapter starts on its values.
            from bridge.cluster.adapter import ClusterAdapter
            from bridge.cluster.status import target_names

            def targets() -> list[str]:  # the running config's (a reload may change them)
                osc = self.config.osc
                return target_names([(t.transport, t.host, t.port) for t in osc.targets]) if osc else []

            adapters.insert(0, ClusterAdapter(self.hub, self.config.cluster, targets, self.scenes))
        if self.state is not None:
            adapters.append(self.state)
        adapters.append(self.scenes)
        # Last: discovery announces the ports the others have bound.
        for section in PORTED:
            adapter = self._make(section, self.config)
            self.ported[section] = adapter
            if adapter is not None:
                adapters.append(adapter)
        return adapters

    def _make(self, section: str, config: Config) -> Adapter | None:
        """The adapter for one of the tables with ports, as ``config`` has it (None when it has none)."""
        if section == "osc" and config.osc is not None:
            from bridge.osc.adapter import OscAdapter

            commands = self.scenes.osc_commands()
            return OscAdapter(
                self.hub, config.osc, commands=commands, looks=self.looks, push=self.web.push, echoes=self.echoes
            )
        if section == "midi" and config.midi is not None:
            return MidiAdapter(
                self.hub,
                config.midi,
                push=self.web.push,
                bindings_file=bindings_path(config.path),
                notify=self.web.server.emit,
            )
        if section == "oscquery" and config.oscquery is not None:
            from bridge.oscquery.adapter import OscQueryAdapter

            return OscQueryAdapter(self.hub, config, self.access, self.origins, self._osc_port, echoes=self.echoes)
        if section == "discovery" and config.discovery.mdns:
            from bridge.discovery import Advertiser

            return Advertiser(config, oscquery_port=self._oscquery_port)
        return None

    def _makes(self, section: str, config: Config) -> bool:
        """Whether ``config`` has an adapter for ``section`` (without making it)."""
        if section == "discovery":
            return config.discovery.mdns
        return getattr(config, section) is not None

    def _attach(self, adapter: Adapter | None) -> None:
        """Give an adapter (and OSC's inbound half) the bridge's monitor."""
        attach(self.monitor, [adapter, getattr(adapter, "inbound", None)])

    def _activity(self) -> dict[str, int]:
        """Messages in and out so far, by activity light (counters the adapters keep anyway)."""
        counts: dict[str, int] = {}
        osc = self.ported.get("osc")
        if osc is not None:
            from bridge.osc.adapter import OscAdapter

            if isinstance(osc, OscAdapter):
                counts["osc_in"], counts["osc_out"] = osc.inbound.received, osc.sent
        midi = self.midi
        if midi is not None:
            counts["midi_in"], counts["midi_out"] = midi.received, midi.sent
        return counts

    def _osc_port(self) -> int | None:
        """The UDP port the OSC side listens on now, or None without one."""
        return getattr(self.ported.get("osc"), "port", None)

    def _oscquery_port(self) -> int | None:
        oscquery = self.ported.get("oscquery")
        return getattr(oscquery, "port", None)

    def replace_adapters(self, old: Config, new: Config) -> list[str]:
        """After a reload: a table with ports that changed gets a new adapter, swapped in once it started.

        A new adapter that cannot start (its port is taken) leaves the old one
        running, and that table of the running config stays the old one (so
        saving the file again tries again); returned is what was not changed,
        and why, one line each (the log says it too).
        """
        refused: list[str] = []
        for section in PORTED:
            # Discovery announces the OSC and OSCQuery ports: it is announced again when they move.
            moved = section == "discovery" and (old.osc != new.osc or old.oscquery != new.oscquery)
            if getattr(old, section) == getattr(new, section) and not moved:
                continue
            current = self.ported.get(section)
            if current is None and not self._makes(section, new):
                continue  # off before, off now (no "switched off" for what never ran)
            fresh = self._make(section, new)
            self._attach(fresh)
            held = None
            if fresh is not None and self._started:
                if current is not None:
                    held = Held(section)  # what changes meanwhile waits for whichever runs next
                    self.hub.replace_adapter(current, held)
                    current.stop()  # its ports are free for the new one (tried again below if that fails)
                try:
                    fresh.start()
                except BridgeError as err:
                    self.config = dataclasses.replace(self.config, **{section: getattr(old, section)})
                    if current is not None and held is not None:
                        try:
                            current.start()
                        except BridgeError as again:  # its port was taken meanwhile: that side is off
                            log.error(
                                "config: %s is off: %s, and the old one could not start again: %s", section, err, again
                            )
                            refused.append(f"[{section}] is off: {err}, and the old one could not start again: {again}")
                            self.hub.replace_adapter(held, None)
                            self.ported[section] = None
                            # Off, as without the table: the next save that has one tries it again.
                            off: dict[str, Any] = {section: DiscoveryConfig() if section == "discovery" else None}
                            self.config = dataclasses.replace(self.config, **off)
                            continue
                        self.hub.hand_over(held, current)
                    log.warning("config: %s not changed, the old one stays: %s", section, err)
                    refused.append(f"[{section}] not changed, the old one stays: {err}")
                    continue
            elif current is not None:
                current.stop()
            if held is not None and fresh is not None:
                self.hub.hand_over(held, fresh)
            else:
                self.hub.replace_adapter(current, fresh)
            self.ported[section] = fresh
            log.info("config: %s %s", section, "restarted" if fresh is not None else "switched off")
        return refused

    def render_surface(self, view: str | None, role: Role) -> str:
        """The tabs, panels and view links a page of ``view`` and ``role`` shows now (the ``layout`` a
        reload sends)."""
        context = pages.surface(self.hub, self.looks, self.web.views, view, role, self.hub.values())
        return pages.render_surface(self.app, context)

    def start(self) -> None:
        """Restore the saved values, then open every adapter's ports and threads."""
        if not self.access.enabled:
            log.warning("no [server] key set: anyone on this network can control the show")
        for saved in (self.config.path, bindings_path(self.config.path)):
            sweep(saved)
        if self.state is not None:
            self.state.claim()  # before reading: a second bridge on this file reads and writes nothing
            sweep(self.state.path)
            sweep(scene_file_for(self.state.path))
            elsewhere: dict[str, Any] = {}
            displaced: dict[str, Value] = {}
            looks: dict[str, Any] = {}
            restored = load_state(self.state.path, self.hub.controls, elsewhere, displaced, looks)
            self.hub.restore(restored)
            self.hub.park(elsewhere)
            self.hub.displace(displaced)
            self.looks.restore(looks)
            if restored:
                log.info("restored %d values from %s", len(restored), self.state.path)
        self._started = True
        # A cluster's values, which the others may have changed while this process was away: its desk and
        # controllers had none of it, and kept old levels while every phone showed new ones. With a state file,
        # those changed that differ from it; without one it cannot tell: every value some process changed since
        # Redis was filled. OSC desks get them after their greeting, not asked for (a desk's old answer undid
        # them); MIDI outputs once all is started.
        behind: list[str] = []
        for adapter in self.hub.adapters:
            owe = getattr(adapter, "owe", None)
            if behind and owe is not None:
                owe(behind)
            adapter.start()
            if adapter.name == "cluster":
                behind = getattr(adapter, "joined" if self.state is None else "behind", [])
        midi = [a for a in self.hub.adapters if a.name == "midi"]
        for cid in behind if midi else []:  # (the controls of this config: the join read no others)
            self.hub.send_test(cid, midi)
        if behind and (midi or any(a.name == "osc" for a in self.hub.adapters)):
            log.info("cluster: %d values the others may have changed sent to this process's OSC and MIDI", len(behind))
        self.monitor.start()
        self.reloader.start()

    def stop(self) -> None:
        """Close every adapter (the state is saved one last time)."""
        if not self._started:
            return
        self._started = False
        self.reloader.stop()
        self.monitor.stop()
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
            "config": self.reloader.describe(),
            "adapters": adapters,
        }


def create_app(config: Config) -> Flask:
    """Build the Flask app for ``config``; ``get_bridge(app)`` gives its parts."""
    return Bridge(config).app


def get_bridge(app: Flask) -> Bridge:
    """The :class:`Bridge` that ``create_app`` built around ``app``."""
    bridge: Bridge = app.extensions["stage_bridge"]
    return bridge
