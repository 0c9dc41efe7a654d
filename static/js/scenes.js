/* Stage Bridge scene bar: save every value as a named scene, recall one with a fade.
 *
 * It talks over the page's own socket (window.stageBridge.socket): "scene save"
 * {name} and "scene recall" {name, fade}, each answered through its
 * acknowledgement. Every page gets "scenes" {names, recalled, recalls} whenever
 * the list changes or a scene is recalled anywhere, and on (re)connection; it
 * says "Recalled" when ``recalls`` (how many so far) moves, not at every save.
 */
(function () {
  "use strict";

  const ACK_TIMEOUT_MS = 5000;

  const byId = (id) => document.getElementById(id);
  const bar = byId("scenes");
  const bridge = window.stageBridge;
  if (!bar || !bridge || !bridge.socket) return;
  const socket = bridge.socket;
  const list = byId("scene-list");
  const fadeInput = byId("scene-fade");
  const form = byId("scene-save");
  const nameInput = byId("scene-name");
  const status = byId("scene-status");
  const readOnly = document.documentElement.dataset.role === "viewer";
  let current = null;
  let heard = null; // the recall count last shown: a save or an import elsewhere is no recall

  function say(text, bad) {
    status.textContent = text;
    status.classList.toggle("bad", Boolean(bad));
  }

  function describe(recall) {
    let text = "Recalled “" + recall.scene + "”";
    if (recall.fade > 0) text += " over " + recall.fade + " s";
    if (recall.skipped && recall.skipped.length) {
      text += "; skipped (not in the show, or their saved value no longer fits): " + recall.skipped.join(", ");
    }
    return text;
  }

  // Saving under a name the show has already replaces that scene: the first Save only turns the
  // button into Replace (until the name is edited), and that is what saves over it.
  const saveButton = byId("scene-save-button");
  const saveLabel = saveButton ? saveButton.textContent : "Save";
  let replacing = null; // the name whose replacement waits for Replace

  function unarm() {
    replacing = null;
    if (saveButton) saveButton.textContent = saveLabel;
  }

  function render(names) {
    // A keyboard user keeps focus on the scene they were on across the redraw.
    const focused = list.contains(document.activeElement) ? document.activeElement.dataset.scene : undefined;
    list.textContent = "";
    names.forEach((name) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "scene";
      button.dataset.scene = name;
      button.textContent = name;
      button.disabled = readOnly;
      if (name === current) button.setAttribute("aria-current", "true");
      list.append(button);
      if (name === focused) button.focus();
    });
    if (replacing !== null && !names.includes(replacing)) unarm(); // gone meanwhile: a plain save again
    if (!names.length) {
      const none = document.createElement("span");
      none.className = "scene-none";
      none.textContent = "No scenes yet";
      list.append(none);
    }
  }

  /** Send a request; ``done`` gets the answer when the bridge did it, else the reason is shown. */
  function ask(event, payload, done) {
    if (!socket.connected) {
      say("Not connected: try again once the bridge is back", true);
      return;
    }
    socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, (err, answer) => {
      if (err) say("No answer from the bridge", true);
      else if (!answer || !answer.ok) say((answer && answer.error) || "Refused by the bridge", true);
      else done(answer);
    });
  }

  socket.on("scenes", (message) => {
    if (!message || !Array.isArray(message.names)) return;
    const recall = message.recalled;
    const count = typeof message.recalls === "number" ? message.recalls : null;
    const fresh = count === null || count !== heard;
    heard = count;
    if (recall && typeof recall.scene === "string" && message.names.includes(recall.scene)) {
      current = recall.scene;
      if (fresh) say(describe(recall), recall.skipped && recall.skipped.length > 0);
    } else {
      current = null; // (deleted since)
    }
    render(message.names);
  });

  // Back online: a "not connected" from before is no longer true.
  socket.on("connect", () => {
    if (status.textContent.startsWith("Not connected")) say("", false);
  });

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-scene]");
    if (!button || readOnly) return;
    // Typed as text: a comma is a decimal point too (2,5), and what is no number says so, never a snap.
    const text = fadeInput.value.trim().replace(",", ".");
    const fade = text === "" ? 0 : Number(text);
    if (!Number.isFinite(fade)) {
      say("Fade must be a number of seconds (0 for at once)", true);
      fadeInput.focus();
      return;
    }
    // Every page, this one too, shows the outcome when "scenes" arrives.
    ask("scene recall", { name: button.dataset.scene, fade: fade }, () => {});
  });

  // Import: a file GET /api/scenes/export gave (here or on another bridge); scenes of the same name are replaced.
  const importInput = byId("scene-import");
  if (importInput) {
    importInput.addEventListener("change", () => {
      const file = importInput.files && importInput.files[0];
      importInput.value = "";
      if (!file) return;
      file
        .text()
        .then((text) =>
          fetch(bar.dataset.import, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: text,
            cache: "no-store",
          }),
        )
        .then((response) =>
          response
            .json()
            .catch(() => ({ error: response.status === 413 ? "the file is larger than the bridge takes" : "HTTP " + response.status }))
            .then((body) => ({ ok: response.ok, body: body })),
        )
        .then(({ ok, body }) => {
          if (!ok) {
            say("Not imported: " + ((body && body.error) || "refused by the bridge"), true);
            return;
          }
          let text = "Imported " + body.imported.length + " scene" + (body.imported.length === 1 ? "" : "s");
          if (body.replaced.length) text += " (replaced: " + body.replaced.join(", ") + ")";
          const unknown = Object.keys(body.unknown || {});
          if (unknown.length) text += "; controls this show lacks are skipped at recall in " + unknown.join(", ");
          say(text, false);
        })
        .catch((err) => say("Not imported: " + ((err && err.message) || "the file could not be read"), true));
    });
  }

  nameInput.addEventListener("input", unarm);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (readOnly) return;
    const name = nameInput.value.trim();
    if (!name) {
      say("Name the scene first", true);
      nameInput.focus();
      return;
    }
    const exists = Array.from(list.querySelectorAll("button.scene")).some((b) => b.dataset.scene === name);
    if (exists && replacing !== name) {
      replacing = name;
      if (saveButton) saveButton.textContent = "Replace";
      say("“" + name + "” exists: press Replace to save over it", true);
      return;
    }
    unarm();
    ask("scene save", { name: name }, (answer) => {
      say((exists ? "Replaced “" : "Saved “") + answer.scene + "” (" + answer.count + " values)");
      nameInput.value = "";
    });
  });
})();
