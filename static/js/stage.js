/* Stage Bridge page: keeps the server-rendered controls live over Socket.IO.
 *
 * Protocol (the classic Flask-SocketIO slider recipe's): the page sends
 * "value changed" {who, data}; it receives "update value" {who, data} and, on
 * every (re)connection, "snapshot" {values}. Hooks for custom scripts: window
 * gets a "bridge:update" CustomEvent after a control shows a value from the
 * server, and "bridge:send" when the page sends one; detail is {who, data};
 * "bridge:layout" after a config reload put a new surface in place.
 * What each control type shows, and how it is moved, is kinds.js's.
 */
(function () {
  "use strict";

  const PING_EVERY_MS = 2000;
  const PING_TIMEOUT_MS = 4000;
  const SLOW_RTT_MS = 100;
  const OFFLINE_AFTER_ATTEMPTS = 3;
  const MIDI_STATES = { connected: "connected", missing: "missing", off: "off" };

  const root = document.documentElement;
  const byId = (id) => document.getElementById(id);
  const connectionText = byId("connection-text");
  const rttBox = byId("rtt");
  const staleNote = byId("stale-note");
  const midiBox = byId("midi-status");
  const panels = byId("panels");

  const kinds = window.stageKinds;
  /** id -> what the page knows about one control. */
  const records = new Map();
  let socket = null;
  let pingTimer = 0;

  function announce(name, who, data) {
    window.dispatchEvent(new CustomEvent(name, { detail: { who: who, data: data } }));
  }

  function same(a, b) {
    return a === b || (typeof a === "number" && typeof b === "number" && Math.abs(a - b) < 1e-9);
  }

  // ---- Showing values ------------------------------------------------------

  /** The value a control shows right now, as the protocol spells it. */
  function shown(rec) {
    return rec.kind.shown(rec);
  }

  /** Put ``value`` on the control. Setting properties fires no input event, so nothing is sent back. */
  function show(rec, value) {
    rec.kind.show(rec, value);
  }

  // ---- From the server -----------------------------------------------------

  function fromServer(who, data) {
    const rec = records.get(who);
    if (!rec) return;
    if (rec.trigger) {
      show(rec, data); // fired elsewhere: a flash, whatever this page holds
      announce("bridge:update", who, data);
      return;
    }
    rec.server = data;
    if (rec.holds.size) {
      // Under the performer's finger: remember it, show it on release.
      if (!same(data, shown(rec))) rec.wrap.dataset.remote = "pending";
      else delete rec.wrap.dataset.remote;
      return;
    }
    show(rec, data);
    announce("bridge:update", who, data);
  }

  function applySnapshot(message) {
    const values = message && message.values;
    if (!values || typeof values !== "object") return;
    Object.keys(values).forEach((who) => fromServer(who, values[who]));
    root.dataset.stale = "false";
  }

  // ---- To the server -------------------------------------------------------

  function sendNow(rec, value, always) {
    if (!socket || !socket.connected) return false; // never queued: the snapshot on reconnect wins
    if (!rec.trigger && !always && same(value, rec.server)) return false;
    socket.emit("value changed", { who: rec.id, data: value });
    rec.server = rec.trigger ? 0 : value; // a trigger stores nothing: every press is sent
    announce("bridge:send", rec.id, value);
    return true;
  }

  // While a control moves, its latest value goes out once per animation frame;
  // the first move of a gesture (a touch, a key press) goes out at once.
  const queued = new Set();
  let frame = 0;

  function startGesture(rec) {
    rec.fresh = true;
  }

  function queue(rec, value) {
    rec.pending = value;
    rec.hasPending = true;
    if (document.hidden || rec.fresh) {
      rec.fresh = false;
      flush(rec); // no frames while hidden; no wait for the first move
      return;
    }
    queued.add(rec);
    if (!frame) frame = window.requestAnimationFrame(flushQueued);
  }

  function flushQueued() {
    frame = 0;
    const due = Array.from(queued);
    queued.clear();
    due.forEach(flush);
  }

  /** Send what this control still has waiting; the last value of a gesture always goes out. */
  function flush(rec) {
    queued.delete(rec);
    if (!rec.hasPending) return;
    const value = rec.pending;
    rec.hasPending = false;
    rec.pending = undefined;
    sendNow(rec, value);
  }

  function dropQueued() {
    records.forEach((rec) => {
      rec.hasPending = false;
      rec.pending = undefined;
      clearTimeout(rec.textTimer);
      rec.textSince = 0;
    });
    queued.clear();
  }

  // ---- Holding -------------------------------------------------------------

  function hold(rec, token) {
    rec.holds.add(token);
    rec.wrap.classList.add("held");
  }

  function release(rec, token) {
    if (!rec.holds.delete(token) || rec.holds.size) return;
    rec.wrap.classList.remove("held");
    flush(rec);
    settle(rec);
    if (rec.next) renew(rec); // a reload came while it was held: its new definition now
  }

  /** After a release: show the server's latest value if it moved meanwhile. */
  function settle(rec) {
    delete rec.wrap.dataset.remote;
    if (!socket || !socket.connected) return; // the snapshot on reconnect settles it
    if (!same(shown(rec), rec.server)) {
      show(rec, rec.server);
      announce("bridge:update", rec.id, rec.server);
    }
  }

  function releaseAll() {
    records.forEach((rec) => {
      Array.from(rec.holds).forEach((token) => {
        if (rec.kind.release) {
          rec.kind.release(rec, token, api);
          return;
        }
        release(rec, token);
      });
    });
  }

  /** What kinds.js may use of this page. */
  const api = Object.freeze({
    queue: queue,
    flush: flush,
    sendNow: sendNow,
    hold: hold,
    release: release,
    settle: settle,
    startGesture: startGesture,
    picking: () => root.dataset.learn === "on",
  });

  function register(wrap) {
    const id = wrap.dataset.control;
    const el = byId(id);
    const kind = kinds[wrap.dataset.type];
    if (!el || !kind) return;
    const rec = {
      id: id,
      type: wrap.dataset.type,
      kind: kind,
      el: el,
      wrap: wrap,
      server: undefined,
      holds: new Set(),
      pending: undefined,
      hasPending: false,
      fresh: false,
    };
    records.set(id, rec);
    kind.wire(rec, api);
    rec.server = shown(rec); // rendered by the server with the current values
    if (wrap.dataset.mode === "trigger") rec.server = 0;
  }

  // ---- A new surface (a config reload) -----------------------------------------

  /** Put the freshly rendered ``wrap`` in place of ``rec``'s, showing the value the page knows. */
  function renew(rec) {
    const wrap = rec.next;
    rec.next = null;
    if (records.get(rec.id) !== rec) return; // gone meanwhile
    records.delete(rec.id);
    if (rec.wrap.isConnected) rec.wrap.replaceWith(wrap);
    register(wrap);
    carry(rec, records.get(rec.id));
    announce("bridge:layout", null, null);
  }

  /** The value ``before`` knew (every change since this page joined) on its fresh record ``after``. */
  function carry(before, after) {
    if (!before || !after || before.trigger || after.trigger || before.server === undefined) return;
    if (typeof before.server !== typeof after.server) return; // its type changed: the server resets it
    show(after, before.server);
    after.server = before.server;
  }

  /**
   * Make the live element ``live`` look like ``fresh`` (a freshly rendered
   * copy), keeping the live elements ``kept`` maps fresh ones to: the
   * controls held under a finger and the containers around them. A held
   * control never leaves the document, even for a moment: the browser would
   * end its pointer capture, and the finger would let go.
   */
  function adopt(live, fresh, kept) {
    Array.from(live.attributes).forEach((attr) => {
      if (!fresh.hasAttribute(attr.name)) live.removeAttribute(attr.name);
    });
    Array.from(fresh.attributes).forEach((attr) => live.setAttribute(attr.name, attr.value));
    const freshKids = Array.from(fresh.childNodes);
    const wanted = freshKids.map((child) => kept.get(child) || child);
    const staying = new Set(wanted);
    Array.from(live.childNodes).forEach((child) => {
      if (!staying.has(child)) child.remove();
    });
    let cursor = live.firstChild;
    wanted.forEach((node) => {
      if (node === cursor) cursor = cursor.nextSibling;
      else live.insertBefore(node, cursor);
    });
    freshKids.forEach((child) => {
      const mine = kept.get(child);
      if (mine && !mine.dataset.control) adopt(mine, child, kept); // a container; a held control stays as it is
    });
  }

  /**
   * "layout" {generation, surface, values, removed}: the config changed;
   * ``surface`` is the new tabs and panels (and the links to the views), rendered with the values of that
   * moment. Controls this page already had keep the values it knows (every
   * later change reaches it as an "update value", its own ones included); a
   * control held under a finger keeps its element, and takes its new
   * definition once let go; the tab stays (surface.js).
   */
  function relayout(message) {
    if (!message || typeof message.surface !== "string") return;
    const holder = document.createElement("template");
    holder.innerHTML = message.surface;
    const freshPanels = holder.content.querySelector("#panels");
    if (!freshPanels) return;
    const freshTabs = holder.content.querySelector("#tabs");
    const before = new Map(records);
    const kept = new Map(); // fresh element -> the live one that stays in its place
    records.forEach((rec, id) => {
      flush(rec); // a move not yet sent goes now, under the old definition
      if (!rec.holds.size) return;
      const fresh = freshPanels.querySelector('[data-control="' + CSS.escape(id) + '"]');
      if (!fresh) return; // removed from the config: it goes, finger or not
      // Another kind now (a text field become a fader): the new form, at once, even under a finger
      // or with the focus (it kept the old form until it lost the focus).
      if (fresh.dataset.type !== rec.wrap.dataset.type) return;
      const pairs = [];
      let f = fresh;
      let l = rec.wrap;
      for (; f && l && f !== freshPanels && l !== panels; f = f.parentElement, l = l.parentElement) pairs.push([f, l]);
      if (f !== freshPanels || l !== panels) return; // nested otherwise now: replaced
      if (pairs.some(([a, b]) => kept.has(a) && kept.get(a) !== b)) return; // two held controls that changed places
      pairs.forEach(([a, b]) => kept.set(a, b));
      rec.next = fresh;
    });
    records.clear();
    const oldTabs = byId("tabs");
    if (oldTabs) oldTabs.remove();
    if (freshTabs) panels.before(freshTabs);
    const oldViews = byId("views");
    const freshViews = holder.content.querySelector("#views");
    if (oldViews && freshViews) oldViews.replaceWith(freshViews); // the links follow the views of the file
    adopt(panels, freshPanels, kept);
    panels.querySelectorAll("[data-control]").forEach((wrap) => {
      const id = wrap.dataset.control;
      const old = before.get(id);
      if (old && old.wrap === wrap) {
        records.set(id, old); // still held
        return;
      }
      register(wrap);
      carry(old, records.get(id));
    });
    before.forEach((rec, id) => {
      if (records.get(id) !== rec) {
        clearTimeout(rec.textTimer); // replaced, or gone with the old config
        rec.next = null;
      }
    });
    root.dataset.generation = String(message.generation);
    announce("bridge:layout", null, message.generation);
  }

  /** "config" {generation, error}: a save the bridge could not take; control pages say why until a good one. */
  function showConfig(message) {
    if (showProblem("config-error", message)) root.dataset.configError = "true";
    else delete root.dataset.configError;
  }

  /** A banner of a control page that says what is wrong (message.error), hidden once it is null; true while shown. */
  function showProblem(id, message) {
    const banner = byId(id);
    if (!banner || !message) return false;
    const error = typeof message.error === "string" ? message.error : "";
    banner.querySelector(".why").textContent = error;
    banner.hidden = !error;
    return Boolean(error);
  }

  // ---- Connection ----------------------------------------------------------

  function setConnection(state, text) {
    root.dataset.connection = state;
    const stale = state === "reconnecting" || state === "offline";
    if (stale) root.dataset.stale = "true";
    staleNote.hidden = !stale;
    connectionText.textContent = text;
  }

  // The median of the last few pings: one slow answer does not make the link look bad.
  const rttSamples = [];

  function showRtt(sample) {
    if (sample === null || !socket || !socket.connected) {
      rttSamples.length = 0;
      rttBox.hidden = true;
      delete root.dataset.rtt;
      return;
    }
    rttSamples.push(sample);
    if (rttSamples.length > 5) rttSamples.shift();
    const sorted = rttSamples.slice().sort((a, b) => a - b);
    const ms = sorted[Math.floor(sorted.length / 2)];
    const rounded = Math.round(ms);
    rttBox.textContent = ms < 1 ? "<1 ms" : rounded + " ms";
    rttBox.title = "Round trip to the bridge";
    rttBox.classList.toggle("slow", ms > SLOW_RTT_MS);
    rttBox.hidden = false;
    root.dataset.rtt = String(rounded);
  }

  function ping() {
    if (!socket || !socket.connected) return;
    const started = window.performance.now();
    socket.timeout(PING_TIMEOUT_MS).emit("ping bridge", Date.now(), (err) => {
      if (!err) {
        showRtt(window.performance.now() - started);
      } else if (socket.connected) {
        // Connected but no answer in time: say so rather than show an old number.
        rttBox.textContent = "no reply";
        rttBox.classList.add("slow");
        delete root.dataset.rtt;
      }
    });
  }

  function onConnect() {
    if (keyRefused) {
      // Let in again after its key was refused (whatever refused it since): what it may do (its
      // role) may have changed with the keys, and the page is rendered for a role: loaded again.
      window.location.reload();
      return;
    }
    setConnection("connected", "Connected");
    clearInterval(pingTimer);
    pingTimer = setInterval(ping, PING_EVERY_MS);
    ping();
  }

  function onDisconnect(reason) {
    clearInterval(pingTimer);
    showRtt(null);
    dropQueued();
    setConnection(navigator.onLine === false ? "offline" : "reconnecting", "Reconnecting…");
    if (reason === "io server disconnect") socket.connect(); // the server asked; try again anyway
  }

  function onReconnectAttempt(attempt) {
    if (attempt > OFFLINE_AFTER_ATTEMPTS || navigator.onLine === false) setConnection("offline", "Offline, retrying");
    else setConnection("reconnecting", "Reconnecting…");
  }

  let resyncing = false;

  function onRejected(message) {
    window.console.warn("the bridge refused a value", message);
    if (resyncing || !message || !records.has(message.who) || !panels.dataset.values) return;
    // Nothing was stored: fetch what is, so the controls do not lie. One fetch at a time.
    resyncing = true;
    fetch(panels.dataset.values, { cache: "no-store" })
      .then((response) => (response.ok ? response.json() : null))
      .then((values) => {
        if (values && typeof values === "object") Object.keys(values).forEach((who) => fromServer(who, values[who]));
      })
      .catch(() => {})
      .finally(() => {
        resyncing = false;
      });
  }

  function showMidi(status) {
    if (!status || typeof status !== "object") return;
    midiBox.textContent = "";
    [
      ["input", "MIDI in"],
      ["output", "MIDI out"],
    ].forEach(([key, title]) => {
      const port = status[key];
      if (!port || typeof port !== "object") return;
      const state = MIDI_STATES[port.state] || "off";
      const chip = document.createElement("span");
      chip.className = "midi-port";
      chip.dataset.dir = key;
      chip.dataset.state = state;
      chip.title = port.port ? "Port: " + port.port : "No port open";
      const dir = document.createElement("span");
      dir.className = "dir";
      dir.textContent = title;
      const name = document.createElement("span");
      name.className = "port-name";
      name.textContent = (port.name || "?") + " · " + state;
      chip.append(dir, name);
      midiBox.append(chip);
    });
    midiBox.hidden = midiBox.childElementCount === 0;
  }

  /** Consoles reached over TCP (or unreachable over UDP): one chip each, beside the connection. */
  function showOsc(status) {
    const box = byId("osc-status");
    if (!box || !status || !Array.isArray(status.targets)) return;
    box.textContent = "";
    status.targets.forEach((target) => {
      if (target.transport !== "tcp" && target.state === "ok") return; // a plain UDP target says nothing while fine
      const chip = document.createElement("span");
      chip.className = "midi-port";
      chip.dataset.state = target.state === "connected" || target.state === "ok" ? "connected" : "missing";
      chip.title = "OSC target " + target.address + (target.error ? ": " + target.error : "");
      const dir = document.createElement("span");
      dir.className = "dir";
      dir.textContent = "OSC";
      const name = document.createElement("span");
      name.className = "port-name";
      name.textContent = target.address + " · " + target.state;
      chip.append(dir, name);
      box.append(chip);
    });
    box.hidden = box.childElementCount === 0;
  }

  // How often a page the bridge refused asks again, and whether its key was refused since it was let in.
  const REFUSED_RETRY_MS = 3000;
  let refusedTimer = 0;
  let keyRefused = false;

  function connect() {
    if (typeof window.io !== "function") {
      setConnection("offline", "Offline: client script missing");
      return;
    }
    socket = window.io({
      autoConnect: false, // once every script of the page has put its handlers on (below)
      reconnectionDelay: 250,
      reconnectionDelayMax: 2000,
      randomizationFactor: 0.3,
      timeout: 5000,
      // The view this page shows: a config reload sends it that view's new surface.
      // batch: held values may come as one "update values" frame.
      auth: root.dataset.view ? { view: root.dataset.view, batch: true } : { batch: true },
    });
    socket.on("connect", onConnect);
    socket.on("disconnect", onDisconnect);
    socket.on("connect_error", (err) => {
      if (socket.active) return; // a network failure: the client library tries again by itself
      // Refused by the server itself (a key that no longer opens the show, a full bridge): the
      // library gives up, so the page asks again now and then. A key put back, or a place
      // freed, lets it in without anyone reloading a phone.
      const why = (err && err.message) || "not allowed";
      if (why.startsWith("unauthorized")) keyRefused = true;
      setConnection("offline", "Refused: " + why + " (asking again)");
      clearTimeout(refusedTimer);
      refusedTimer = setTimeout(() => {
        if (!socket.connected) socket.connect();
      }, REFUSED_RETRY_MS);
    });
    socket.on("snapshot", applySnapshot);
    socket.on("update value", (message) => {
      if (message && typeof message.who === "string") fromServer(message.who, message.data);
    });
    socket.on("update values", (list) => {
      if (Array.isArray(list)) list.forEach((m) => m && typeof m.who === "string" && fromServer(m.who, m.data));
    });
    socket.on("rejected", onRejected);
    socket.on("throttled", (message) => window.console.warn("the bridge is throttling this page", message));
    socket.on("midi status", showMidi);
    socket.on("osc status", showOsc);
    socket.on("layout", relayout);
    socket.on("config", showConfig);
    socket.on("saving", (message) => showProblem("save-error", message)); // the state or scenes file refused
    socket.io.on("reconnect_attempt", onReconnectAttempt);
  }

  // ---- Join panel ------------------------------------------------------------

  function wireJoin() {
    const toggle = byId("join-toggle");
    const panel = byId("join-panel");
    const image = byId("join-qr");
    const link = byId("join-url");
    let loaded = false;

    function load() {
      loaded = true;
      // Fetched only when asked for, and put inline: it scales crisply and needs no image decoder.
      fetch(panel.dataset.qr, { cache: "no-store" })
        .then((response) => (response.ok ? response.text() : ""))
        .then((text) => {
          const holder = document.createElement("template");
          holder.innerHTML = text;
          const svg = holder.content.querySelector("svg");
          if (!svg) return;
          holder.content.querySelectorAll("script, foreignObject").forEach((node) => node.remove());
          const width = svg.getAttribute("width");
          const height = svg.getAttribute("height");
          if (!svg.hasAttribute("viewBox") && width && height) svg.setAttribute("viewBox", "0 0 " + width + " " + height);
          svg.removeAttribute("width");
          svg.removeAttribute("height");
          svg.setAttribute("aria-hidden", "true");
          image.replaceChildren(svg);
        })
        .catch(() => {
          loaded = false;
        });
      fetch(panel.dataset.join, { cache: "no-store" })
        .then((response) => (response.ok ? response.json() : null))
        .then((body) => {
          if (body && typeof body.url === "string") {
            link.href = body.url;
            link.textContent = body.url;
          }
        })
        .catch(() => {
          loaded = false;
        });
    }

    function setOpen(open) {
      panel.hidden = !open;
      toggle.setAttribute("aria-expanded", String(open));
      if (open && !loaded) load();
    }

    toggle.addEventListener("click", () => setOpen(panel.hidden));
    byId("join-close").addEventListener("click", () => {
      setOpen(false);
      toggle.focus();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !panel.hidden) {
        setOpen(false);
        toggle.focus();
      }
    });
  }

  // ---- Start -------------------------------------------------------------------

  document.querySelectorAll("[data-control]").forEach(register);
  // A phone locked or an app switched mid-gesture: nothing stays held.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) releaseAll();
  });
  wireJoin();
  root.dataset.stale = "false";
  connect();
  // The page's other scripts (surface, scenes, MIDI, show, monitor, editor) put their handlers on this
  // socket as they load, and the browser may run the socket between two of them: what the bridge sends
  // at connect (the MIDI bindings, the scenes) then came before its handler and was lost (a phone on a
  // slow link showed no MIDI badges). So it connects once they all have run.
  if (socket) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => socket.connect());
    else socket.connect();
  }

  /** For custom scripts: the live socket and the values last known to be the server's. */
  window.stageBridge = Object.freeze({
    socket: socket,
    values: () => {
      const out = {};
      records.forEach((rec, id) => {
        out[id] = rec.server;
      });
      return out;
    },
  });
})();
