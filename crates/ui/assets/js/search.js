// The search page: query box (errors marked where they are, as you type),
// time range, histogram, counts by service and level, the newest events with
// older pages loaded on scroll, and the live tail. The URL holds the query
// and range, so a link reproduces the view.

import { api } from "./api.js";
import { LEVELS, describe, fill, formatCount, h } from "./dom.js";
import { addTerm, charIndex, eventRow, filterTerm } from "./events.js";
import { chooseInterval, drawHistogram } from "./histogram.js";
import { openTail } from "./tail.js";
import { parseExact, plain } from "./canonical.js";

const RANGES = [
  ["15m", "Last 15 minutes", 15 * 60000],
  ["1h", "Last hour", 3600000],
  ["24h", "Last 24 hours", 86400000],
  ["7d", "Last 7 days", 7 * 86400000],
  ["all", "All time", null],
  ["custom", "Custom", null],
];
const PAGE = 100;
/** Searches rendered since the page loaded: `#main[data-rendered]` tells tests a search finished. */
let rendered = 0;
/** Rows kept on the page while live; older ones are let go. */
const LIVE_ROWS = 2000;
/** Events held while the tail is paused; more are counted as dropped. */
const PAUSED_EVENTS = 5000;

/** The view the URL describes: {q, range, from, to}. */
export function readView(params) {
  const range = RANGES.some(([id]) => id === params.get("range")) ? params.get("range") : "1h";
  // A time the URL spells wrongly is left out rather than breaking the page.
  const time = (name) => (Number.isNaN(Date.parse(params.get(name) || "")) ? "" : params.get(name));
  return { q: params.get("q") || "", range, from: time("from"), to: time("to") };
}

function viewHash(view) {
  const params = new URLSearchParams();
  if (view.q) params.set("q", view.q);
  params.set("range", view.range);
  if (view.range === "custom") {
    if (view.from) params.set("from", view.from);
    if (view.to) params.set("to", view.to);
  }
  return `#/search?${params}`;
}

/** datetime-local's value for epoch ms, in local time. */
function localInput(ms) {
  const date = new Date(ms);
  const shifted = new Date(ms - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 19);
}

/** Renders the page into `root` for the view in `params`; returns a cleanup. */
export function searchPage(root, params) {
  const view = readView(params);
  let generation = 0;
  let controller = null;
  let cursor = null;
  let loading = false;
  /** Whether the live tail is on (the user's choice); `tail` is its connection, once open. */
  let live = false;
  let tail = null;
  let typingTimer = null;
  /** The bounds of the search on screen, which its older pages keep. */
  let shown = null;

  const input = h("input", {
    id: "q",
    type: "search",
    value: view.q,
    placeholder: 'level:>=warn service:sshd "connection closed"',
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "q-error",
  });
  const error = h("div", { id: "q-error", class: "query-error", "aria-live": "polite" });
  const range = h(
    "select",
    { id: "range" },
    RANGES.map(([id, label]) => h("option", { value: id, selected: id === view.range }, label)),
  );
  const fromInput = h("input", { id: "from", type: "datetime-local", step: 1 });
  const toInput = h("input", { id: "to", type: "datetime-local", step: 1 });
  if (view.from) fromInput.value = localInput(Date.parse(view.from));
  if (view.to) toInput.value = localInput(Date.parse(view.to));
  const custom = h(
    "span",
    { class: "custom-range", hidden: view.range !== "custom" },
    h("label", { for: "from" }, "From"),
    fromInput,
    h("label", { for: "to" }, "To"),
    toInput,
  );
  const liveButton = h("button", { type: "button", id: "live", class: "toggle", "aria-pressed": "false" }, "Live tail");
  const zoomOut = h("button", { type: "button", id: "zoom-out", title: "Twice the time span, around the same middle (up to now)" }, "Zoom out");
  const form = h(
    "form",
    { class: "query-bar", role: "search" },
    h("label", { for: "q", class: "visually-hidden" }, "Query"),
    h("div", { class: "query-field" }, input, error),
    h("label", { for: "range", class: "visually-hidden" }, "Time range"),
    range,
    custom,
    h("button", { type: "submit", class: "primary" }, "Search"),
    zoomOut,
    liveButton,
  );
  const summary = h("div", { class: "summary", id: "summary", "aria-live": "polite" });
  const liveStatus = h("div", { class: "live-status", id: "live-status", hidden: true, "aria-live": "polite" });
  const histogram = h("div", { class: "histogram", id: "histogram" });
  const services = h("div", { class: "bars", id: "stats-services" });
  const levels = h("div", { class: "bars", id: "stats-levels" });
  const rows = h("div", { class: "rows", id: "rows" });
  const sentinel = h("div", { class: "sentinel" });
  const results = h("div", { class: "results", id: "results", tabindex: -1 }, rows, sentinel);
  fill(
    root,
    h(
      "section",
      { class: "page search-page", "aria-label": "Search" },
      form,
      h("div", { class: "status-line" }, summary, liveStatus),
      histogram,
      h(
        "div",
        { class: "columns" },
        h(
          "aside",
          { class: "stats", "aria-label": "Counts" },
          h("h2", {}, "Services"),
          services,
          h("h2", {}, "Levels"),
          levels,
        ),
        results,
      ),
    ),
  );

  /** Applies a new view: into the URL (a history entry when `push`) and the page. */
  const apply = async (push) => {
    view.q = input.value;
    view.range = range.value;
    custom.hidden = view.range !== "custom";
    if (view.range === "custom") {
      view.from = fromInput.value ? new Date(fromInput.value).toISOString() : "";
      view.to = toInput.value ? new Date(toInput.value).toISOString() : "";
    }
    const hash = viewHash(view);
    if (hash !== location.hash) {
      if (push) history.pushState(null, "", hash);
      else history.replaceState(null, "", hash);
    }
    // A live tail restarts after the search has drawn its rows, so they do not replace what it shows.
    await run();
    if (live) startTail();
  };

  const addFilter = (term) => {
    input.value = addTerm(input.value, term);
    // The clicked value's row is about to be redrawn: keep the keyboard's place in the query.
    input.focus();
    apply(true);
  };

  /** The concrete [from, to) of the view at this moment, epoch ms (from may be null: all time). */
  const bounds = () => {
    const now = Date.now();
    const relative = RANGES.find(([id]) => id === view.range)[2];
    if (relative) return { from: now - relative, to: null, end: now };
    if (view.range === "custom") {
      const from = view.from ? Date.parse(view.from) : null;
      const to = view.to ? Date.parse(view.to) : null;
      return { from, to, end: to ?? now };
    }
    return { from: null, to: null, end: now };
  };

  const showError = (failure) => {
    if (failure.name === "AbortError") return;
    const where = failure.where;
    if (where && where.parameter === "q" && typeof where.position === "number") {
      const q = input.value;
      const at = charIndex(q, where.position);
      input.setAttribute("aria-invalid", "true");
      fill(
        error,
        h(
          "code",
          { class: "query-echo", "aria-hidden": "true" },
          q.slice(0, at),
          h("mark", { class: "error-at" }, q.slice(at, at + 1) || " "),
          q.slice(at + 1),
        ),
        h("span", { class: "error-message" }, `${failure.message} (at character ${at + 1})`),
      );
      error.dataset.position = String(at);
    } else {
      fill(error, h("span", { class: "error-message" }, describe(failure)));
      delete error.dataset.position;
    }
  };

  const clearError = () => {
    input.removeAttribute("aria-invalid");
    error.replaceChildren();
    delete error.dataset.position;
  };

  const iso = (ms) => (ms === null || ms === undefined ? undefined : new Date(ms).toISOString());

  const run = async () => {
    const mine = ++generation;
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    const { from, to, end } = bounds();
    const query = { q: view.q, from: iso(from), to: iso(to) };
    shown = query;
    // The old cursor belongs to the old query: no older page until this one's arrives.
    cursor = null;
    const started = performance.now();
    // With "all time" the histogram starts at the oldest match, which takes a query first.
    const oldest = from === null
      ? api("GET", "/v1/logs", { query: { ...query, limit: 1, order: "asc" }, signal }).then((answer) =>
          answer.events.length ? Date.parse(answer.events[0].timestamp) : end - 3600000)
      : Promise.resolve(from);
    const counts = oldest.then((start) => histogramOf(start, Math.max(end, start + 1000), signal));
    try {
      const [page, stats, buckets] = await Promise.all([
        api("GET", "/v1/logs", { query: { ...query, limit: PAGE }, signal, exact: true }),
        api("GET", "/v1/stats", { query, signal }),
        counts,
      ]);
      if (mine !== generation) return;
      clearError();
      cursor = page.next_cursor;
      fill(rows, page.events.map((event) => eventRow(event, addFilter)));
      if (!page.events.length) rows.append(h("p", { class: "empty" }, "No events match."));
      results.scrollTop = 0;
      fill(
        summary,
        h("strong", { id: "total" }, formatCount(stats.total)),
        ` event${stats.total === 1 ? "" : "s"} · ${Math.round(performance.now() - started)} ms`,
        (page.warnings || []).map((text) => h("span", { class: "warning" }, ` · ${text}`)),
      );
      drawStats(stats);
      drawHistogram(histogram, { ...buckets, onZoom: zoom });
      root.dataset.rendered = String(++rendered);
    } catch (failure) {
      if (mine === generation) showError(failure);
    }
  };

  /** The matches per bucket over [start, end): what drawHistogram takes. */
  const histogramOf = async (start, end, signal) => {
    const interval = chooseInterval(start, end);
    const answer = await api("GET", "/v1/logs/histogram", {
      query: { q: view.q, from: iso(start), to: iso(end), interval: interval.text },
      signal,
    });
    return { buckets: answer.buckets, from: start, to: end, intervalMs: interval.ms };
  };

  const zoom = (a, b) => {
    range.value = "custom";
    fromInput.value = localInput(a);
    toInput.value = localInput(b);
    custom.hidden = false;
    // The view keeps the exact span; the fields show it to the second.
    Object.assign(view, { q: input.value, range: "custom", from: iso(a), to: iso(b) });
    history.pushState(null, "", viewHash(view));
    run().then(() => live && startTail());
  };

  const drawStats = (stats) => {
    const bar = (field, name, count, max) =>
      h(
        name ? "button" : "div",
        {
          type: name ? "button" : null,
          class: `stat level-${field === "level" ? name : ""}`,
          title: name ? `Add ${filterTerm(field, name)} to the query` : "events without a service",
          onclick: name ? () => addFilter(filterTerm(field, name)) : null,
        },
        h("span", { class: "stat-name" }, name || "(none)"),
        h("span", { class: "stat-bar", "aria-hidden": "true" }, h("span", { class: "stat-fill", dataset: { ratio: count / max } })),
        h("span", { class: "stat-count" }, formatCount(count)),
      );
    const serviceEntries = Object.entries(stats.by_service).sort((a, b) => b[1] - a[1]).slice(0, 12);
    const serviceMax = Math.max(1, ...serviceEntries.map(([, n]) => n));
    fill(services, serviceEntries.map(([name, n]) => bar("service", name, n, serviceMax)));
    const levelEntries = LEVELS.filter((name) => stats.by_level[name]).map((name) => [name, stats.by_level[name]]);
    const levelMax = Math.max(1, ...levelEntries.map(([, n]) => n));
    fill(levels, levelEntries.map(([name, n]) => bar("level", name, n, levelMax)));
    // Widths through the CSSOM: the Content-Security-Policy allows no inline style attributes.
    for (const fillEl of root.querySelectorAll(".stat-fill")) {
      fillEl.style.width = `${Math.round(Number(fillEl.dataset.ratio) * 100)}%`;
    }
  };

  const loadMore = async () => {
    if (loading || !cursor) return;
    loading = true;
    const mine = generation;
    try {
      const page = await api("GET", "/v1/logs", { query: { ...shown, limit: PAGE, cursor }, exact: true });
      if (mine !== generation) return;
      cursor = page.next_cursor;
      rows.append(...page.events.map((event) => eventRow(event, addFilter)));
    } catch (failure) {
      showError(failure);
    } finally {
      loading = false;
    }
  };
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadMore();
  }, { root: results, rootMargin: "400px" });
  observer.observe(sentinel);

  // The live tail: new events on top; paused while the user reads further down.
  let received = 0;
  let dropped = 0;
  let pending = [];
  const paused = () => results.scrollTop > 4;
  const showLive = (note) => {
    liveStatus.hidden = false;
    const parts = [`Live · ${formatCount(received)} received`];
    if (dropped) parts.push(`${formatCount(dropped)} dropped`);
    if (pending.length) parts.push(`paused: ${formatCount(pending.length)} waiting (scroll to the top to resume)`);
    if (note) parts.push(note);
    liveStatus.textContent = parts.join(" · ");
  };
  const prepend = (texts) => {
    const fresh = texts.map((text) => eventRow(plain(parseExact(text)), addFilter)).reverse();
    const empty = rows.querySelector(".empty");
    if (empty) empty.remove();
    rows.prepend(...fresh);
    if (rows.children.length > LIVE_ROWS) {
      while (rows.children.length > LIVE_ROWS) rows.lastElementChild.remove();
      cursor = null; // rows were let go: older pages would leave a gap
    }
  };
  results.addEventListener("scroll", () => {
    if (live && !paused() && pending.length) {
      const held = pending;
      pending = [];
      prepend(held);
      showLive();
    }
  });
  let attempt = 0;
  const setLive = (on) => {
    live = on;
    liveButton.setAttribute("aria-pressed", String(on));
  };
  /** (Re)opens the tail for the current query; a newer call supersedes an unfinished one. */
  const startTail = async () => {
    stopTail();
    const mine = ++attempt;
    received = 0;
    dropped = 0;
    pending = [];
    delete liveStatus.dataset.state;
    showLive("connecting…");
    try {
      const opened = await openTail("logs", view.q, {
        onOpen: () => {
          if (mine !== attempt) return;
          liveStatus.dataset.state = "open";
          showLive();
        },
        onEvent: (text) => {
          if (mine !== attempt) return;
          received++;
          if (paused()) {
            if (pending.length < PAUSED_EVENTS) pending.push(text);
            else dropped++;
          } else {
            prepend([text]);
          }
          showLive();
        },
        onDropped: (n) => {
          if (mine !== attempt) return;
          dropped += n;
          showLive();
        },
        onMissed: () => mine === attempt && showLive("the server fell behind; some events may be missing"),
        onClose: (reason) => {
          if (mine !== attempt) return;
          tail = null;
          delete liveStatus.dataset.state;
          setLive(false);
          showLive(`stopped: ${reason}`);
        },
      });
      if (mine !== attempt || !live) opened.close();
      else tail = opened;
    } catch (failure) {
      if (mine !== attempt) return;
      setLive(false);
      showLive(`could not start: ${describe(failure)}`);
    }
  };
  const stopTail = () => {
    attempt++;
    if (tail) tail.close();
    tail = null;
  };
  liveButton.addEventListener("click", () => {
    if (live) {
      setLive(false);
      stopTail();
      liveStatus.hidden = true;
      run();
    } else {
      setLive(true);
      startTail();
    }
  });

  // The keyboard's way to change the span the histogram shows (dragging zooms in).
  zoomOut.addEventListener("click", () => {
    const { from, end } = bounds();
    const start = from ?? end - 3600000;
    const middle = (start + end) / 2;
    const half = end - start;
    zoom(Math.round(middle - half), Math.round(Math.min(Date.now(), middle + half)));
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(typingTimer);
    apply(true);
  });
  input.addEventListener("input", () => {
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => apply(false), 250);
  });
  range.addEventListener("change", () => {
    if (range.value === "custom" && !fromInput.value) {
      const now = Date.now();
      fromInput.value = localInput(now - 3600000);
      toInput.value = localInput(now);
    }
    apply(true);
  });
  fromInput.addEventListener("change", () => apply(true));
  toInput.addEventListener("change", () => apply(true));

  if (location.hash !== viewHash(view)) history.replaceState(null, "", viewHash(view));
  run();
  input.focus();
  return () => {
    clearTimeout(typingTimer);
    observer.disconnect();
    stopTail();
    if (controller) controller.abort();
  };
}
