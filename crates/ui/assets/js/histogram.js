// The histogram of matches over the range: SVG bars, a tooltip per bar, and
// click-drag to zoom into a time span (from the keyboard, the range fields do it).

import { formatCount, formatTime, h, svg } from "./dom.js";

const WIDTH = 1000;
const HEIGHT = 120;

const UNITS = [
  ["d", 86400000],
  ["h", 3600000],
  ["m", 60000],
  ["s", 1000],
  ["ms", 1],
];

/** An interval giving about `target` buckets over [from, to): {text, ms}. */
export function chooseInterval(from, to, target = 100) {
  const want = Math.max(1, Math.ceil((to - from) / target));
  for (const [unit, ms] of UNITS) {
    if (want >= ms) {
      const count = Math.ceil(want / ms);
      return { text: `${count}${unit}`, ms: count * ms };
    }
  }
  return { text: "1ms", ms: 1 };
}

/**
 * Draws `buckets` ({start, count}) of width `intervalMs` over [from, to) in
 * `container`; `onZoom(from, to)` is called with the span the user selects.
 */
export function drawHistogram(container, { buckets, from, to, intervalMs, onZoom }) {
  const span = Math.max(1, to - from);
  const x = (t) => ((t - from) / span) * WIDTH;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const bars = buckets.map((bucket) => {
    const start = Date.parse(bucket.start);
    const left = Math.max(0, x(start));
    const width = Math.max(1, x(start + intervalMs) - left - 0.5);
    const height = Math.max(1, (bucket.count / max) * (HEIGHT - 4));
    return svg(
      "rect",
      { x: left, y: HEIGHT - height, width, height, class: "bar" },
      svg("title", {}, `${formatTime(start)}: ${formatCount(bucket.count)}`),
    );
  });
  const selection = svg("rect", { class: "selection", x: 0, y: 0, width: 0, height: HEIGHT, visibility: "hidden" });
  const chart = svg(
    "svg",
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      preserveAspectRatio: "none",
      class: "histogram-chart",
      role: "img",
      "aria-label": `Matches over time: ${buckets.length} buckets, at most ${max} in one`,
    },
    bars,
    selection,
  );
  const toTime = (event) => {
    const box = chart.getBoundingClientRect();
    const ratio = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    return from + ratio * span;
  };
  let anchor = null;
  chart.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    anchor = toTime(event);
    chart.setPointerCapture(event.pointerId);
    selection.setAttribute("visibility", "visible");
    selection.setAttribute("x", x(anchor));
    selection.setAttribute("width", 0);
  });
  chart.addEventListener("pointermove", (event) => {
    if (anchor === null) return;
    const now = toTime(event);
    selection.setAttribute("x", x(Math.min(anchor, now)));
    selection.setAttribute("width", Math.abs(x(now) - x(anchor)));
  });
  chart.addEventListener("pointerup", (event) => {
    if (anchor === null) return;
    const end = toTime(event);
    const [a, b] = [Math.min(anchor, end), Math.max(anchor, end)];
    anchor = null;
    selection.setAttribute("visibility", "hidden");
    // A click without a drag zooms into the bucket under the pointer
    // (the store aligns buckets to multiples of the interval since the epoch).
    if (x(b) - x(a) < 3) {
      const start = Math.floor(a / intervalMs) * intervalMs;
      onZoom(Math.max(from, start), Math.min(to, start + intervalMs));
    } else {
      onZoom(Math.round(a), Math.round(b));
    }
  });
  chart.addEventListener("pointercancel", () => {
    anchor = null;
    selection.setAttribute("visibility", "hidden");
  });
  const axis = h(
    "div",
    { class: "histogram-axis" },
    h("span", {}, formatTime(from)),
    h("span", {}, `${intervalMsText(intervalMs)} per bar · drag to zoom`),
    h("span", {}, formatTime(to)),
  );
  container.replaceChildren(chart, axis);
}

function intervalMsText(ms) {
  for (const [unit, size] of UNITS) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
