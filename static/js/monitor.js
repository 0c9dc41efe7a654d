/* Stage Bridge monitor (control pages): the activity lights in the header and the message drawer.
 *
 * Lights: "monitor lights" on every (re)connection joins the lights' room and
 * is answered with the lights as they are; "activity" {osc_in, osc_out,
 * midi_in, midi_out} comes whenever one goes on or off.
 *
 * Drawer: "monitor open" is answered with the last messages the bridge
 * holds and the targets' states; then "monitor" {entries, skipped} brings
 * what is new (about ten times a second) and "monitor status" {targets}
 * every second, until "monitor close". The bridge records nothing while no
 * page has its drawer open. Each entry: {n, t, transport, dir, peer, what,
 * args, control}. The page keeps the last 500, newest first; a filter hides
 * rows (text anywhere in the row, and a transport); Pause holds new rows
 * back until Resume.
 */
(function () {
  "use strict";

  const KEEP = 500;
  const byId = (id) => document.getElementById(id);
  const bridge = window.stageBridge;
  const drawer = byId("monitor");
  if (!bridge || !bridge.socket || !drawer) return;
  const socket = bridge.socket;
  const toggle = byId("monitor-toggle");
  const body = byId("monitor-log").tBodies[0];
  const filterBox = byId("monitor-filter");
  const transportBox = byId("monitor-transport");
  const pauseButton = byId("monitor-pause");
  const countBox = byId("monitor-count");
  const targetList = byId("monitor-targets");

  // ---- Lights ----------------------------------------------------------------

  // Only the lights the bridge sends are there (no MIDI lights without [midi]); a reload may change them.
  function showLights(lights) {
    if (!lights || typeof lights !== "object") return;
    document.querySelectorAll("#activity [data-light]").forEach((light) => {
      light.hidden = !(light.dataset.light in lights);
      light.dataset.on = String(Boolean(lights[light.dataset.light]));
    });
    const group = byId("activity");
    if (group) group.hidden = !Object.keys(lights).length;
  }

  socket.on("activity", showLights);
  // Cut off, nothing flows that the page could see: the lights go dark until it is back.
  socket.on("disconnect", () => {
    document.querySelectorAll("#activity [data-light]").forEach((light) => {
      light.dataset.on = "false";
    });
  });
  socket.on("connect", () => {
    socket.emit("monitor lights", null, (answer) => {
      if (answer && answer.ok) showLights(answer.lights);
    });
    if (!drawer.hidden) open(); // a new connection: ask again for what the bridge holds
  });
  if (socket.connected) socket.emit("monitor lights", null, (answer) => answer && answer.ok && showLights(answer.lights));

  // ---- Drawer ------------------------------------------------------------------

  let last = 0; // the number of the newest entry shown or held
  let paused = false;
  let waiting = [];

  function time(ms) {
    const d = new Date(ms);
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.append(td);
  }

  function rowFor(entry) {
    const row = document.createElement("tr");
    row.dataset.n = String(entry.n);
    row.dataset.transport = entry.transport;
    row.dataset.dir = entry.dir;
    row.dataset.control = entry.control || "";
    if (entry.transport === "monitor") {
      row.className = "monitor-gap";
      const td = document.createElement("td");
      td.colSpan = 7;
      td.textContent = time(entry.t) + " — " + entry.what;
      row.append(td);
      return row;
    }
    cell(row, time(entry.t), "m-time");
    cell(row, entry.dir === "in" ? "↓ in" : "↑ out", "m-dir");
    cell(row, entry.transport, "m-transport");
    cell(row, entry.peer, "m-peer");
    cell(row, entry.what, "m-what");
    cell(row, entry.args, "m-args");
    cell(row, entry.control, "m-control");
    return row;
  }

  function matches(row) {
    const family = transportBox.value;
    if (family && row.dataset.transport.split("/")[0] !== family) return false;
    const text = filterBox.value.trim().toLowerCase();
    return !text || row.textContent.toLowerCase().includes(text);
  }

  function count() {
    const rows = body.rows.length;
    const shown = Array.from(body.rows).filter((row) => !row.hidden).length;
    let text = shown === rows ? rows + " messages" : shown + " of " + rows + " shown";
    if (paused) text += " · paused, " + waiting.length + " new";
    countBox.textContent = text;
  }

  function add(entries) {
    const fresh = entries.filter((entry) => entry.n > last);
    if (!fresh.length) return;
    last = fresh[fresh.length - 1].n;
    if (paused) {
      waiting = waiting.concat(fresh).slice(-KEEP);
      count();
      return;
    }
    render(fresh);
  }

  function render(entries) {
    const holder = document.createDocumentFragment();
    entries
      .slice(-KEEP)
      .reverse()
      .forEach((entry) => {
        const row = rowFor(entry);
        row.hidden = !matches(row);
        holder.append(row);
      });
    body.prepend(holder);
    while (body.rows.length > KEEP) body.deleteRow(-1);
    count();
  }

  function note(text) {
    render([{ n: 0, t: Date.now(), transport: "monitor", dir: "", peer: "", what: text, args: "", control: "" }]);
  }

  function refilter() {
    Array.from(body.rows).forEach((row) => {
      row.hidden = !matches(row);
    });
    count();
  }

  function showTargets(targets) {
    if (!Array.isArray(targets)) return;
    targetList.textContent = "";
    targets.forEach((target) => {
      const item = document.createElement("li");
      const good = ["ok", "connected", "joined"].includes(target.state);
      item.dataset.state = good ? "good" : "bad";
      item.dataset.transport = target.transport;
      item.textContent = target.transport + " " + target.name + " · " + target.state + (target.detail ? " · " + target.detail : "");
      targetList.append(item);
    });
  }

  function open() {
    socket.emit("monitor open", null, (answer) => {
      if (!answer || !answer.ok) {
        note((answer && answer.error) || "The bridge did not open the monitor");
        return;
      }
      body.textContent = "";
      last = 0;
      waiting = [];
      add(answer.entries || []);
      showTargets(answer.targets);
      drawer.dataset.open = "true";
    });
  }

  function setOpen(wanted) {
    drawer.hidden = !wanted;
    toggle.setAttribute("aria-expanded", String(wanted));
    document.body.classList.toggle("monitor-open", wanted);
    if (wanted) {
      open();
    } else {
      delete drawer.dataset.open;
      if (socket.connected) socket.emit("monitor close");
    }
  }

  function setPaused(now) {
    paused = now;
    pauseButton.setAttribute("aria-pressed", String(paused));
    pauseButton.textContent = paused ? "Resume" : "Pause";
    if (!paused && waiting.length) {
      const held = waiting;
      waiting = [];
      render(held);
    }
    count();
  }

  socket.on("monitor", (message) => {
    if (!message || drawer.hidden) return;
    if (message.skipped > 0) note(message.skipped + " messages not shown: more than " + KEEP + " in a tenth of a second");
    add(message.entries || []);
  });
  socket.on("monitor status", (message) => message && showTargets(message.targets));

  toggle.addEventListener("click", () => setOpen(drawer.hidden));
  byId("monitor-close").addEventListener("click", () => {
    setOpen(false);
    toggle.focus();
  });
  pauseButton.addEventListener("click", () => setPaused(!paused));
  byId("monitor-clear").addEventListener("click", () => {
    body.textContent = "";
    waiting = [];
    count();
  });
  filterBox.addEventListener("input", refilter);
  transportBox.addEventListener("change", refilter);
})();
