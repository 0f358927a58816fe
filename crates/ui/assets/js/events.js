// One event as the UI shows it: a row (time, level, service, host, message)
// and, opened, every field and attribute as a tree whose values add
// `field:value` or `NOT field:value` to the query when clicked.

import { formatTime, h } from "./dom.js";

/** Fields shown in the row or not searchable, left out of click-to-filter. */
const NOT_FILTERABLE = new Set(["tenant", "timestamp", "received_at", "message", "seq", "stream"]);

/** A key the query language reads as one path segment; others get no filter button. */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `value` as a query value: bare when it is one plain token, quoted otherwise. */
export function queryValue(value) {
  const text = String(value);
  if (/^[A-Za-z0-9_.@/-]+$/.test(text) && !/^(AND|OR|NOT|TO)$/.test(text)) return text;
  return `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** `field:value`, negated with NOT when asked. */
export function filterTerm(field, value, negate) {
  const term = `${field}:${queryValue(value)}`;
  return negate ? `NOT ${term}` : term;
}

/** Adds `term` to `q` (ANDed with what is there). */
export function addTerm(q, term) {
  const trimmed = q.trim();
  if (!trimmed || trimmed === "*") return term;
  // Parenthesise a query with an OR outside parentheses, so the new term narrows all of it.
  return hasTopLevelOr(trimmed) ? `(${trimmed}) ${term}` : `${trimmed} ${term}`;
}

/** Whether `q` has an `OR` outside parentheses and quotes. */
function hasTopLevelOr(q) {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < q.length; i++) {
    const c = q[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (depth === 0 && q.startsWith("OR", i) && /[\s)]/.test(q[i - 1] ?? " ") && /[\s(]/.test(q[i + 2] ?? " ")) {
      return true;
    }
  }
  return false;
}

/**
 * The row of `event`; `onFilter(term)` is called when a value is clicked in
 * its opened tree. `extra` are cells added before the message (the audit
 * columns).
 */
export function eventRow(event, onFilter, extra = []) {
  const level = String(event.level || "info");
  const summary = h(
    "div",
    {
      class: `event-summary row-${level}`,
      role: "button",
      tabindex: 0,
      "aria-expanded": "false",
    },
    h("span", { class: "time" }, formatTime(event.timestamp)),
    h("span", { class: `level level-${level}` }, level.toUpperCase()),
    h("span", { class: "service" }, event.service || ""),
    h("span", { class: "host" }, event.host || ""),
    extra,
    h("span", { class: "message" }, event.message || ""),
  );
  const row = h("div", { class: "event", dataset: { id: event.id } }, summary);
  let details = null;
  const toggle = () => {
    if (details) {
      details.remove();
      details = null;
      summary.setAttribute("aria-expanded", "false");
      return;
    }
    details = h("div", { class: "event-details" }, tree(event, "", onFilter));
    row.append(details);
    summary.setAttribute("aria-expanded", "true");
  };
  summary.addEventListener("click", toggle);
  summary.addEventListener("keydown", (key) => {
    if (key.key === "Enter" || key.key === " ") {
      key.preventDefault();
      toggle();
    }
  });
  row.toggle = toggle;
  return row;
}

function tree(value, path, onFilter) {
  const entries = Object.entries(value);
  return h(
    "ul",
    { class: "tree" },
    entries.map(([key, child]) => {
      // A path the query language cannot spell (a space, a dot or a colon in a key) gets no filter.
      const full = path !== null && PLAIN_KEY.test(key) ? (path ? `${path}.${key}` : key) : null;
      if (child !== null && typeof child === "object" && !Array.isArray(child)) {
        return h("li", {}, h("span", { class: "key" }, key), tree(child, full, onFilter));
      }
      const text = Array.isArray(child) ? JSON.stringify(child) : String(child);
      const filterable =
        full !== null && !Array.isArray(child) && child !== null && text !== "" && !(path === "" && NOT_FILTERABLE.has(key));
      if (!filterable) {
        return h("li", {}, h("span", { class: "key" }, key), h("span", { class: "value" }, text));
      }
      return h(
        "li",
        {},
        h("span", { class: "key" }, key),
        h(
          "button",
          {
            type: "button",
            class: "value filter",
            title: `Add ${full}:${text} to the query`,
            onclick: () => onFilter(filterTerm(full, child, false)),
          },
          text,
        ),
        h(
          "button",
          {
            type: "button",
            class: "exclude",
            title: `Add NOT ${full}:${text} to the query`,
            "aria-label": `Exclude ${full} ${text}`,
            onclick: () => onFilter(filterTerm(full, child, true)),
          },
          "≠",
        ),
      );
    }),
  );
}

/** The character index in `q` of the UTF-8 byte offset `position`. */
export function charIndex(q, position) {
  let bytes = 0;
  let index = 0;
  for (const c of q) {
    if (bytes >= position) break;
    bytes += new TextEncoder().encode(c).length;
    index += c.length;
  }
  return index;
}
