// Small DOM helpers: build elements without innerHTML (nothing a server or a
// log line says is ever parsed as markup), and format what events hold.

/** Creates an element: h("a", {href: "#", onclick: f}, "text", child). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** "2026-12-07 16:43:23.123" in the browser's time zone. */
export function formatTime(value) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/** 1234567 as "1,234,567". */
export function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

/** The levels Logbook stores, lowest first. */
export const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

/** A short, readable message for an error thrown by api.js or the browser. */
export function describe(error) {
  if (error && error.code) return `${error.message} (${error.code})`;
  return String(error && error.message ? error.message : error);
}

/** A notice at the top of the page that goes away by itself. */
export function toast(text, kind = "info") {
  const area = document.getElementById("toasts");
  if (!area) return;
  const note = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  area.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

/** Offers `bytes` (a string or a Blob) as a downloaded file. */
export function download(name, content, type = "application/octet-stream") {
  const blob = content instanceof Blob ? content : new Blob([content], { type });
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
