/* Stage Bridge page: the surface editor (/?edit=1, control role).
 *
 * Runs after stage.js and midi.js. The form and the palette are built from
 * GET /api/config, which gives the keys each type takes and how each is
 * shown, from the config loader's own table. Every change goes to the
 * server at once (PATCH, POST, DELETE, order), which checks it with the
 * loader, writes the file and applies it: this page, like every other one,
 * gets the new surface as a "layout" event. A change names the version of
 * the file it was made on; a hand edit in between is a 409, and the file is
 * read again. Undo replays the inverse of the last changes made here.
 */
(function () {
  "use strict";

  const sheet = document.getElementById("editor");
  if (!sheet) return;
  const root = document.documentElement;
  const byId = (id) => document.getElementById(id);
  const panels = byId("panels");
  const toggle = byId("edit-toggle");
  const statusBox = byId("editor-status");
  const undoButton = byId("editor-undo");
  const palette = byId("editor-palette");
  const hint = byId("editor-hint");
  const form = byId("editor-form");
  const UNDO_KEPT = 50;
  const DRAG_AFTER_PX = 8;
  const TYPE_NAMES = {
    range: "Fader",
    knob: "Knob",
    toggle: "Toggle",
    button: "Button",
    select: "Select",
    text: "Text",
    label: "Label",
    meter: "Meter",
    led: "LED",
  };
  const FLAG_DEFAULTS = { scene: true };
  const OPTIONAL_TEXT = new Set(["label", "group", "page", "unit", "color", "label_from"]);

  let config = null; // what GET /api/config said
  let selected = null; // the id of the control the form shows
  let busy = false;
  const undo = [];

  // ---- Talking to the server -------------------------------------------------------

  function setStatus(state, text, action) {
    statusBox.dataset.state = state;
    statusBox.textContent = text;
    if (action) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "editor-button";
      button.textContent = action[0];
      button.addEventListener("click", action[1]);
      statusBox.append(" ", button);
    }
  }

  function load() {
    return fetch(sheet.dataset.config, { cache: "no-store" })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error("HTTP " + response.status))))
      .then((body) => {
        config = body;
      });
  }

  function tableOf(id) {
    const found = config && config.controls.find((c) => c.table.id === id);
    return found || null;
  }

  function plainIds() {
    return config.controls.map((c) => c.table.id);
  }

  /** One change; resolves {ok, answer}. The file is read again after it, whatever happened. */
  function call(method, url, body) {
    busy = true;
    setStatus("saving", "Saving…");
    const headers = { "If-Match": config.version };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body) })
      .then((response) => response.json().catch(() => ({})).then((answer) => ({ response: response, answer: answer })))
      .then(({ response, answer }) =>
        load().then(() => {
          busy = false;
          if (response.ok) {
            setStatus("saved", answer.error ? "Saved, not applied: " + answer.error : "Saved");
            return { ok: true, answer: answer };
          }
          if (response.status === 409) {
            const why = "The file was changed meanwhile (by hand or another editor): read again, change not made.";
            setStatus("conflict", why, [
              "Show it",
              () => render(),
            ]);
          } else {
            setStatus("error", "Not saved: " + (answer.error || "HTTP " + response.status));
          }
          return { ok: false, status: response.status, answer: answer };
        }),
      )
      .catch((err) => {
        busy = false;
        setStatus("error", "Not saved: " + err.message);
        return { ok: false, answer: {} };
      });
  }

  function remember(label, run) {
    undo.push({ label: label, run: run });
    if (undo.length > UNDO_KEPT) undo.shift();
    showUndo();
  }

  function showUndo() {
    const last = undo[undo.length - 1];
    undoButton.disabled = !last;
    undoButton.textContent = last ? "Undo " + last.label : "Undo";
  }

  function runUndo() {
    const last = undo.pop();
    showUndo();
    if (!last || busy) return;
    last.run().then((result) => {
      if (result && !result.ok) {
        if (result.status === 409) {
          undo.push(last); // the file moved on meanwhile: read again, it may be undone now
        } else {
          // It can no longer be undone (someone else changed what it would undo): it leaves the stack,
          // so the changes under it can still be undone.
          const why = (result.answer && result.answer.error) || "refused";
          setStatus("error", "Could not undo the " + last.label + ": " + why);
        }
        showUndo();
      }
      render();
    });
  }

  // ---- The changes, each with its inverse ----------------------------------------------

  function patch(id, props, record) {
    const table = tableOf(id);
    const before = {};
    Object.keys(props).forEach((key) => {
      const was = table && key in table.table ? table.table[key] : null;
      before[key] = was !== null && typeof was === "object" ? { $toml: table.toml[key] } : was;
    });
    return call("PATCH", "/api/config/controls/" + encodeURIComponent(id), props).then((result) => {
      if (result.ok) {
        const now = typeof props.id === "string" ? props.id : id;
        if (now !== id) selected = now;
        if (record) remember("change of " + now, () => patch(now, before, false));
      }
      return result;
    });
  }

  function add(props, after, record) {
    const query = after ? "?after=" + encodeURIComponent(after) : "";
    return call("POST", "/api/config/controls" + query, props).then((result) => {
      if (result.ok) {
        selected = result.answer.id;
        if (record) remember("add of " + result.answer.id, () => remove(result.answer.id, false));
      }
      return result;
    });
  }

  function remove(id, record) {
    const ids = plainIds();
    const at = ids.indexOf(id);
    const table = tableOf(id);
    return call("DELETE", "/api/config/controls/" + encodeURIComponent(id)).then((result) => {
      if (result.ok) {
        if (selected === id) selected = null;
        // Its text as it was, comments and all; else rebuilt from its keys.
        const back = result.answer.removed ? { $block: result.answer.removed } : table ? restored(table) : null;
        if (back && result.answer.views && Object.keys(result.answer.views).length) back.$views = result.answer.views;
        if (record && back) {
          remember("removal of " + id, () =>
            add(back, at > 0 ? ids[at - 1] : null, false).then((added) =>
              added.ok && at === 0 ? order(ids, false) : added,
            ),
          );
        }
      }
      return result;
    });
  }

  function order(ids, record) {
    const before = plainIds();
    return call("POST", "/api/config/order", { ids: ids }).then((result) => {
      if (result.ok && record) remember("move", () => order(before, false));
      return result;
    });
  }

  /** A control's table as the API takes it back: its tables and lists as the TOML they were written as. */
  function restored(control) {
    const out = {};
    Object.keys(control.table).forEach((key) => {
      const value = control.table[key];
      out[key] = value !== null && typeof value === "object" ? { $toml: control.toml[key] } : value;
    });
    return out;
  }

  function nextId(id) {
    const match = /^(.*?)(\d+)$/.exec(id);
    const base = match ? match[1] : id;
    let n = match ? Number(match[2]) + 1 : 2;
    const taken = new Set(plainIds().concat(config.repeated || []));
    while (taken.has(base + n)) n += 1;
    return base + n;
  }

  function duplicate(id) {
    const table = tableOf(id);
    if (!table) return;
    const copy = restored(table);
    // Its address and binding would clash with the original's: the copy starts without them.
    ["osc", "midi", "label_from", "color_from"].forEach((key) => delete copy[key]);
    copy.id = nextId(id);
    if (typeof copy.label === "string") copy.label += " copy";
    add(copy, id, true).then((result) => {
      if (result.ok) setStatus("saved", "Saved: " + copy.id + " (set its OSC address and MIDI binding)");
      render();
    });
  }

  /** Move ``id`` to just before (or after) ``target``, among the [[controls]] tables. */
  function moveTo(id, target, afterTarget) {
    const ids = plainIds().filter((x) => x !== id);
    const at = ids.indexOf(target);
    if (at < 0 || id === target) return Promise.resolve(null);
    ids.splice(afterTarget ? at + 1 : at, 0, id);
    if (ids.join("\n") === plainIds().join("\n")) return Promise.resolve(null);
    return order(ids, true).then((result) => {
      render();
      return result;
    });
  }

  /** The controls of the same group and page as ``id``, as the page shows them. */
  function neighbours(id) {
    const wrap = panels.querySelector('[data-control="' + CSS.escape(id) + '"]');
    if (!wrap || !wrap.parentElement) return [];
    return Array.from(wrap.parentElement.querySelectorAll(":scope > [data-control]"))
      .map((w) => w.dataset.control)
      .filter((x) => tableOf(x));
  }

  function step(id, by) {
    const row = neighbours(id);
    const at = row.indexOf(id);
    const other = row[at + by];
    if (at < 0 || !other) return;
    moveTo(id, other, by > 0);
  }

  // ---- The form -------------------------------------------------------------------------

  function valueKind(type) {
    if (type === "range" || type === "knob" || type === "meter") return "number";
    if (type === "toggle" || type === "button") return "flag";
    if (type === "text" || type === "label") return "text";
    return "toml";
  }

  function field(key, spec, table, type) {
    const row = document.createElement("div");
    row.className = "editor-field";
    row.dataset.key = key;
    const label = document.createElement("label");
    const name = "edit-" + key;
    label.htmlFor = name;
    label.textContent = key;
    let kind = spec.kind === "value" ? valueKind(type) : spec.kind;
    if (type === "led" && key === "value") kind = table.table.colors ? "number" : "flag";
    const present = key in table.table;
    const raw = table.table[key];
    let input;
    if (kind === "choice") {
      input = document.createElement("select");
      const none = document.createElement("option");
      none.value = "";
      none.textContent = key === "type" ? "" : "(default)";
      input.append(none);
      spec.choices.forEach((choice) => {
        const option = document.createElement("option");
        option.value = choice;
        option.textContent = key === "type" ? TYPE_NAMES[choice] || choice : choice;
        input.append(option);
      });
      input.value = present ? String(raw) : "";
    } else if (kind === "flag") {
      input = document.createElement("input");
      input.type = "checkbox";
      const fallback = FLAG_DEFAULTS[key] || false;
      input.checked = present ? Boolean(raw) : fallback;
      input.dataset.fallback = String(fallback);
    } else {
      input = document.createElement("input");
      input.type = kind === "number" || kind === "integer" ? "number" : "text";
      if (kind === "number") input.step = "any";
      if (kind === "number" || kind === "integer") input.inputMode = "decimal";
      if (kind === "toml") {
        input.className = "toml";
        input.value = present ? table.toml[key] : "";
        input.placeholder = key === "osc" ? '"/address" or { address = "/x", curve = "log" }' : "TOML";
      } else {
        input.value = present ? String(raw) : "";
      }
      if (kind === "color") input.placeholder = "#rrggbb";
      if (kind === "address") input.placeholder = "/address";
      input.autocapitalize = "off";
      input.spellcheck = false;
    }
    input.id = name;
    input.name = key;
    input.dataset.kind = kind;
    input.dataset.initial = kind === "flag" ? String(input.checked) : input.value;
    input.addEventListener("input", dirty);
    input.addEventListener("change", dirty);
    const error = document.createElement("p");
    error.className = "editor-error";
    error.id = name + "-error";
    error.hidden = true;
    input.setAttribute("aria-describedby", error.id);
    row.append(label, input, error);
    return row;
  }

  function dirty() {
    if (!busy) setStatus("dirty", "Not saved yet");
  }

  /** What the form changed, as PATCH properties (null removes a key). */
  function changes() {
    const props = {};
    Array.from(form.querySelectorAll("[data-kind]")).forEach((input) => {
      const kind = input.dataset.kind;
      const now = kind === "flag" ? String(input.checked) : input.value;
      if (now === input.dataset.initial) return;
      const key = input.name;
      if (kind === "flag") {
        props[key] = input.checked === (input.dataset.fallback === "true") ? null : input.checked;
      } else if (now.trim() === "") {
        props[key] = null;
      } else if (kind === "number" || kind === "integer") {
        props[key] = Number(now);
      } else if (kind === "toml") {
        props[key] = { $toml: now.trim() };
      } else {
        props[key] = OPTIONAL_TEXT.has(key) || key === "id" || key === "type" ? now.trim() : now;
      }
    });
    return props;
  }

  function showError(answer) {
    form.querySelectorAll(".editor-error").forEach((p) => {
      p.hidden = true;
    });
    const row = answer && answer.field && form.querySelector('.editor-field[data-key="' + CSS.escape(answer.field) + '"]');
    const box = row ? row.querySelector(".editor-error") : form.querySelector(".editor-error.general");
    if (!box || !answer || !answer.error) return;
    box.textContent = answer.error;
    box.hidden = false;
    // On a phone the sheet is scrolled to Save, far below: bring the message (and its field) to the eye.
    box.scrollIntoView({ block: "center" });
    const input = row && row.querySelector("input, select, textarea");
    if (input) input.focus({ preventScroll: true });
  }

  function action(title, act, name) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "editor-button";
    button.textContent = title;
    button.dataset.action = name;
    button.addEventListener("click", act);
    return button;
  }

  function render() {
    mark();
    form.textContent = "";
    const table = selected && tableOf(selected);
    if (!table) {
      form.hidden = true;
      hint.hidden = false;
      if (selected && (config.repeated || []).includes(selected)) {
        hint.textContent = selected + " is made by a [[repeat]] block: edit that block in the file.";
      } else {
        hint.textContent = "Tap a control to change it, drag it to move it within its group.";
      }
      return;
    }
    hint.hidden = true;
    form.hidden = false;
    const type = table.table.type;
    const title = document.createElement("h2");
    title.textContent = (TYPE_NAMES[type] || type) + " · " + selected;
    const general = document.createElement("p");
    general.className = "editor-error general";
    general.hidden = true;
    form.append(title, general);
    const keys = new Set(config.keys[type] || []);
    Object.keys(config.fields).forEach((key) => {
      if (keys.has(key)) form.append(field(key, config.fields[key], table, type));
    });
    const save = document.createElement("button");
    save.type = "submit";
    save.className = "editor-button primary";
    save.textContent = "Save";
    const tools = document.createElement("div");
    tools.className = "editor-tools";
    tools.append(
      save,
      action("Up", () => step(selected, -1), "up"),
      action("Down", () => step(selected, 1), "down"),
      action("Duplicate", () => duplicate(selected), "duplicate"),
      action("Learn MIDI", () => learn(selected), "learn"),
      action("Send test", () => sendTest(selected), "test"),
      action("Remove", () => removeSelected(), "remove"),
    );
    form.append(tools);
  }

  function removeSelected() {
    const id = selected;
    remove(id, true).then(() => render());
  }

  function sendTest(id) {
    setStatus("saving", "Sending…");
    fetch("/api/config/controls/" + encodeURIComponent(id) + "/test", { method: "POST" })
      .then((response) => response.json().then((answer) => ({ ok: response.ok, answer: answer })))
      .then(({ ok, answer }) => {
        if (!ok) setStatus("error", "Not sent: " + (answer.error || "?"));
        else if (!answer.to.length) setStatus("saved", "Nothing to send to: no [osc] or [midi] in the config");
        else setStatus("saved", "Sent " + JSON.stringify(answer.sent) + " to " + answer.to.join(" and "));
      })
      .catch((err) => setStatus("error", "Not sent: " + err.message));
  }

  function learn(id) {
    const socket = window.stageBridge && window.stageBridge.socket;
    if (!socket) return;
    setStatus("saving", "Move a knob, fader or pad on the MIDI controller…");
    socket.emit("midi learn", { who: id }, (answer) => {
      if (answer && answer.ok === false) setStatus("error", answer.error || "MIDI learn refused");
    });
  }

  function onLearned(message) {
    if (!message || message.who !== selected || !message.binding) return;
    const input = form.querySelector('[name="midi"]');
    if (!input) return;
    const parts = Object.keys(message.binding)
      .filter((key) => key !== "label" && key !== "learned")
      .map((key) => key + " = " + JSON.stringify(message.binding[key]));
    input.value = "{ " + parts.join(", ") + " }";
    dirty();
    setStatus("dirty", "Learned " + message.binding.label + ": Save to write it in the file");
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (busy || !selected) return;
    const props = changes();
    if (!Object.keys(props).length) {
      setStatus("saved", "Saved (nothing changed)");
      return;
    }
    patch(selected, props, true).then((result) => {
      if (result.ok) render();
      else showError(result.answer);
    });
  });

  // ---- Picking, dragging, adding -----------------------------------------------------------

  function editing() {
    return root.dataset.edit === "on";
  }

  function mark() {
    panels.querySelectorAll("[data-control]").forEach((wrap) => {
      wrap.classList.toggle("selected", wrap.dataset.control === selected);
      if (editing()) {
        wrap.tabIndex = 0;
        wrap.setAttribute("role", "button");
      } else {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
      }
    });
  }

  function pick(id) {
    selected = id;
    render();
    const wrap = panels.querySelector('[data-control="' + CSS.escape(id) + '"]');
    if (wrap && window.matchMedia("(max-width: 700px)").matches) sheet.scrollIntoView({ block: "nearest" });
  }

  // In edit mode a control is picked, not moved: the events never reach it.
  function swallow(event) {
    if (!editing()) return;
    const wrap = event.target.closest && event.target.closest("[data-control]");
    if (!wrap || !panels.contains(wrap)) return;
    if (event.type === "keydown") {
      if (event.key === "Tab") return; // on to the next control, the form, the palette: never a trap
      if (event.key !== "Enter" && event.key !== " ") {
        if (event.target !== wrap) event.preventDefault();
        return;
      }
      pick(wrap.dataset.control);
    }
    if (event.type === "click" && event.timeStamp - draggedAt > CLICK_AFTER_DRAG_MS) pick(wrap.dataset.control);
    event.preventDefault();
    event.stopPropagation();
  }

  let drag = null;
  let draggedAt = -Infinity;
  const CLICK_AFTER_DRAG_MS = 400;

  function dropTarget(x, y) {
    const under = document.elementFromPoint(x, y);
    const wrap = under && under.closest && under.closest("[data-control]");
    if (!wrap || !drag || wrap === drag.wrap || wrap.parentElement !== drag.wrap.parentElement) return null;
    if (!tableOf(wrap.dataset.control)) return null;
    const box = wrap.getBoundingClientRect();
    const wide = box.width > box.height * 1.5;
    const after = wide ? y > box.top + box.height / 2 : x > box.left + box.width / 2;
    return { wrap: wrap, after: after };
  }

  function clearDrop() {
    panels.querySelectorAll(".drop-before, .drop-after").forEach((w) => w.classList.remove("drop-before", "drop-after"));
  }

  panels.addEventListener(
    "pointerdown",
    (event) => {
      if (!editing()) return;
      const wrap = event.target.closest && event.target.closest("[data-control]");
      if (!wrap || !tableOf(wrap.dataset.control)) return;
      drag = { wrap: wrap, id: wrap.dataset.control, x: event.clientX, y: event.clientY, moving: false, target: null };
      wrap.setPointerCapture(event.pointerId);
      event.stopPropagation();
    },
    true,
  );
  panels.addEventListener(
    "pointermove",
    (event) => {
      if (!drag) return;
      event.stopPropagation();
      if (!drag.moving && Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < DRAG_AFTER_PX) return;
      drag.moving = true;
      drag.wrap.classList.add("dragging");
      clearDrop();
      drag.target = dropTarget(event.clientX, event.clientY);
      if (drag.target) drag.target.wrap.classList.add(drag.target.after ? "drop-after" : "drop-before");
    },
    true,
  );

  function endDrag(event) {
    if (!drag) return;
    event.stopPropagation();
    const done = drag;
    drag = null;
    done.wrap.classList.remove("dragging");
    clearDrop();
    if (!done.moving) return; // a tap: the click picks it
    draggedAt = event.timeStamp; // a mouse fires a click after a drag: it picks nothing
    selected = done.id;
    if (event.type === "pointerup" && done.target && !busy) {
      moveTo(done.id, done.target.wrap.dataset.control, done.target.after);
    } else {
      render();
    }
  }

  panels.addEventListener("pointerup", endDrag, true);
  panels.addEventListener("pointercancel", endDrag, true);
  ["click", "keydown", "input", "change", "dblclick"].forEach((type) => panels.addEventListener(type, swallow, true));

  function buildPalette() {
    palette.textContent = "";
    const title = document.createElement("span");
    title.className = "editor-palette-title";
    title.textContent = "Add";
    palette.append(title);
    config.types.forEach((type) => {
      const button = action(TYPE_NAMES[type] || type, () => addType(type), "add");
      button.dataset.type = type;
      palette.append(button);
    });
  }

  function addType(type) {
    if (busy) return;
    const props = { type: type, label: TYPE_NAMES[type] || type };
    if (type === "select") props.options = ["A", "B"];
    const from = selected && tableOf(selected) ? selected : null;
    if (from) {
      // Beside the control picked, in its group and page.
      const table = tableOf(from).table;
      if (table.group) props.group = table.group;
      if (table.page) props.page = table.page;
    } else {
      // Nothing picked: on the page shown, not on another tab out of sight ("Main" is no page's name).
      const shown = document.documentElement.dataset.page;
      if (shown && shown !== "Main") props.page = shown;
    }
    add(props, from, true).then(() => render());
  }

  function setEditing(on) {
    root.dataset.edit = on ? "on" : "off";
    toggle.setAttribute("aria-pressed", String(on));
    toggle.textContent = on ? "Editing" : "Operating";
    sheet.hidden = !on;
    if (!on) selected = null;
    render();
  }

  toggle.addEventListener("click", () => setEditing(!editing()));
  undoButton.addEventListener("click", runUndo);
  window.addEventListener("bridge:layout", () => {
    // The file was applied again (a hand edit, another editor): read it, so the next change and the
    // next undo are made on the version that is there.
    if (!busy) load().catch(() => {});
    mark();
  });
  if (window.stageBridge && window.stageBridge.socket) window.stageBridge.socket.on("midi learned", onLearned);

  load()
    .then(() => {
      buildPalette();
      setStatus("saved", "Saved");
      render();
    })
    .catch((err) => setStatus("error", "Cannot read the config: " + err.message));
})();
