// The administration pages: a tenant's users, API keys, settings and alert
// rules (tenant admins), and the server's dead letters (the super-admin), each
// a thin form over the same HTTP API the command line and scripts use.

import { api, can, current } from "./api.js";
import { describe, fill, formatTime, h, toast } from "./dom.js";

export const ADMIN_SECTIONS = [
  { path: "users", label: "Users", permission: "tenant:manage" },
  { path: "keys", label: "API keys", permission: "tenant:manage" },
  { path: "settings", label: "Settings", permission: "tenant:manage" },
  { path: "alerts", label: "Alert rules", permission: "tenant:manage" },
  { path: "dead-letters", label: "Dead letters", permission: "tenants:manage" },
];

const ROLES = ["admin", "auditor", "developer"];
const SCOPES = ["logs:write", "logs:read", "audit:write", "audit:read"];
const LETTERS_PER_PAGE = 100;

/** Renders one section of ADMIN_SECTIONS into `root`. */
export function adminPage(root, section) {
  const render = {
    users: usersSection,
    keys: keysSection,
    settings: settingsSection,
    alerts: alertsSection,
    "dead-letters": deadLettersSection,
  }[section.path];
  fill(root, h("section", { class: "page admin-page", "aria-label": section.label }, h("h1", {}, section.label), render()));
  return () => {};
}

// --- Shared pieces -----------------------------------------------------------

const path = (base, id) => `${base}/${encodeURIComponent(id)}`;
const when = (time) => (time ? formatTime(time) : "—");
const td = (...content) => h("td", {}, content);

/** A `table.data` with its header; rows go in the returned `body`. */
function dataTable(id, headers) {
  const body = h("tbody", {});
  const table = h(
    "table",
    { class: "data", id },
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    body,
  );
  return { table, body };
}

function emptyRow(columns, text) {
  return h("tr", {}, h("td", { colspan: columns, class: "muted" }, text));
}

function errorSlot(id, name) {
  return h("span", { class: "form-error", id: `${id}-error`, dataset: { field: name }, "aria-live": "polite" });
}

/** A labelled input of a form, with room for the API's complaint about it. */
function field(form, name, label, input, hint) {
  const id = `${form}-${name}`;
  input.id = id;
  input.name = name;
  input.setAttribute("aria-describedby", `${id}-error`);
  const note = hint && h("p", { class: "hint" }, hint);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, note, errorSlot(id, name));
}

function checkbox(id, name, label, value) {
  return h("div", { class: "check" }, h("input", { type: "checkbox", id, name, value }), h("label", { for: id }, label));
}

/** Shows an API error next to the field its `where.field` names, or as a toast. */
function complain(form, error) {
  const name = error && error.where && error.where.field;
  const slot = name && form.querySelector(`.form-error[data-field="${CSS.escape(name)}"]`);
  if (slot) slot.textContent = describe(error);
  else toast(describe(error), "error");
}

/** Runs `handler` on submit, with the form's buttons off meanwhile. */
function onSubmit(form, handler) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const slot of form.querySelectorAll(".form-error")) slot.textContent = "";
    const buttons = [...form.querySelectorAll("button")];
    buttons.forEach((button) => (button.disabled = true));
    try {
      await handler();
    } catch (error) {
      complain(form, error);
    } finally {
      buttons.forEach((button) => (button.disabled = false));
    }
  });
  return form;
}

/** `load`, with its failure told rather than thrown. */
function reloader(load) {
  return () => load().catch((error) => toast(describe(error), "error"));
}

/** Does a row's action, says how it went, and reloads the section either way. */
async function act(work, done, reload) {
  try {
    const answer = await work();
    toast(typeof done === "function" ? done(answer) : done);
  } catch (error) {
    toast(describe(error), "error");
  }
  await reload();
}

/** A secret the API shows only once, with a copy button. */
function secretBox(id, title, secret) {
  const copy = () =>
    navigator.clipboard.writeText(secret).then(
      () => toast("Copied."),
      (error) => toast(`Could not copy: ${describe(error)}`, "error"),
    );
  return h(
    "div",
    { class: "secret", role: "status" },
    h("p", {}, title),
    h("code", { id }, secret),
    h("div", { class: "actions" }, h("button", { type: "button", onclick: copy }, "Copy")),
    h("p", { class: "hint" }, "Copy it now: it will not be shown again."),
  );
}

// --- Users -------------------------------------------------------------------

function usersSection() {
  const { table, body } = dataTable("users-table", ["Username", "Role", "Status", "Created", "Actions"]);
  const reload = reloader(async () => {
    const { users } = await api("GET", "/v1/users");
    fill(body, users.length ? users.map((user) => userRow(user, reload)) : emptyRow(5, "No users."));
  });
  const username = h("input", { autocomplete: "off", required: true });
  const password = h("input", { type: "password", autocomplete: "new-password", required: true });
  const role = h("select", {}, ROLES.map((name) => h("option", { value: name, selected: name === "developer" }, name)));
  const form = h(
    "form",
    { id: "new-user-form", class: "form-grid", "aria-labelledby": "new-user-title" },
    field("new-user", "username", "Username", username),
    field("new-user", "password", "Password", password, "12 or more characters, 5 or more distinct, not containing the username."),
    field("new-user", "role", "Role", role),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create user")),
  );
  onSubmit(form, async () => {
    const user = await api("POST", "/v1/users", {
      body: { username: username.value, password: password.value, role: role.value },
    });
    toast(`User ${user.username} created.`);
    form.reset();
    await reload();
  });
  reload();
  return [table, h("h2", { id: "new-user-title" }, "New user"), form];
}

function userRow(user, reload) {
  const me = current().me;
  const self = me.type === "user" && me.id === user.id;
  // The API refuses changes to one's own account, and to the super-admin but by itself.
  const locked = self || (user.super_admin && !can("tenants:manage"));
  const change = (body, done) => act(() => api("PATCH", path("/v1/users", user.id), { body }), done, reload);
  // A role is changed with its own button: arrow keys on a focused select would otherwise apply each step.
  const pick = () => {
    if (select.value === user.role) return;
    if (!confirm(`Make ${user.username} ${select.value}?`)) return;
    change({ role: select.value }, `${user.username} is now ${select.value}.`);
  };
  const flip = () => {
    if (!user.disabled && !confirm(`Disable ${user.username}? Their sessions end at once.`)) return;
    change({ disabled: !user.disabled }, `${user.username} ${user.disabled ? "enabled" : "disabled"}.`);
  };
  const roles = ROLES.includes(user.role) ? ROLES : [user.role, ...ROLES];
  const options = roles.map((name) => h("option", { value: name, selected: name === user.role }, name));
  const select = h("select", { "aria-label": `Role of ${user.username}` }, options);
  const role = locked
    ? user.role
    : h("span", {}, select, " ", h("button", { type: "button", onclick: pick, "aria-label": `Change the role of ${user.username}` }, "Change"));
  const toggle = h("button", { type: "button", class: user.disabled ? null : "danger", onclick: flip }, user.disabled ? "Enable" : "Disable");
  return h(
    "tr",
    { class: user.disabled ? "muted" : null, dataset: { id: user.id } },
    td(user.username, self && " (you)", user.super_admin && h("span", { class: "hint" }, " super-admin")),
    td(role),
    td(user.disabled ? "disabled" : "active"),
    td(when(user.created_at)),
    td(locked ? null : toggle),
  );
}

// --- API keys ----------------------------------------------------------------

function keysSection() {
  const columns = ["Name", "Scopes", "Signed", "Created", "Last used", "Revoked", "Actions"];
  const { table, body } = dataTable("keys-table", columns);
  const reload = reloader(async () => {
    const { keys } = await api("GET", "/v1/keys");
    fill(body, keys.length ? keys.map((key) => keyRow(key, reload)) : emptyRow(7, "No API keys."));
  });
  const secret = h("div", { id: "new-key-box" });
  const name = h("input", { autocomplete: "off", required: true, placeholder: "checkout-service" });
  const form = h(
    "form",
    { id: "new-key-form", class: "form-grid", "aria-labelledby": "new-key-title" },
    field("new-key", "name", "Name", name),
    h(
      "fieldset",
      { "aria-describedby": "new-key-scopes-error" },
      h("legend", {}, "Scopes"),
      SCOPES.map((scope) => checkbox(`new-key-scope-${scope.replace(":", "-")}`, "scopes", scope, scope)),
      errorSlot("new-key-scopes", "scopes"),
    ),
    checkbox("new-key-signed", "signed", "Requests must be signed (HMAC)", "true"),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create key")),
  );
  onSubmit(form, async () => {
    const chosen = [...form.querySelectorAll('input[name="scopes"]:checked')].map((input) => input.value);
    const created = await api("POST", "/v1/keys", {
      body: { name: name.value, scopes: chosen, signed: form.elements.signed.checked },
    });
    fill(secret, secretBox("new-key-secret", `Key ${created.name} created. Its secret:`, created.key));
    form.reset();
    await reload();
  });
  reload();
  return [secret, table, h("h2", { id: "new-key-title" }, "New API key"), form];
}

function keyRow(key, reload) {
  const revoke = () => {
    if (!confirm(`Revoke the key ${key.name}? Whatever uses it is refused from now on.`)) return;
    act(() => api("DELETE", path("/v1/keys", key.id)), `Key ${key.name} revoked.`, reload);
  };
  return h(
    "tr",
    { class: key.revoked_at ? "muted" : null, dataset: { id: key.id } },
    td(key.name),
    td(key.scopes.join(", ")),
    td(key.signed ? "yes" : "no"),
    td(when(key.created_at)),
    td(when(key.last_used_at)),
    td(when(key.revoked_at)),
    td(key.revoked_at ? null : h("button", { type: "button", class: "danger", onclick: revoke }, "Revoke")),
  );
}

// --- Settings ----------------------------------------------------------------

const DEFAULT_HINT = "Empty: the server's default applies.";

function settingsSection() {
  const text = () => h("input", { autocomplete: "off", placeholder: "server default" });
  const inputs = { logs_retention: text(), logs_max_bytes: text(), audit_retention: text() };
  const form = h(
    "form",
    { id: "settings-form", class: "form-grid" },
    h(
      "div",
      { class: "field" },
      checkbox("settings-self_registration", "self_registration", "Self-registration", "true"),
      h("p", { class: "hint" }, "Anyone may register as a developer of this tenant."),
      errorSlot("settings-self_registration", "self_registration"),
    ),
    field("settings", "logs_retention", "Log retention", inputs.logs_retention, `An age: 30d, 36h, 2w. ${DEFAULT_HINT}`),
    field("settings", "logs_max_bytes", "Log size limit (bytes)", inputs.logs_max_bytes, `At least 1048576. ${DEFAULT_HINT}`),
    field("settings", "audit_retention", "Audit retention", inputs.audit_retention, `At least 30d. ${DEFAULT_HINT}`),
    h("p", { class: "hint" }, "The operator's caps (retention.max_logs, retention.max_logs_bytes) apply over these values."),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save")),
  );
  const registration = form.elements.self_registration;
  let loaded = {};
  const show = (settings) => {
    loaded = settings;
    registration.checked = settings.self_registration;
    for (const [name, input] of Object.entries(inputs)) input.value = settings[name] ?? "";
  };
  onSubmit(form, async () => {
    const value = (name) => inputs[name].value.trim() || null;
    // A size is a JSON number; anything else goes as typed, for the server to explain.
    const bytes = value("logs_max_bytes");
    const wanted = {
      self_registration: registration.checked,
      logs_retention: value("logs_retention"),
      logs_max_bytes: bytes && /^\d+$/.test(bytes) ? Number(bytes) : bytes,
      audit_retention: value("audit_retention"),
    };
    // Only what changed: each change is an audit event, and a save of nothing records none.
    const body = Object.fromEntries(Object.entries(wanted).filter(([name, next]) => next !== (loaded[name] ?? null)));
    if (!Object.keys(body).length) {
      toast("Nothing changed.");
      return;
    }
    show(await api("PUT", "/v1/settings", { body }));
    toast("Settings saved.");
  });
  reloader(async () => show(await api("GET", "/v1/settings")))();
  return form;
}

// --- Alert rules -------------------------------------------------------------

function alertsSection() {
  const rules = dataTable("rules-table", ["Name", "Query", "Threshold", "Window", "Interval", "Group by", "Webhook", "Actions"]);
  const alerts = dataTable("alerts-table", ["Rule", "Group", "State", "Since", "Count", "Notification"]);
  const reload = reloader(async () => {
    const [{ rules: list }, { alerts: firing }] = await Promise.all([api("GET", "/v1/alerts/rules"), api("GET", "/v1/alerts")]);
    fill(rules.body, list.length ? list.map((rule) => ruleRow(rule, reload, edit)) : emptyRow(8, "No alert rules."));
    fill(alerts.body, firing.length ? firing.map(alertRow) : emptyRow(6, "Nothing fires, nor resolved in the last 24 hours."));
  });
  const secret = h("div", { id: "new-rule-box" });
  const input = (attrs) => h("input", { autocomplete: "off", ...attrs });
  const inputs = {
    name: input({ required: true, placeholder: "payments errors" }),
    query: input({ required: true, placeholder: "level:error service:payments" }),
    threshold: input({ type: "number", min: 0, step: 1, required: true, value: 0 }),
    window: input({ required: true, placeholder: "5m" }),
    interval: input({ placeholder: "1m" }),
    group_by: h("select", {}, ["", "service", "level"].map((name) => h("option", { value: name }, name || "none"))),
    webhook: input({ type: "url", required: true, placeholder: "https://hooks.example/x" }),
  };
  const submit = h("button", { type: "submit", class: "primary" }, "Create rule");
  const cancel = h("button", { type: "button", hidden: true }, "Cancel");
  const form = h(
    "form",
    { id: "new-rule-form", class: "form-grid", "aria-labelledby": "new-rule-title" },
    field("new-rule", "name", "Name", inputs.name),
    field("new-rule", "query", "Query", inputs.query),
    field("new-rule", "threshold", "Threshold", inputs.threshold, "The rule fires when the count is above this."),
    field("new-rule", "window", "Window", inputs.window, "A duration: 30s, 5m, 2h, 1d."),
    field("new-rule", "interval", "Interval", inputs.interval, "How often it is evaluated; empty: 1m."),
    field("new-rule", "group_by", "Group by", inputs.group_by),
    field("new-rule", "webhook", "Webhook URL", inputs.webhook, "Notifications are POSTed here, signed with the rule's secret."),
    h("div", { class: "actions" }, submit, cancel),
  );
  /** The rule being edited (its id), or null while the form creates one. */
  let editing = null;
  const title = h("h2", { id: "new-rule-title" }, "New rule");
  const mode = (rule) => {
    editing = rule ? rule.id : null;
    title.textContent = rule ? `Edit rule ${rule.name}` : "New rule";
    submit.textContent = rule ? "Save rule" : "Create rule";
    cancel.hidden = !rule;
  };
  function edit(rule) {
    mode(rule);
    for (const name of ["name", "query", "threshold", "window", "interval"]) inputs[name].value = String(rule[name] ?? "");
    inputs.group_by.value = rule.group_by || "";
    inputs.webhook.value = rule.webhook.url;
    inputs.name.focus();
  }
  cancel.addEventListener("click", () => {
    form.reset();
    mode(null);
  });
  onSubmit(form, async () => {
    const value = (name) => inputs[name].value.trim();
    const body = {
      name: value("name"),
      query: value("query"),
      threshold: Number(value("threshold")),
      window: value("window"),
      webhook: { url: value("webhook") },
    };
    if (value("interval")) body.interval = value("interval");
    if (value("group_by")) body.group_by = value("group_by");
    if (editing) {
      // A whole new definition; the webhook's secret stays the rule's.
      const rule = await api("PUT", path("/v1/alerts/rules", editing), { body });
      toast(`Rule ${rule.name} saved.`);
    } else {
      const rule = await api("POST", "/v1/alerts/rules", { body });
      fill(secret, secretBox("new-rule-secret", `Rule ${rule.name} created. Its webhook signing secret:`, rule.secret));
    }
    form.reset();
    mode(null);
    await reload();
  });
  reload();
  return [
    h("h2", {}, "Alerts"),
    alerts.table,
    h("h2", {}, "Rules"),
    secret,
    rules.table,
    title,
    form,
  ];
}

function ruleRow(rule, reload, edit) {
  const remove = () => {
    if (!confirm(`Delete the rule ${rule.name}? Its alerts go with it, without a notification.`)) return;
    act(() => api("DELETE", path("/v1/alerts/rules", rule.id)), `Rule ${rule.name} deleted.`, reload);
  };
  return h(
    "tr",
    { dataset: { id: rule.id } },
    td(rule.name),
    td(h("code", {}, rule.query)),
    td(String(rule.threshold)),
    td(rule.window),
    td(rule.interval),
    td(rule.group_by || "—"),
    td(rule.webhook.url),
    td(
      h("button", { type: "button", onclick: () => edit(rule) }, "Edit"),
      " ",
      h("button", { type: "button", class: "danger", onclick: remove }, "Delete"),
    ),
  );
}

function alertRow(alert) {
  const note = alert.notification;
  const delivered = note.state ? `${note.state} delivered ${when(note.at)}` : "none delivered";
  return h(
    "tr",
    { class: `alert-${alert.state}` },
    td(alert.rule.name),
    td(alert.group ? `${alert.group.field}=${alert.group.value}` : "—"),
    td(alert.state),
    td(when(alert.since)),
    td(String(alert.count)),
    td(note.pending ? "pending; " : null, delivered, note.error ? h("p", { class: "form-error" }, note.error) : null),
  );
}

// --- Dead letters ------------------------------------------------------------

function deadLettersSection() {
  const { table, body } = dataTable("dead-letters-table", ["Id", "Tenant", "Stream", "Attempts", "Last failed", "Error", "Bytes"]);
  const detail = h("div", { id: "dead-letter-detail", "aria-live": "polite" });
  const more = h("button", { type: "button", id: "dead-letters-more", hidden: true }, "More");
  let after = null;
  const load = async (next) => {
    const page = await api("GET", "/v1/admin/dead-letters", { query: { limit: LETTERS_PER_PAGE, after: next ? after : null } });
    const open = (letter) => () => openLetter(detail, letter.id, reload);
    const rows = page.dead_letters.map((letter) => letterRow(letter, open(letter)));
    if (next) body.append(...rows);
    else fill(body, rows.length ? rows : emptyRow(7, "No dead letters."));
    after = page.next;
    more.hidden = !after;
  };
  const reload = reloader(() => load(false));
  more.addEventListener("click", reloader(() => load(true)));
  reload();
  return [
    h("p", { class: "hint" }, "What the worker could not store, kept until it is replayed into the queue or purged."),
    table,
    h("div", { class: "actions" }, more),
    detail,
  ];
}

function letterRow(letter, open) {
  // The id is a button (keyboard), and a click anywhere on the row opens the letter.
  return h(
    "tr",
    { dataset: { id: letter.id }, class: "clickable", onclick: open },
    td(h("button", { type: "button", class: "link" }, letter.id)),
    td(letter.tenant ?? "unknown"),
    td(letter.stream ?? "unknown"),
    td(String(letter.attempts)),
    td(when(letter.last_failed_at)),
    td(letter.error),
    td(String(letter.payload_bytes)),
  );
}

async function openLetter(panel, id, reload) {
  let letter;
  try {
    letter = await api("GET", path("/v1/admin/dead-letters", id));
  } catch (error) {
    toast(describe(error), "error");
    return;
  }
  const done = async () => {
    panel.replaceChildren();
    await reload();
  };
  const replay = () => {
    if (!confirm(`Replay dead letter ${id}? Its record goes back into the queue.`)) return;
    const said = (answer) => `Replayed at queue position ${answer.position}.`;
    act(() => api("POST", `${path("/v1/admin/dead-letters", id)}/replay`), said, done);
  };
  const purge = () => {
    if (!confirm(`Purge dead letter ${id} for good? This cannot be undone.`)) return;
    act(() => api("DELETE", path("/v1/admin/dead-letters", id)), `Dead letter ${id} purged.`, done);
  };
  const fact = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  fill(
    panel,
    h("h2", {}, `Dead letter ${letter.id}`),
    h(
      "dl",
      { class: "facts" },
      fact("Tenant", letter.tenant ?? "unknown"),
      fact("Stream", letter.stream ?? "unknown"),
      fact("Queue position", String(letter.position)),
      fact("Error", letter.error),
      fact("Attempts", String(letter.attempts)),
      fact("First failed", when(letter.first_failed_at)),
      fact("Last failed", when(letter.last_failed_at)),
    ),
    h("h3", {}, letter.payload_hex ? "Payload (hex: not UTF-8)" : "Payload"),
    h("pre", { class: "payload" }, letter.payload ?? letter.payload_hex),
    letter.events
      ? [h("h3", {}, `Events (${letter.events.length})`), h("pre", { class: "payload" }, JSON.stringify(letter.events, null, 2))]
      : h("p", { class: "hint" }, "The record cannot be read: its events are unknown."),
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "primary", id: "dead-letter-replay", onclick: replay }, "Replay"),
      h("button", { type: "button", class: "danger", id: "dead-letter-purge", onclick: purge }, "Purge"),
    ),
  );
}
