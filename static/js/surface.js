/* Stage Bridge page: pages as tabs, and the labels and colours a desk gives the controls.
 *
 * Runs after stage.js, on its socket (window.stageBridge.socket).
 * - Tabs: controls with the same `page` form one tab; one page shows at a
 *   time, the others stay in the document (their values keep syncing). The
 *   tab is kept in the address (#page=Name), so a reload or a reconnect
 *   keeps it, and so does a config reload ("bridge:layout").
 * - "update look" {who, label?, color?}: the desk named or coloured a control
 *   (label_from, color_from); sent on connect for every control that has one.
 */
(function () {
  "use strict";

  const bridge = window.stageBridge;
  let tabs = [];
  let pages = [];

  // ---- Tabs --------------------------------------------------------------------

  function choose(name, focus) {
    const tab = tabs.find((t) => t.dataset.page === name);
    if (!tab) return;
    tabs.forEach((t) => {
      const on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
    });
    pages.forEach((page) => {
      page.hidden = page.dataset.page !== name;
    });
    document.documentElement.dataset.page = name;
    showTab(tab);
    if (focus) tab.focus();
    const hash = "#page=" + encodeURIComponent(name);
    if (window.location.hash !== hash) window.history.replaceState(null, "", hash);
  }

  // On a phone the tab strip scrolls sideways: the page shown has its tab in sight (not the page scrolled).
  function showTab(tab) {
    const strip = tab.parentElement;
    if (!strip || strip.scrollWidth <= strip.clientWidth) return;
    const s = strip.getBoundingClientRect();
    const r = tab.getBoundingClientRect();
    if (r.left < s.left) strip.scrollLeft -= s.left - r.left + 8;
    else if (r.right > s.right) strip.scrollLeft += r.right - s.right + 8;
  }

  function fromAddress() {
    const match = /^#page=(.*)$/.exec(window.location.hash);
    return match ? decodeURIComponent(match[1]) : null;
  }

  // The tab bar sticks under the header, whatever its height (it wraps on a phone).
  const bar = document.querySelector(".bar");
  if (bar && window.ResizeObserver) {
    new ResizeObserver(() => {
      document.documentElement.style.setProperty("--bar-h", bar.offsetHeight + "px");
    }).observe(bar);
  }

  function onTabKey(event) {
    const moves = { ArrowRight: 1, ArrowLeft: -1, Home: -Infinity, End: Infinity };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const at = tabs.indexOf(document.activeElement);
    const step = moves[event.key];
    const next = step === Infinity ? tabs.length - 1 : step === -Infinity ? 0 : (at + step + tabs.length) % tabs.length;
    choose(tabs[next].dataset.page, true);
  }

  /** Find the tabs and pages (at start, and after a config reload put a new surface in place). */
  function wire() {
    tabs = Array.from(document.querySelectorAll('#tabs [role="tab"]'));
    pages = Array.from(document.querySelectorAll("#panels > .page"));
    if (!tabs.length) {
      delete document.documentElement.dataset.page;
      return;
    }
    // The tab in the address: the one chosen before a reload, or asked for by the link.
    const wanted = fromAddress();
    choose(tabs.some((t) => t.dataset.page === wanted) ? wanted : tabs[0].dataset.page, false);
  }

  wire();
  window.addEventListener("bridge:layout", wire);
  // Listened to once, on the document: the tabs themselves are replaced by a config reload.
  document.addEventListener("click", (event) => {
    const tab = event.target.closest && event.target.closest('#tabs [role="tab"]');
    if (tab) choose(tab.dataset.page, false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.target.closest && event.target.closest("#tabs")) onTabKey(event);
  });
  window.addEventListener("hashchange", () => {
    const name = fromAddress();
    if (name !== null) choose(name, false);
  });

  // ---- Looks from the desk -------------------------------------------------------

  /** Near-black text on light colours, white on dark ones (WCAG relative luminance). */
  function ink(color) {
    const channels = [1, 3, 5].map((i) => parseInt(color.slice(i, i + 2), 16) / 255);
    const [r, g, b] = channels.map((c) => (c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4)));
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 ? "#111111" : "#ffffff";
  }

  function onLook(message) {
    if (!message || typeof message.who !== "string") return;
    const wrap = document.querySelector('[data-control="' + CSS.escape(message.who) + '"]');
    if (!wrap) return;
    if (typeof message.label === "string") {
      const name = wrap.querySelector(".name") || wrap.querySelector("label");
      if (name) name.textContent = message.label;
    }
    if (typeof message.color === "string" && /^#[0-9a-f]{6}$/i.test(message.color)) {
      wrap.dataset.color = message.color;
      wrap.style.setProperty("--accent", message.color);
      wrap.style.setProperty("--on-accent", ink(message.color));
    } else if (message.color === "") {
      // The desk's colour switched off, on a control with none of its own: the theme's again.
      delete wrap.dataset.color;
      wrap.style.removeProperty("--accent");
      wrap.style.removeProperty("--on-accent");
    }
    window.dispatchEvent(new CustomEvent("bridge:look", { detail: message }));
  }

  if (bridge && bridge.socket) bridge.socket.on("update look", onLook);
})();
