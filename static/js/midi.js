/* Stage Bridge page: MIDI bindings, MIDI learn and soft-takeover ghosts.
 *
 * Runs after stage.js, on its socket (window.stageBridge.socket). The bridge
 * pushes "midi bindings" {bindings: {id: {label, ...} | null}}, "midi learning"
 * {who} (the control waiting for the hardware), "midi learned" {who, message}
 * and "midi ghost" {who, data, ghosts: {id: value}}; the latest of each pushed
 * event is replayed on connect. This page sends "midi learn" {who},
 * "midi learn cancel" and "midi unlearn" {who}, each answered {ok, error}.
 */
(function () {
  "use strict";

  const ANSWER_TIMEOUT_MS = 5000;
  const bridge = window.stageBridge;
  if (!bridge || !bridge.socket) return;
  const socket = bridge.socket;
  const root = document.documentElement;
  const toggle = document.getElementById("learn-toggle"); // absent for the viewer role
  const note = document.getElementById("learn-note");
  const panels = document.getElementById("panels");

  /** id -> the control's wrapper element. */
  const wraps = new Map();
  function findWraps() {
    wraps.clear();
    document.querySelectorAll("[data-control]").forEach((wrap) => wraps.set(wrap.dataset.control, wrap));
  }
  findWraps();

  let bindings = {};
  let picked = null; // the control this page asked the bridge to learn

  function nameOf(id) {
    const wrap = wraps.get(id);
    const el = wrap && (wrap.querySelector(".name") || wrap.querySelector("label") || wrap.querySelector(".pad"));
    return el ? el.textContent.trim() : id;
  }

  // ---- Bindings on the controls ---------------------------------------------

  function showBinding(id, binding) {
    const wrap = wraps.get(id);
    if (!wrap) return;
    let badge = wrap.querySelector(":scope > .midi-bind");
    if (!binding || typeof binding.label !== "string") {
      if (badge) badge.remove();
      delete wrap.dataset.midi;
      return;
    }
    if (!badge) {
      badge = document.createElement("span");
      badge.className = "midi-bind";
      wrap.append(badge);
    }
    badge.textContent = binding.label;
    badge.title = (binding.learned ? "MIDI, learned: " : "MIDI, from the config: ") + binding.label;
    wrap.dataset.midi = binding.label;
  }

  function onBindings(message) {
    if (!message || typeof message.bindings !== "object") return;
    bindings = message.bindings || {};
    wraps.forEach((wrap, id) => showBinding(id, bindings[id]));
    if (toggle) toggle.hidden = false; // MIDI is on: learning makes sense
  }

  function onLearning(message) {
    const who = message && typeof message.who === "string" ? message.who : null;
    wraps.forEach((wrap, id) => {
      if (id === who) wrap.dataset.learning = "true";
      else delete wrap.dataset.learning;
    });
    if (picked && who !== picked) picked = null; // bound, cancelled, or another control was picked
  }

  function onLearned(message) {
    if (!message || typeof message.message !== "string") return;
    if (root.dataset.learn === "on") say(message.message + ". Tap another control, or Done.");
  }

  // ---- Soft-takeover ghosts ----------------------------------------------------

  let lastGhosts = {}; // drawn again on a surface a reload put in place (its controls are new elements)

  function onGhost(message) {
    const ghosts = (message && message.ghosts) || {};
    lastGhosts = ghosts;
    wraps.forEach((wrap, id) => {
      if (wrap.dataset.type !== "range" && wrap.dataset.type !== "knob") return;
      const value = ghosts[id];
      const track = wrap.querySelector(".fader, .dial"); // drawn on the track itself, whatever the tile's size
      if (!track) return;
      let mark = track.querySelector(":scope > .ghost");
      if (typeof value !== "number") {
        if (mark) mark.remove();
        delete wrap.dataset.ghost;
        return;
      }
      if (!mark) {
        mark = document.createElement("span");
        mark.className = "ghost";
        mark.setAttribute("aria-hidden", "true");
        mark.title = "The hardware fader is here: move it to the value to pick it up";
        track.append(mark);
      }
      const at = window.stageTravel(wrap, value);
      track.style.setProperty("--g", String(at));
      wrap.dataset.ghost = String(value);
    });
  }

  // ---- Learn mode ---------------------------------------------------------------

  function say(text, actions) {
    if (!note) return;
    note.textContent = "";
    const line = document.createElement("span");
    line.className = "learn-text";
    line.textContent = text;
    note.append(line);
    (actions || []).forEach(([title, act]) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = title;
      button.addEventListener("click", act);
      note.append(button);
    });
    note.hidden = false;
  }

  function pickedText(id) {
    const binding = bindings[id];
    return nameOf(id) + (binding ? " (now " + binding.label + ")" : "") + ": move a knob, fader or pad";
  }

  function ask(event, payload, then) {
    socket.timeout(ANSWER_TIMEOUT_MS).emit(event, payload, (err, answer) => {
      if (err) say("No answer from the bridge; try again.");
      else if (!answer || !answer.ok) say((answer && answer.error) || "Refused by the bridge.");
      else if (then) then(answer);
    });
  }

  function pick(id) {
    ask("midi learn", { who: id }, () => {
      picked = id;
      const actions = [["Cancel", cancel]];
      if (bindings[id]) actions.unshift(["Unbind", () => unbind(id)]);
      say(pickedText(id), actions);
    });
  }

  function cancel() {
    if (picked) ask("midi learn cancel", {});
    picked = null;
    say("Tap a control, then move a knob, fader or pad.");
  }

  function unbind(id) {
    ask("midi learn cancel", {});
    picked = null;
    ask("midi unlearn", { who: id });
  }

  function setLearn(on) {
    if (!toggle) return;
    root.dataset.learn = on ? "on" : "off";
    toggle.setAttribute("aria-pressed", String(on));
    toggle.textContent = on ? "Done" : "Learn";
    // In learn mode a tap picks a control instead of moving it; keyboards pick with Enter.
    wraps.forEach((wrap) => {
      if (on) {
        wrap.tabIndex = 0;
        wrap.setAttribute("role", "button");
      } else {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
      }
    });
    if (on) {
      say("Tap a control, then move a knob, fader or pad.");
    } else {
      if (picked) ask("midi learn cancel", {});
      picked = null;
      note.hidden = true;
    }
  }

  function picking(event) {
    if (root.dataset.learn !== "on") return;
    const wrap = event.target.closest && event.target.closest("[data-control]");
    if (!wrap || !panels.contains(wrap)) return;
    if (event.type === "keydown" && event.key !== "Enter" && event.key !== " ") return;
    event.preventDefault();
    event.stopPropagation();
    pick(wrap.dataset.control);
  }

  if (toggle) {
    toggle.addEventListener("click", () => setLearn(root.dataset.learn !== "on"));
    panels.addEventListener("click", picking, true);
    panels.addEventListener("keydown", picking, true);
  }
  // A config reload put a new surface in place: the badges go on the new controls.
  window.addEventListener("bridge:layout", () => {
    findWraps();
    wraps.forEach((wrap, id) => showBinding(id, bindings[id]));
    onGhost({ ghosts: lastGhosts });
    if (root.dataset.learn === "on") setLearn(true);
  });
  socket.on("midi bindings", onBindings);
  socket.on("midi learning", onLearning);
  socket.on("midi learned", onLearned);
  socket.on("midi ghost", onGhost);
})();
