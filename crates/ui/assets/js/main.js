// The UI's entry: signs in, draws the navigation the caller's permissions
// allow, and routes `#/page?params` to the page that renders it.

import { can, current, logout, onSessionChange } from "./api.js";
import { fill, h } from "./dom.js";
import { loginPage } from "./login.js";
import { searchPage } from "./search.js";
import { auditPage, checkpointPage } from "./audit.js";
import { adminPage, ADMIN_SECTIONS } from "./admin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let cleanup = null;

/** The pages, who may see them, and how to draw them. */
const PAGES = [
  { path: "search", label: "Search", allowed: () => can("logs:read"), render: searchPage },
  { path: "audit", label: "Audit trail", allowed: () => can("audit:read"), render: auditPage },
  { path: "checkpoint", label: "Checkpoint", allowed: () => can("audit:read"), render: checkpointPage },
  ...ADMIN_SECTIONS.map((section) => ({
    path: `admin/${section.path}`,
    label: section.label,
    allowed: () => can(section.permission),
    render: (root, params) => adminPage(root, section, params),
    admin: true,
  })),
];

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const at = hash.indexOf("?");
  const path = at < 0 ? hash : hash.slice(0, at);
  return { path, params: new URLSearchParams(at < 0 ? "" : hash.slice(at + 1)) };
}

function drawNav() {
  const session = current();
  if (!session) {
    nav.replaceChildren();
    return;
  }
  const { path } = route();
  const link = (page) =>
    h(
      "a",
      { href: `#/${page.path}`, "aria-current": path === page.path ? "page" : null, class: page.admin ? "admin-link" : null },
      page.label,
    );
  const me = session.me;
  const who = me.type === "user" ? `${me.username} (${me.role})` : `key ${me.name}`;
  fill(
    nav,
    h("a", { href: "#/search", class: "brand" }, "Logbook"),
    h("div", { class: "nav-links" }, PAGES.filter((page) => page.allowed()).map(link)),
    h(
      "div",
      { class: "who" },
      h("span", { id: "who" }, `${who} · tenant ${me.tenant}`),
      h("button", { type: "button", id: "sign-out", onclick: () => logout() }, "Sign out"),
    ),
  );
}

function render() {
  if (cleanup) cleanup();
  cleanup = null;
  drawNav();
  if (!current()) {
    cleanup = loginPage(main);
    return;
  }
  const { path, params } = route();
  const allowed = PAGES.filter((page) => page.allowed());
  const page = allowed.find((candidate) => candidate.path === path);
  if (!page) {
    const known = PAGES.find((candidate) => candidate.path === path);
    if (known) {
      fill(main, h("section", { class: "page" }, h("h1", {}, "Not allowed"), h("p", {}, `Your role cannot see ${known.label}.`)));
      return;
    }
    if (allowed.length) history.replaceState(null, "", `#/${allowed[0].path}`);
    else {
      fill(main, h("section", { class: "page" }, h("p", {}, "These credentials allow no page of this UI.")));
      return;
    }
    return render();
  }
  document.title = `${page.label} · Logbook`;
  cleanup = page.render(main, params) || null;
}

// Back and forward fire popstate and (between fragments) hashchange: draw once.
let scheduled = false;
const navigated = () => {
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    render();
  }, 0);
};
document.getElementById("skip-link").addEventListener("click", () => main.focus());
onSessionChange(() => render());
window.addEventListener("popstate", navigated);
window.addEventListener("hashchange", navigated);
render();
