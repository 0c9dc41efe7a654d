/* Stage Bridge for a show: the screen kept awake, full screen, and the theme.
 *
 * Keep awake: on a secure origin (HTTPS, or the machine itself) the Screen
 * Wake Lock API holds the screen on, and the lock is taken again whenever the
 * page becomes visible (a browser lets go of it when the page is hidden).
 * On plain HTTP from another machine (a phone on the bridge's LAN address)
 * the browser does not offer that API: the page then plays a tiny silent
 * video it draws itself, which keeps many phones awake, and says so. The
 * "Awake" button switches either off and on; the choice is remembered.
 *
 * Full screen: the "Full" button, where the browser allows it (not on an
 * iPhone: there, "Add to Home Screen" gives a full-screen app; see the
 * manifest). A page already running as such an app hides the button.
 *
 * State for scripts and tests: data-awake on <html> ("held", "released",
 * "fallback", "refused", "off"), and window.stageBridgeShow.
 */
(function () {
  "use strict";

  const STORE_KEY = "stageBridge.keepAwake";
  // The note closed with OK: the same note is not shown again on this phone (another one is).
  const NOTE_KEY = "stageBridge.awakeNoteClosed";
  const root = document.documentElement;
  const byId = (id) => document.getElementById(id);
  const awakeButton = byId("awake-toggle");
  const awakeNote = byId("awake-note");
  const fullButton = byId("fullscreen-toggle");

  // ---- Keep awake --------------------------------------------------------------

  const canLock = Boolean(window.isSecureContext && navigator.wakeLock && navigator.wakeLock.request);
  let wanted = readWanted();
  let lock = null;
  let requests = 0;
  let video = null;

  function readWanted() {
    try {
      return window.localStorage.getItem(STORE_KEY) !== "off";
    } catch (err) {
      return true; // storage refused (private mode): on, as by default
    }
  }

  function saveWanted() {
    try {
      window.localStorage.setItem(STORE_KEY, wanted ? "on" : "off");
    } catch (err) {
      // not remembered; the button still works for this visit
    }
  }

  function show(state, note) {
    root.dataset.awake = state;
    if (awakeButton) {
      awakeButton.setAttribute("aria-pressed", String(wanted));
      awakeButton.title = {
        held: "The screen stays on (wake lock held). Tap to let it sleep.",
        released: "The screen may sleep: the wake lock was let go; it is taken again when the page is shown.",
        fallback: window.isSecureContext
          ? "Keeping the screen on with a silent video (this browser has no Wake Lock). Tap to stop."
          : "Keeping the screen on with a silent video (this page is not on HTTPS). Tap to stop.",
        refused: "The browser refused to keep the screen on.",
        off: "The screen may sleep. Tap to keep it on.",
      }[state];
    }
    if (awakeNote) {
      const closed = Boolean(note) && readStored(NOTE_KEY) === note;
      awakeNote.textContent = note || "";
      awakeNote.hidden = !note || closed;
      if (note && !closed) {
        // Read once, it takes a phone's screen for nothing: OK puts it away for good.
        const ok = document.createElement("button");
        ok.type = "button";
        ok.className = "awake-note-ok";
        ok.textContent = "OK";
        ok.addEventListener("click", () => {
          writeStored(NOTE_KEY, note);
          awakeNote.hidden = true;
        });
        awakeNote.append(" ", ok);
      }
    }
  }

  function readStored(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (err) {
      return null;
    }
  }

  function writeStored(key, value) {
    try {
      window.localStorage.setItem(key, value);
    } catch (err) {
      // not remembered: closed for this visit only
    }
  }

  async function acquire() {
    if (!wanted || document.visibilityState !== "visible") return;
    if (!canLock) {
      startVideo();
      return;
    }
    if (lock && !lock.released) return;
    requests += 1;
    try {
      lock = await navigator.wakeLock.request("screen");
    } catch (err) {
      lock = null;
      show("refused", "The browser refused to keep the screen on (" + ((err && err.message) || err) + ").");
      return;
    }
    if (!wanted) {
      lock.release(); // switched off while the request was under way
      return;
    }
    lock.addEventListener("release", () => {
      if (wanted) show("released");
    });
    show("held");
  }

  function release() {
    const held = lock;
    lock = null;
    if (held && !held.released) held.release();
    stopVideo();
    show("off");
  }

  /** A video the page draws itself (a canvas stream with a silent sound track), muted, playing inline. */
  function startVideo() {
    if (!video) {
      const canvas = document.createElement("canvas");
      canvas.width = 2;
      canvas.height = 2;
      const paint = canvas.getContext("2d");
      paint.fillStyle = "#000";
      paint.fillRect(0, 0, 2, 2);
      const stream = canvas.captureStream ? canvas.captureStream(1) : null;
      if (!stream) {
        show("refused", noteFor(false));
        return;
      }
      addSilence(stream);
      video = document.createElement("video");
      video.id = "awake-video";
      video.muted = true;
      video.loop = true;
      video.playsInline = true;
      video.setAttribute("playsinline", "");
      video.setAttribute("aria-hidden", "true");
      video.className = "awake-video";
      video.srcObject = stream;
      document.body.append(video);
    }
    const playing = video.play();
    show("fallback", noteFor(true));
    if (playing && playing.catch) {
      // Some browsers wait for a first tap: the next one anywhere starts it.
      playing.catch(() => document.addEventListener("pointerdown", () => wanted && video && video.play(), { once: true }));
    }
  }

  /** Phones count a video as media only with a sound track: a silent one, from the page's own audio graph. */
  function addSilence(stream) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    try {
      const audio = new Context();
      const gain = audio.createGain();
      gain.gain.value = 0;
      const tone = audio.createOscillator();
      const sink = audio.createMediaStreamDestination();
      tone.connect(gain).connect(sink);
      tone.start();
      sink.stream.getAudioTracks().forEach((track) => stream.addTrack(track));
      document.addEventListener("pointerdown", () => audio.resume(), { once: true });
    } catch (err) {
      // no sound track: the video alone
    }
  }

  function stopVideo() {
    if (!video) return;
    video.pause();
    video.srcObject.getTracks().forEach((track) => track.stop());
    video.remove();
    video = null;
  }

  function noteFor(playing) {
    // On HTTPS a browser without the Wake Lock API (iOS Safari before 16.4) was told to use HTTPS.
    const secure = window.isSecureContext;
    const why = secure
      ? "This browser cannot be asked to keep the screen on (it has no Wake Lock). "
      : "This page is not on HTTPS, so the browser cannot be asked to keep the screen on. ";
    const how = secure
      ? "To be sure: update the browser, or set the phone's auto-lock to never."
      : "To be sure: serve the bridge with [server] tls = \"auto\", or set the phone's auto-lock to never.";
    return why + (playing ? "A silent video plays to keep it awake on most phones. " : "") + how;
  }

  if (awakeButton) {
    awakeButton.addEventListener("click", () => {
      wanted = !wanted;
      saveWanted();
      if (wanted) acquire();
      else release();
    });
  }
  // A browser lets go of the lock when the page is hidden: take it again when it is shown.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") acquire();
  });
  if (wanted) acquire();
  else show("off");

  // ---- Full screen ----------------------------------------------------------------

  const standalone = window.matchMedia("(display-mode: fullscreen), (display-mode: standalone)").matches;
  const canFull = Boolean(document.fullscreenEnabled && root.requestFullscreen);

  function fullNow() {
    return Boolean(document.fullscreenElement);
  }

  if (fullButton && canFull && !standalone) {
    fullButton.hidden = false;
    fullButton.addEventListener("click", () => {
      const done = fullNow() ? document.exitFullscreen() : root.requestFullscreen({ navigationUI: "hide" });
      if (done && done.catch) done.catch(() => {});
    });
    document.addEventListener("fullscreenchange", () => {
      fullButton.setAttribute("aria-pressed", String(fullNow()));
      root.dataset.fullscreen = String(fullNow());
    });
  }
  if (standalone) root.dataset.app = "true";

  // ---- Theme ------------------------------------------------------------------------

  /** "theme" {theme}: the config's theme changed (a reload); every open page follows at once. */
  function setTheme(message) {
    if (!message || !["dark", "light", "contrast"].includes(message.theme)) return;
    root.dataset.theme = message.theme;
    const colors = { dark: "#0b0d10", light: "#eef0f3", contrast: "#000000" };
    const meta = document.querySelector('meta[name="theme-color"]');
    if (meta) meta.content = colors[message.theme];
    const scheme = document.querySelector('meta[name="color-scheme"]');
    if (scheme) scheme.content = message.theme === "light" ? "light" : "dark";
  }

  const bridge = window.stageBridge;
  if (bridge && bridge.socket) bridge.socket.on("theme", setTheme);

  window.stageBridgeShow = Object.freeze({
    wakeLock: () => lock,
    wakeLockRequests: () => requests,
    keepAwake: () => wanted,
  });
})();
