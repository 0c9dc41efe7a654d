/* Stage Bridge page: what each control type shows and how a performer moves it.
 *
 * Loaded before stage.js, which owns the socket and the protocol: for each
 * control it calls kinds[type].wire(rec, api) once, show(rec, value) to put
 * a value from the bridge on it, and shown(rec) to read what it shows. The
 * api is stage.js's: queue(rec, v) (sent at once for the first move of a
 * gesture, then once per frame), flush(rec), sendNow(rec, v), hold(rec,
 * token), release(rec, token), settle(rec), startGesture and picking().
 *
 * Faders and knobs take relative touch by default: a touch never jumps the
 * value, a drag moves it from where it is. Fine mode: hold Shift while
 * dragging with a mouse, or rest a second finger on the control while the
 * first one drags; it moves at a tenth of the speed. With reset, a double
 * tap puts the default back. The native <input type="range"> stays
 * underneath for keyboards and screen readers.
 */
(function () {
  "use strict";

  const TAP_SLOP_PX = 8;
  const DOUBLE_TAP_MS = 350;
  const FINE = 0.1;
  const KNOB_TRAVEL_PX = 220; // a drag this long moves a knob from end to end
  const THUMB_PX = 30; // --thumb-w in stage.css
  const CONFIRM_MS = 3000;
  const FLASH_MS = 180;
  // A confirming tap this soon after the arming one is its bounce, not a second tap.
  const CONFIRM_GAP_MS = 150;
  // A click this soon after a tap acted on at its pointerup is that tap's own.
  const TAP_CLICK_MS = 800;

  function same(a, b) {
    return a === b || (typeof a === "number" && typeof b === "number" && Math.abs(a - b) < 1e-9);
  }

  function format(value, decimals, unit) {
    let text = typeof value === "number" && decimals !== null ? value.toFixed(decimals) : String(value);
    if (typeof value === "number" && decimals !== null && Number(text) === 0) text = (0).toFixed(decimals); // no "-0.00"
    return unit && typeof value === "number" ? text + " " + unit : text;
  }

  function decimalsOf(el) {
    const text = el.dataset.decimals;
    return text === "" || text === undefined ? null : Number(text);
  }

  // ---- Ranges and knobs ------------------------------------------------------

  const clamp01 = (u) => Math.min(1, Math.max(0, u));

  /** Piecewise-linear lookup of ``x`` in column ``a`` of ``points`` (rising in both), read in column ``b``. */
  function along(points, x, a, b) {
    if (x <= points[0][a]) return points[0][b];
    for (let i = 1; i < points.length; i++) {
      const [p, q] = [points[i - 1], points[i]];
      if (x <= q[a]) return p[b] + ((q[b] - p[b]) * (x - p[a])) / (q[a] - p[a]);
    }
    return points[points.length - 1][b];
  }

  /**
   * A fader's travel as its wire's curve has it (the bridge's ``data-travel``: a log or exp curve, or
   * breakpoints [value, share of the travel]): at(v) is where v stands, 0-1; from(f) the value there.
   * Without one, straight over min..max.
   */
  function travelOf(wrap, lo, hi) {
    const shape = wrap.dataset.travel ? JSON.parse(wrap.dataset.travel) : null;
    const span = hi > lo ? hi - lo : 1;
    if (shape && shape.log) {
      return { at: (v) => clamp01(Math.log(Math.max(v, lo) / lo) / Math.log(hi / lo)), from: (f) => lo * Math.pow(hi / lo, f) };
    }
    if (shape && shape.exp) {
      const r = shape.exp;
      return {
        at: (v) => (Math.pow(r, clamp01((v - lo) / span)) - 1) / (r - 1),
        from: (f) => lo + (span * Math.log(1 + f * (r - 1))) / Math.log(r),
      };
    }
    if (shape && shape.points) {
      const points = shape.points; // (shares rising from 0 to 1, whichever way the wire goes)
      return { at: (v) => clamp01(along(points, v, 0, 1)), from: (f) => along(points, f, 1, 0) };
    }
    return { at: (v) => clamp01((v - lo) / span), from: (f) => lo + f * span };
  }

  function paintFader(rec) {
    const el = rec.el;
    const value = el.valueAsNumber;
    const text = format(value, rec.decimals, null);
    rec.num.textContent = text;
    el.setAttribute("aria-valuetext", rec.unit ? text + " " + rec.unit : text);
    const at = String(rec.travel.at(value));
    el.style.setProperty("--p", at);
    if (rec.type === "knob") rec.wrap.style.setProperty("--p", at);
  }

  /** Put ``value`` on the native input (clamped and stepped by it) and paint; true when it moved. */
  function setFader(rec, value) {
    const before = rec.el.valueAsNumber;
    rec.el.value = String(value);
    paintFader(rec);
    return !same(before, rec.el.valueAsNumber);
  }

  function wireFader(rec, api) {
    const el = rec.el;
    const wrap = rec.wrap;
    rec.num = wrap.querySelector(".value .num");
    rec.decimals = Number(el.dataset.decimals) || 0;
    rec.unit = el.dataset.unit || "";
    const surface = rec.type === "knob" ? wrap.querySelector(".dial") : wrap.querySelector(".fader");
    const relative = wrap.dataset.touch !== "absolute";
    const upright = rec.type === "knob" || wrap.classList.contains("vertical");
    const resetTo = wrap.dataset.reset !== undefined ? JSON.parse(wrap.dataset.reset) : null;
    const lo = Number(el.min);
    const hi = Number(el.max);
    const travel = travelOf(wrap, lo, hi);
    rec.travel = travel;
    const pointers = new Map(); // pointerId -> {x, y}
    let driver = null; // the pointer that moves the value
    let anchor = null; // {pos, value, fine}: where the drag counts from
    let moved = false;
    let downAt = { x: 0, y: 0 };
    let lastTap = { at: -1e9, x: 0, y: 0 };

    /** How far along the travel a point is, 0-1 (a knob: its drag distance). */
    function reach(event) {
      if (rec.type === "knob") return -event.clientY / KNOB_TRAVEL_PX + event.clientX / (4 * KNOB_TRAVEL_PX);
      const box = surface.getBoundingClientRect();
      if (upright) return (box.bottom - THUMB_PX / 2 - event.clientY) / Math.max(1, box.height - THUMB_PX);
      return (event.clientX - box.left - THUMB_PX / 2) / Math.max(1, box.width - THUMB_PX);
    }

    function fine(event) {
      return event.shiftKey || pointers.size > 1;
    }

    function reanchor(event) {
      anchor = { pos: reach(event), value: el.valueAsNumber, fine: fine(event) };
    }

    function follow(event) {
      if (anchor.fine !== fine(event)) reanchor(event); // switching speed never jumps
      let at;
      if (relative || rec.type === "knob") {
        const scale = anchor.fine ? FINE : 1;
        at = travel.at(anchor.value) + (reach(event) - anchor.pos) * scale;
      } else {
        at = reach(event);
      }
      const value = travel.from(clamp01(at));
      if (setFader(rec, Math.min(hi, Math.max(lo, value)))) api.queue(rec, el.valueAsNumber);
    }

    surface.addEventListener("pointerdown", (event) => {
      if (el.disabled || api.picking()) return;
      if (event.pointerType === "mouse" && event.button !== 0) return;
      event.preventDefault();
      try {
        surface.setPointerCapture(event.pointerId);
      } catch (err) {
        /* the pointer is already gone */
      }
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      el.focus({ preventScroll: true });
      if (driver !== null) {
        const first = pointers.get(driver);
        reanchor({ clientX: first.x, clientY: first.y, shiftKey: false }); // a second finger: fine from here
        return;
      }
      driver = event.pointerId;
      moved = false;
      downAt = { x: event.clientX, y: event.clientY };
      api.startGesture(rec);
      api.hold(rec, "pointer:" + event.pointerId);
      reanchor(event);
      if (!relative && rec.type !== "knob") follow(event); // absolute touch: the value jumps to the finger
    });

    surface.addEventListener("pointermove", (event) => {
      if (!pointers.has(event.pointerId)) return;
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      if (event.pointerId !== driver) return;
      if (!moved && Math.hypot(event.clientX - downAt.x, event.clientY - downAt.y) < TAP_SLOP_PX) return;
      moved = true;
      follow(event);
    });

    function end(event) {
      if (!pointers.delete(event.pointerId)) return;
      if (event.pointerId !== driver) {
        if (driver !== null) {
          const first = pointers.get(driver);
          if (first) reanchor({ clientX: first.x, clientY: first.y, shiftKey: false }); // back to full speed
        }
        return;
      }
      driver = null;
      const tapped = !moved && event.type === "pointerup";
      if (tapped && resetTo !== null) {
        const near = Math.hypot(event.clientX - lastTap.x, event.clientY - lastTap.y) < 3 * TAP_SLOP_PX;
        if (event.timeStamp - lastTap.at < DOUBLE_TAP_MS && near) {
          if (setFader(rec, resetTo)) api.queue(rec, el.valueAsNumber);
          lastTap = { at: -1e9, x: 0, y: 0 };
        } else {
          lastTap = { at: event.timeStamp, x: event.clientX, y: event.clientY };
        }
      }
      api.release(rec, "pointer:" + event.pointerId);
    }
    surface.addEventListener("pointerup", end);
    surface.addEventListener("pointercancel", end);
    surface.addEventListener("lostpointercapture", end);

    // Keyboards and screen readers: the native input moves, and says so with "input".
    el.addEventListener("input", () => {
      paintFader(rec);
      api.queue(rec, el.valueAsNumber);
    });
    el.addEventListener("change", () => api.flush(rec));
    const keys = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End"]);
    el.addEventListener("keydown", (event) => {
      if (!keys.has(event.key)) return;
      if (!event.repeat) api.startGesture(rec);
      api.hold(rec, "key");
      if (wrap.dataset.travel) stepAlong(event);
    });

    /** A key on a curved fader: a hundredth of the travel (a page: a tenth), at least one step, not of min..max. */
    function stepAlong(event) {
      event.preventDefault();
      const up = ["ArrowRight", "ArrowUp", "PageUp", "End"].includes(event.key);
      const now = el.valueAsNumber;
      let value;
      if (event.key === "Home" || event.key === "End") value = up ? hi : lo;
      else value = travel.from(clamp01(travel.at(now) + (up ? 1 : -1) * (event.key.startsWith("Page") ? 0.1 : 0.01)));
      const step = Number(el.step) || 0;
      if (step && Math.abs(value - now) < step) value = now + (up ? step : -step);
      if (setFader(rec, Math.min(hi, Math.max(lo, value)))) api.queue(rec, el.valueAsNumber);
    }
    el.addEventListener("keyup", (event) => {
      if (keys.has(event.key)) api.release(rec, "key");
    });
    el.addEventListener("blur", () => api.release(rec, "key"));
  }

  const fader = {
    wire: wireFader,
    shown: (rec) => rec.el.valueAsNumber,
    show: (rec, value) => setFader(rec, value),
  };

  // ---- Switches --------------------------------------------------------------

  // A tap, acted on at its pointerup: a browser makes no click of a tap while another finger is
  // down (a fader held with the other hand), so a toggle or a select waiting for one did nothing.
  // The click that follows a lone tap is then swallowed; a keyboard's click (detail 0) goes its way.
  function onTap(area, act) {
    const downs = new Map();
    let tappedAt = -Infinity;
    area.addEventListener("pointerdown", (event) => {
      if (event.pointerType === "mouse" && event.button !== 0) return;
      downs.set(event.pointerId, event.target);
    });
    area.addEventListener("pointercancel", (event) => downs.delete(event.pointerId)); // a scroll
    area.addEventListener("pointerup", (event) => {
      const target = downs.get(event.pointerId);
      downs.delete(event.pointerId);
      if (!target || !inside(area, event)) return; // slid off: no tap, as with a click
      if (act(target) !== false) tappedAt = performance.now();
    });
    area.addEventListener(
      "click",
      (event) => {
        if (event.detail !== 0 && performance.now() - tappedAt < TAP_CLICK_MS) {
          event.preventDefault(); // (a checkbox's own flip undone: the tap flipped it)
          event.stopImmediatePropagation();
        }
      },
      true,
    );
  }

  const toggle = {
    wire(rec, api) {
      rec.state = rec.wrap.querySelector(".state");
      const flip = (checked) => {
        rec.el.checked = checked;
        toggle.paint(rec);
        api.sendNow(rec, checked ? 1 : 0);
      };
      rec.el.addEventListener("change", () => flip(rec.el.checked)); // the keyboard's way
      onTap(rec.wrap, () => {
        if (rec.el.disabled || api.picking()) return false;
        flip(!rec.el.checked);
      });
    },
    paint(rec) {
      if (rec.state) rec.state.textContent = rec.el.checked ? "On" : "Off";
    },
    shown: (rec) => (rec.el.checked ? 1 : 0),
    show(rec, value) {
      rec.el.checked = value === 1 || value === true;
      toggle.paint(rec);
    },
  };

  function paintPad(rec, pressed) {
    rec.el.setAttribute("aria-pressed", pressed ? "true" : "false");
  }

  function inside(el, event) {
    const box = el.getBoundingClientRect();
    const m = 4;
    return (
      event.clientX >= box.left - m &&
      event.clientX <= box.right + m &&
      event.clientY >= box.top - m &&
      event.clientY <= box.bottom + m
    );
  }

  const button = {
    wire(rec, api) {
      const el = rec.el;
      rec.trigger = rec.wrap.dataset.mode === "trigger";
      rec.confirm = rec.wrap.dataset.confirm === "true";
      rec.armedTimer = 0;

      function disarm() {
        clearTimeout(rec.armedTimer);
        rec.armedTimer = 0;
        delete rec.wrap.dataset.armed;
      }

      rec.swallowing = new Set(); // touches that arm (or came with the one that did): their release sends nothing
      function press(token) {
        const first = rec.holds.size === 0;
        if (first && rec.confirm) {
          // Dangerous cues (GO, blackout) need a second tap while armed: a tap of its own, after the
          // arming touch lifted and not a bounce of it. A palm or two fingers landing at once are one.
          const soon = rec.wrap.dataset.armed && performance.now() - rec.armedAt < CONFIRM_GAP_MS;
          if (rec.swallowing.size > 0 || soon) {
            rec.swallowing.add(token);
            return;
          }
          if (!rec.wrap.dataset.armed) {
            rec.wrap.dataset.armed = "true";
            rec.armedAt = performance.now();
            rec.armedTimer = setTimeout(disarm, CONFIRM_MS);
            rec.swallowing.add(token);
            return;
          }
        }
        disarm();
        api.hold(rec, token);
        if (!first) return;
        paintPad(rec, true);
        api.sendNow(rec, 1, true); // down already (another phone holds it): the bridge must know this one does too
      }

      function lift(token) {
        if (rec.swallowing.delete(token)) return;
        if (!rec.holds.has(token)) return;
        if (rec.holds.size === 1) {
          paintPad(rec, false);
          if (!rec.trigger) api.sendNow(rec, 0);
        }
        api.release(rec, token); // the last finger: settle, and a reload that came meanwhile
      }
      rec.lift = lift;

      el.addEventListener("pointerdown", (event) => {
        if (el.disabled || api.picking()) return;
        if (event.pointerType === "mouse" && event.button !== 0) return;
        try {
          el.setPointerCapture(event.pointerId); // the release reaches this pad wherever the finger lifts
        } catch (err) {
          /* the pointer is already gone */
        }
        press("pointer:" + event.pointerId);
      });
      el.addEventListener("pointermove", (event) => {
        const token = "pointer:" + event.pointerId;
        if (!rec.holds.has(token) || inside(el, event)) return;
        // Slid off the pad: released, as a hardware pad would be.
        if (el.hasPointerCapture(event.pointerId)) el.releasePointerCapture(event.pointerId);
        lift(token);
      });
      const end = (event) => lift("pointer:" + event.pointerId);
      el.addEventListener("pointerup", end);
      el.addEventListener("pointercancel", end);
      el.addEventListener("lostpointercapture", end);
      el.addEventListener("contextmenu", (event) => event.preventDefault());
      const isPressKey = (event) => event.key === " " || event.key === "Enter";
      el.addEventListener("keydown", (event) => {
        if (!isPressKey(event)) return;
        event.preventDefault();
        if (!event.repeat) press("key");
      });
      el.addEventListener("keyup", (event) => {
        if (!isPressKey(event)) return;
        event.preventDefault();
        lift("key");
      });
      el.addEventListener("blur", () => lift("key"));
    },
    release(rec, token) {
      rec.lift(token);
    },
    shown: (rec) => (rec.el.getAttribute("aria-pressed") === "true" ? 1 : 0),
    show(rec, value) {
      const pressed = value === 1 || value === true;
      if (!rec.trigger) {
        paintPad(rec, pressed);
        return;
      }
      if (!pressed) return;
      // Fired elsewhere: a flash, then back (nothing is held).
      rec.wrap.classList.add("fired");
      setTimeout(() => rec.wrap.classList.remove("fired"), FLASH_MS);
    },
  };

  // ---- Selects ---------------------------------------------------------------

  const select = {
    wire(rec, api) {
      if (rec.el.tagName === "SELECT") {
        rec.el.addEventListener("change", () => api.sendNow(rec, JSON.parse(rec.el.value)));
        return;
      }
      const choices = () => Array.from(rec.el.querySelectorAll('[role="radio"]'));
      const choose = (target) => {
        const choice = target.closest('[role="radio"]');
        if (!choice || choice.disabled || api.picking()) return false;
        const value = JSON.parse(choice.dataset.value);
        select.show(rec, value);
        api.sendNow(rec, value);
      };
      rec.el.addEventListener("click", (event) => choose(event.target)); // the keyboard's way
      onTap(rec.el, choose);
      rec.el.addEventListener("keydown", (event) => {
        const moves = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };
        if (!(event.key in moves)) return;
        event.preventDefault();
        const all = choices();
        const at = all.indexOf(document.activeElement);
        const next = all[(at + moves[event.key] + all.length) % all.length];
        if (!next || next.disabled) return;
        next.focus();
        next.click(); // a radio group selects what gets focus
      });
    },
    shown(rec) {
      if (rec.el.tagName === "SELECT") return JSON.parse(rec.el.value);
      const on = rec.el.querySelector('[aria-checked="true"]');
      return on ? JSON.parse(on.dataset.value) : null;
    },
    show(rec, value) {
      if (rec.el.tagName === "SELECT") {
        const option = Array.from(rec.el.options).find((o) => same(JSON.parse(o.value), value));
        if (option) option.selected = true;
        return;
      }
      rec.el.querySelectorAll('[role="radio"]').forEach((choice) => {
        const on = same(JSON.parse(choice.dataset.value), value);
        choice.setAttribute("aria-checked", on ? "true" : "false");
        choice.tabIndex = on ? 0 : -1;
      });
    },
  };

  // ---- Text ------------------------------------------------------------------

  const TEXT_DEBOUNCE_MS = 150;
  const TEXT_MAX_WAIT_MS = 600;

  const text = {
    wire(rec, api) {
      const el = rec.el;
      rec.textTimer = 0;
      rec.textSince = 0;
      const typed = (event) => {
        // Held while typing: a change from elsewhere waits until Enter or blur.
        api.hold(rec, "typing");
        if (event.isComposing) return; // half-built characters (an input method) are not sent
        rec.pending = el.value;
        rec.hasPending = true;
        const now = window.performance.now();
        if (!rec.textSince) rec.textSince = now;
        clearTimeout(rec.textTimer);
        const wait = Math.max(0, Math.min(TEXT_DEBOUNCE_MS, rec.textSince + TEXT_MAX_WAIT_MS - now));
        rec.textTimer = setTimeout(() => text.send(rec, api), wait);
      };
      el.addEventListener("input", typed);
      el.addEventListener("compositionend", typed);
      el.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" || event.isComposing) return;
        event.preventDefault();
        // Enter sends what the field shows, even over a newer change from elsewhere.
        rec.pending = el.value;
        rec.hasPending = true;
        text.send(rec, api);
        api.release(rec, "typing");
      });
      el.addEventListener("blur", () => {
        text.send(rec, api);
        api.release(rec, "typing");
      });
    },
    release(rec, token, api) {
      text.send(rec, api);
      api.release(rec, token);
    },
    send(rec, api) {
      clearTimeout(rec.textTimer);
      rec.textTimer = 0;
      rec.textSince = 0;
      api.flush(rec);
    },
    shown: (rec) => rec.el.value,
    show(rec, value) {
      if (rec.el.value !== String(value)) rec.el.value = String(value);
    },
  };

  // ---- Displays: labels, meters, LEDs -----------------------------------------

  const label = {
    wire(rec) {
      rec.decimals = decimalsOf(rec.el);
      rec.unit = rec.el.dataset.unit || "";
      rec.value = rec.el.value;
    },
    shown: (rec) => rec.value,
    show(rec, value) {
      rec.value = value;
      rec.el.textContent = format(value, rec.decimals, rec.unit);
    },
  };

  const meter = {
    wire(rec) {
      rec.num = rec.wrap.querySelector(".value .num");
      rec.decimals = Number(rec.el.dataset.decimals) || 0;
      rec.hold = Number(rec.wrap.dataset.peakHold || 0) * 1000;
      rec.peak = null;
      rec.peakTimer = 0;
      meter.paint(rec, rec.el.value);
    },
    paint(rec, value) {
      const lo = Number(rec.el.min);
      const hi = Number(rec.el.max);
      const at = (v) => String(hi > lo ? Math.min(1, Math.max(0, (v - lo) / (hi - lo))) : 0);
      rec.wrap.style.setProperty("--p", at(value));
      rec.num.textContent = format(value, rec.decimals, null);
      if (!rec.hold) return;
      if (rec.peak === null || value >= rec.peak) {
        rec.peak = value;
        clearTimeout(rec.peakTimer);
        rec.peakTimer = setTimeout(() => {
          rec.peak = null;
          meter.paint(rec, rec.el.value);
        }, rec.hold);
      }
      rec.wrap.style.setProperty("--peak", at(rec.peak));
    },
    shown: (rec) => rec.el.value,
    show(rec, value) {
      rec.el.value = value;
      meter.paint(rec, value);
    },
  };

  const led = {
    wire(rec) {
      rec.colors = rec.wrap.dataset.colors ? JSON.parse(rec.wrap.dataset.colors) : null;
      rec.name = rec.wrap.querySelector(".name");
      rec.value = JSON.parse(rec.el.dataset.value);
    },
    shown: (rec) => rec.value,
    show(rec, value) {
      rec.value = value;
      rec.el.dataset.value = JSON.stringify(value);
      let lit = null;
      if (rec.colors) {
        rec.colors.forEach(([threshold, color]) => {
          if (typeof value === "number" && value >= threshold) lit = color;
        });
      } else if (value) {
        lit = rec.wrap.dataset.color || null;
      }
      if (lit) rec.el.style.setProperty("--lamp", lit);
      else rec.el.style.removeProperty("--lamp");
      const state = rec.colors ? String(value) : value ? "on" : "off";
      rec.el.setAttribute("aria-label", rec.name.textContent + ": " + state);
    },
  };

  /** Where ``value`` stands on the travel of the fader or knob in ``wrap``, 0-1 (the MIDI ghost's mark). */
  window.stageTravel = (wrap, value) => {
    const input = wrap.querySelector('input[type="range"]');
    return travelOf(wrap, Number(input.min), Number(input.max)).at(value);
  };

  window.stageKinds = Object.freeze({
    range: fader,
    knob: fader,
    toggle: toggle,
    button: button,
    select: select,
    text: text,
    label: label,
    meter: meter,
    led: led,
  });
})();
