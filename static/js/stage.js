/* Stage Bridge page: keeps the server-rendered controls live over Socket.IO.
 *
 * Protocol (the classic Flask-SocketIO slider recipe's): the page sends
 * "value changed" {who, data}; it receives "update value" {who, data} and, on
 * every (re)connection, "snapshot" {values}. Hooks for custom scripts: window
 * gets a "bridge:update" CustomEvent after a control shows a value from the
 * server, and "bridge:send" when the page sends one; detail is {who, data}.
 */
(function () {
  "use strict";

  const PING_EVERY_MS = 2000;
  const PING_TIMEOUT_MS = 4000;
  const SLOW_RTT_MS = 100;
  const TEXT_DEBOUNCE_MS = 150;
  const TEXT_MAX_WAIT_MS = 600;
  const OFFLINE_AFTER_ATTEMPTS = 3;
  const SLIDE_OFF_MARGIN_PX = 4;
  const FADER_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"]);
  const MIDI_STATES = { connected: "connected", missing: "missing", off: "off" };

  const root = document.documentElement;
  const byId = (id) => document.getElementById(id);
  const connectionText = byId("connection-text");
  const rttBox = byId("rtt");
  const staleNote = byId("stale-note");
  const midiBox = byId("midi-status");
  const panels = byId("panels");

  /** id -> what the page knows about one control. */
  const records = new Map();
  /** pointerId -> the fader record it holds (buttons track their own). */
  const faderPointers = new Map();
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
    switch (rec.type) {
      case "range":
        return rec.el.valueAsNumber;
      case "toggle":
        return rec.el.checked ? 1 : 0;
      case "button":
        return rec.el.getAttribute("aria-pressed") === "true" ? 1 : 0;
      default:
        return rec.el.value;
    }
  }

  /** Put ``value`` on the control. Setting properties fires no input event, so nothing is sent back. */
  function show(rec, value) {
    switch (rec.type) {
      case "range":
        rec.el.value = String(value);
        paintRange(rec);
        break;
      case "toggle":
        rec.el.checked = value === 1 || value === true;
        paintToggle(rec);
        break;
      case "button":
        paintButton(rec, value === 1 || value === true);
        break;
      default:
        if (rec.el.value !== String(value)) rec.el.value = String(value);
    }
  }

  function paintRange(rec) {
    const el = rec.el;
    const value = el.valueAsNumber;
    const lo = Number(el.min);
    const hi = Number(el.max);
    let text = value.toFixed(rec.decimals);
    if (Number(text) === 0) text = (0).toFixed(rec.decimals); // no "-0.00"
    rec.num.textContent = text;
    el.setAttribute("aria-valuetext", rec.unit ? text + " " + rec.unit : text);
    el.style.setProperty("--p", hi > lo ? String((value - lo) / (hi - lo)) : "0");
  }

  function paintToggle(rec) {
    if (rec.state) rec.state.textContent = rec.el.checked ? "On" : "Off";
  }

  function paintButton(rec, pressed) {
    rec.el.setAttribute("aria-pressed", pressed ? "true" : "false");
  }

  // ---- From the server -----------------------------------------------------

  function fromServer(who, data) {
    const rec = records.get(who);
    if (!rec) return;
    rec.server = data;
    if (rec.holds.size) {
      // Under the performer's finger: remember it, show it on release.
      rec.remoteWhileHeld = !same(data, shown(rec));
      if (rec.remoteWhileHeld) rec.wrap.dataset.remote = "pending";
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

  function sendNow(rec, value) {
    if (!socket || !socket.connected) return false; // never queued: the snapshot on reconnect wins
    if (same(value, rec.server)) return false;
    socket.emit("value changed", { who: rec.id, data: value });
    rec.server = value;
    announce("bridge:send", rec.id, value);
    return true;
  }

  // While a control moves, its latest value goes out once per animation frame.
  const queued = new Set();
  let frame = 0;

  function queue(rec, value) {
    rec.pending = value;
    rec.hasPending = true;
    if (document.hidden) {
      flush(rec); // no frames while hidden
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
  }

  /** After a release: show the server's latest value if it moved meanwhile. */
  function settle(rec) {
    rec.remoteWhileHeld = false;
    delete rec.wrap.dataset.remote;
    if (!socket || !socket.connected) return; // the snapshot on reconnect settles it
    if (!same(shown(rec), rec.server)) {
      show(rec, rec.server);
      announce("bridge:update", rec.id, rec.server);
    }
  }

  function releaseAll() {
    faderPointers.forEach((rec, pointerId) => release(rec, "pointer:" + pointerId));
    faderPointers.clear();
    records.forEach((rec) => {
      Array.from(rec.holds).forEach((token) => {
        if (rec.type === "button") {
          releaseButton(rec, token);
          return;
        }
        if (rec.type === "text") sendText(rec);
        release(rec, token);
      });
    });
  }

  // ---- Wiring each kind of control -------------------------------------------

  function wireRange(rec) {
    const el = rec.el;
    rec.num = rec.wrap.querySelector(".value .num");
    rec.decimals = Number(el.dataset.decimals) || 0;
    rec.unit = el.dataset.unit || "";
    el.addEventListener("input", () => {
      paintRange(rec);
      queue(rec, el.valueAsNumber);
    });
    el.addEventListener("change", () => flush(rec));
    el.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      faderPointers.set(event.pointerId, rec);
      hold(rec, "pointer:" + event.pointerId);
    });
    el.addEventListener("keydown", (event) => {
      if (FADER_KEYS.has(event.key)) hold(rec, "key");
    });
    el.addEventListener("keyup", (event) => {
      if (FADER_KEYS.has(event.key)) release(rec, "key");
    });
    el.addEventListener("blur", () => release(rec, "key"));
  }

  function endFaderPointer(event) {
    const rec = faderPointers.get(event.pointerId);
    if (!rec) return;
    faderPointers.delete(event.pointerId);
    release(rec, "pointer:" + event.pointerId);
  }

  function wireToggle(rec) {
    rec.state = rec.wrap.querySelector(".state");
    rec.el.addEventListener("change", () => {
      paintToggle(rec);
      sendNow(rec, rec.el.checked ? 1 : 0);
    });
  }

  function pressButton(rec, token) {
    const first = rec.holds.size === 0;
    hold(rec, token);
    if (!first) return;
    paintButton(rec, true);
    sendNow(rec, 1);
  }

  function releaseButton(rec, token) {
    if (!rec.holds.delete(token) || rec.holds.size) return;
    rec.wrap.classList.remove("held");
    paintButton(rec, false);
    sendNow(rec, 0);
    settle(rec);
  }

  function inside(el, event) {
    const box = el.getBoundingClientRect();
    const m = SLIDE_OFF_MARGIN_PX;
    return (
      event.clientX >= box.left - m &&
      event.clientX <= box.right + m &&
      event.clientY >= box.top - m &&
      event.clientY <= box.bottom + m
    );
  }

  function wireButton(rec) {
    const el = rec.el;
    el.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      // Captured, so the release reaches this pad wherever the finger lifts.
      try {
        el.setPointerCapture(event.pointerId);
      } catch (err) {
        /* the pointer is already gone */
      }
      pressButton(rec, "pointer:" + event.pointerId);
    });
    el.addEventListener("pointermove", (event) => {
      const token = "pointer:" + event.pointerId;
      if (!rec.holds.has(token) || inside(el, event)) return;
      // Slid off the pad: released, as a hardware pad would be.
      if (el.hasPointerCapture(event.pointerId)) el.releasePointerCapture(event.pointerId);
      releaseButton(rec, token);
    });
    const end = (event) => releaseButton(rec, "pointer:" + event.pointerId);
    el.addEventListener("pointerup", end);
    el.addEventListener("pointercancel", end);
    el.addEventListener("lostpointercapture", end);
    el.addEventListener("contextmenu", (event) => event.preventDefault());
    const isPressKey = (event) => event.key === " " || event.key === "Enter";
    el.addEventListener("keydown", (event) => {
      if (!isPressKey(event)) return;
      event.preventDefault();
      if (!event.repeat) pressButton(rec, "key");
    });
    el.addEventListener("keyup", (event) => {
      if (!isPressKey(event)) return;
      event.preventDefault();
      releaseButton(rec, "key");
    });
    el.addEventListener("blur", () => releaseButton(rec, "key"));
  }

  function sendText(rec) {
    clearTimeout(rec.textTimer);
    rec.textTimer = 0;
    rec.textSince = 0;
    flush(rec);
  }

  function wireText(rec) {
    const el = rec.el;
    rec.textTimer = 0;
    rec.textSince = 0;
    const typed = (event) => {
      // Held while typing: a change from elsewhere waits until Enter or blur.
      hold(rec, "typing");
      if (event.isComposing) return; // half-built characters (an input method) are not sent
      rec.pending = el.value;
      rec.hasPending = true;
      const now = window.performance.now();
      if (!rec.textSince) rec.textSince = now;
      clearTimeout(rec.textTimer);
      const wait = Math.max(0, Math.min(TEXT_DEBOUNCE_MS, rec.textSince + TEXT_MAX_WAIT_MS - now));
      rec.textTimer = setTimeout(() => sendText(rec), wait);
    };
    el.addEventListener("input", typed);
    el.addEventListener("compositionend", typed);
    el.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.isComposing) return;
      event.preventDefault();
      // Enter sends what the field shows, even over a newer change from elsewhere.
      rec.pending = el.value;
      rec.hasPending = true;
      sendText(rec);
      release(rec, "typing");
    });
    el.addEventListener("blur", () => {
      sendText(rec);
      release(rec, "typing");
    });
  }

  function register(wrap) {
    const id = wrap.dataset.control;
    const el = byId(id);
    if (!el) return;
    const rec = {
      id: id,
      type: wrap.dataset.type,
      el: el,
      wrap: wrap,
      server: undefined,
      holds: new Set(),
      pending: undefined,
      hasPending: false,
      remoteWhileHeld: false,
    };
    records.set(id, rec);
    if (rec.type === "range") wireRange(rec);
    else if (rec.type === "toggle") wireToggle(rec);
    else if (rec.type === "button") wireButton(rec);
    else wireText(rec);
    rec.server = shown(rec); // rendered by the server with the current values
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

  function connect() {
    if (typeof window.io !== "function") {
      setConnection("offline", "Offline: client script missing");
      return;
    }
    socket = window.io({
      reconnectionDelay: 250,
      reconnectionDelayMax: 2000,
      randomizationFactor: 0.3,
      timeout: 5000,
      auth: { batch: true }, // held values may come as one "update values" frame
    });
    socket.on("connect", onConnect);
    socket.on("disconnect", onDisconnect);
    socket.on("connect_error", (err) => {
      // Refused by the server itself (not a network failure): no retry will come.
      if (!socket.active) setConnection("offline", "Refused: " + ((err && err.message) || "not allowed"));
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
  window.addEventListener("pointerup", endFaderPointer, true);
  window.addEventListener("pointercancel", endFaderPointer, true);
  // A phone locked or an app switched mid-gesture: nothing stays held.
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) releaseAll();
  });
  wireJoin();
  root.dataset.stale = "false";
  connect();

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
