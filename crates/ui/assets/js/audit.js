// The audit pages: the trail with actor, action, target and outcome, each
// event's inclusion proof verified here in the browser against a signed
// checkpoint and the pinned public key; and the checkpoint page, which also
// checks the trail only grew since this browser last looked, and offers the
// export and the public key for offline verification.

import { api, current, withQuery, token } from "./api.js";
import { parseExact } from "./canonical.js";
import { describe, download, fill, formatCount, formatTime, h, toast } from "./dom.js";
import { addTerm, eventRow } from "./events.js";
import {
  parseKey,
  pinKey,
  pinnedSince,
  rememberCheckpoint,
  seenCheckpoint,
  toHex,
  trustedKey,
  verifyCheckpoint,
  verifyConsistency,
  verifyEvent,
} from "./verify.js";

const PAGE = 50;
/** Proofs fetched and checked at once. */
const PARALLEL_PROOFS = 3;

async function serverKey() {
  const { public_key: text } = await api("GET", "/v1/audit/public-key");
  return text;
}

/** The pinned key, with a warning above `root` if the server now shows another. */
async function keyFor(root) {
  const tenant = current().me.tenant;
  const trusted = await trustedKey(tenant, await serverKey());
  if (trusted.mismatch) {
    root.prepend(
      h(
        "div",
        { class: "banner error", role: "alert", id: "key-mismatch" },
        "The server's public key is not the one pinned in this browser. Events are checked against the pinned key; ",
        "if the key was replaced on purpose, pin the new one on the Checkpoint page.",
      ),
    );
  }
  return trusted.key;
}

function badge(state, detail) {
  const labels = {
    pending: "checking…",
    verified: "✓ verified",
    pruned: "✓ pruned, hash verified",
    failed: "✗ failed",
    waiting: "not yet checkpointed",
    error: "could not check",
  };
  return h("span", { class: `badge badge-${state}`, title: detail || labels[state], role: "status" }, labels[state]);
}

function cell(cls, text) {
  return h("span", { class: cls }, text || "");
}

export function auditPage(root, params) {
  let q = params.get("q") || "";
  let cursor = null;
  let alive = true;
  let key = null;
  const input = h("input", { id: "audit-q", type: "search", value: q, placeholder: "action:role.* outcome:failure", autocomplete: "off" });
  const error = h("div", { class: "query-error", id: "audit-error", "aria-live": "polite" });
  const rows = h("div", { class: "rows", id: "audit-rows" });
  const more = h("button", { type: "button", id: "audit-more", hidden: true }, "Older events");
  const form = h(
    "form",
    { class: "query-bar", role: "search" },
    h("label", { for: "audit-q", class: "visually-hidden" }, "Audit query"),
    h("div", { class: "query-field" }, input, error),
    h("button", { type: "submit", class: "primary" }, "Search"),
  );
  const header = h(
    "div",
    { class: "audit-header", "aria-hidden": "true" },
    ["Time", "Level", "Actor", "Action", "Target", "Outcome", "Integrity", "Message"].map((name) => h("span", {}, name)),
  );
  const section = h(
    "section",
    { class: "page audit-page", "aria-label": "Audit trail" },
    h("h1", {}, "Audit trail"),
    form,
    header,
    h("div", { class: "results audit-results" }, rows, more),
  );
  fill(root, section);

  const queue = [];
  let running = 0;
  const pump = () => {
    while (alive && running < PARALLEL_PROOFS && queue.length) {
      const job = queue.shift();
      running++;
      job().finally(() => {
        running--;
        pump();
      });
    }
  };

  const check = (exact, id, holder) => async () => {
    try {
      const answer = await api("GET", `/v1/audit/${encodeURIComponent(id)}/proof`);
      const result = await verifyEvent(exact, answer, key);
      holder.replaceChildren(badge(result.status, result.detail));
    } catch (failure) {
      const waiting = failure.code === "not_yet_checkpointed" || failure.code === "no_checkpoint";
      holder.replaceChildren(badge(waiting ? "waiting" : "error", describe(failure)));
    }
  };

  const filter = (term) => {
    input.value = addTerm(input.value, term);
    search(true);
  };

  const show = (text) => {
    const answer = JSON.parse(text);
    const exact = parseExact(text).get("events");
    answer.events.forEach((event, i) => {
      const attributes = event.attributes || {};
      const actor = attributes.actor || {};
      const target = attributes.target || {};
      const holder = h("span", { class: "integrity" }, badge("pending"));
      const row = eventRow(event, filter, [
        cell("actor", actor.name || actor.id),
        cell("action", attributes.action),
        cell("target", target.type ? `${target.type} ${target.id || ""}` : target.id),
        cell(`outcome outcome-${attributes.outcome || ""}`, attributes.outcome),
        holder,
      ]);
      rows.append(row);
      queue.push(check(exact[i], event.id, holder));
    });
    if (!answer.events.length && !rows.children.length) rows.append(h("p", { class: "empty" }, "No audit events match."));
    cursor = answer.next_cursor;
    more.hidden = !cursor;
    pump();
  };

  const page = async () => {
    const response = await api("GET", "/v1/audit", { raw: true, query: { q, limit: PAGE, cursor } });
    return response.text();
  };

  const search = async (push) => {
    q = input.value;
    const hash = withQuery("#/audit", { q });
    if (hash !== location.hash) history[push ? "pushState" : "replaceState"](null, "", hash);
    cursor = null;
    queue.length = 0;
    rows.replaceChildren();
    error.replaceChildren();
    try {
      key = key || (await keyFor(section));
      show(await page());
    } catch (failure) {
      fill(error, h("span", { class: "error-message" }, describe(failure)));
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(true);
  });
  more.addEventListener("click", async () => {
    try {
      show(await page());
    } catch (failure) {
      toast(describe(failure), "error");
    }
  });
  search(false);
  return () => {
    alive = false;
  };
}

export function checkpointPage(root) {
  const tenant = current().me.tenant;
  const status = h("div", { id: "checkpoint-status", "aria-live": "polite" });
  const details = h("dl", { class: "facts", id: "checkpoint-facts" });
  const note = h("pre", { class: "note", id: "checkpoint-note" });
  const keyBox = h("div", { class: "key-box", id: "key-box" });
  const paste = h("textarea", { id: "pin-key", rows: 2, placeholder: "logbook+…+…" });
  const section = h(
    "section",
    { class: "page checkpoint-page", "aria-label": "Checkpoint" },
    h("h1", {}, "Signed checkpoint"),
    status,
    details,
    h("h2", {}, "Signed note"),
    note,
    h("h2", {}, "Public key"),
    keyBox,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", id: "download-export", onclick: () => exportTrail() }, "Download export"),
      h("button", { type: "button", id: "download-key", onclick: () => downloadKey() }, "Download public key"),
    ),
    h("h2", {}, "Pin another key"),
    h(
      "p",
      { class: "hint" },
      "Paste the key your organisation distributes (from `logbook verify --print-public-key`) to check against it instead.",
    ),
    h("label", { for: "pin-key", class: "visually-hidden" }, "Public key to pin"),
    paste,
    h("button", { type: "button", id: "pin", onclick: () => pin() }, "Pin this key"),
  );
  fill(root, section);

  const load = async () => {
    const serverText = await serverKey();
    const trusted = await trustedKey(tenant, serverText);
    fill(
      keyBox,
      h("code", { id: "pinned-key" }, trusted.key.text),
      h(
        "p",
        { class: "hint" },
        trusted.firstUse
          ? "Pinned now, on first use. Compare it with the key your organisation distributes."
          : `Pinned in this browser since ${formatTime(pinnedSince(tenant))}.`,
      ),
      trusted.mismatch
        ? h(
            "div",
            { class: "banner error", role: "alert" },
            h("p", {}, "The server now shows another key:"),
            h("code", {}, trusted.mismatch),
            h("button", { type: "button", onclick: () => pinText(trusted.mismatch) }, "Trust the server's new key"),
          )
        : null,
    );
    let checkpoint;
    let answer;
    try {
      answer = await api("GET", "/v1/audit/checkpoint");
    } catch (failure) {
      fill(status, badge(failure.code === "no_checkpoint" ? "waiting" : "error", describe(failure)), " ", describe(failure));
      return;
    }
    note.textContent = answer.note;
    try {
      checkpoint = await verifyCheckpoint(answer.note, trusted.key);
    } catch (failure) {
      fill(status, badge("failed", failure.message), ` ${failure.message}`);
      return;
    }
    fill(
      details,
      h("dt", {}, "Events covered"),
      h("dd", { id: "checkpoint-size" }, formatCount(checkpoint.size)),
      h("dt", {}, "Root hash"),
      h("dd", {}, h("code", {}, toHex(checkpoint.root))),
      h("dt", {}, "Signed at"),
      h("dd", {}, formatTime(checkpoint.time * 1000)),
    );
    const seen = seenCheckpoint(tenant);
    let consistency = "This browser had not seen a checkpoint of this trail before.";
    if (seen && seen.size > 0) {
      try {
        const proof = seen.size === checkpoint.size
          ? { proof: [] }
          : await api("GET", "/v1/audit/consistency", { query: { from: seen.size, to: checkpoint.size } });
        await verifyConsistency(seen.size, seen.root, checkpoint.size, checkpoint.root, proof.proof);
        consistency = `It extends the checkpoint of ${formatCount(seen.size)} events this browser verified before: nothing was altered or removed.`;
      } catch (failure) {
        fill(status, badge("failed", failure.message), ` ${failure.message}`);
        return;
      }
    }
    if (!seen || checkpoint.size >= seen.size) rememberCheckpoint(tenant, checkpoint);
    fill(status, badge("verified", "signature verified"), " Signature verified with the pinned key. ", consistency);
  };

  const pinText = async (text) => {
    try {
      await pinKey(tenant, text);
      toast("Key pinned.");
      await load();
    } catch (failure) {
      toast(`Not a valid key: ${failure.message}`, "error");
    }
  };
  const pin = async () => {
    try {
      await parseKey(paste.value);
    } catch (failure) {
      toast(`Not a valid key: ${failure.message}`, "error");
      return;
    }
    await pinText(paste.value);
  };
  const downloadKey = async () => {
    download(`logbook-${tenant}.pub`, `${await serverKey()}\n`, "text/plain");
  };
  const exportTrail = async () => {
    // A fetch with the access token (a link could not carry it), saved as a file.
    try {
      const response = await fetch("/v1/audit/export", {
        headers: { authorization: `Bearer ${await token()}` },
        credentials: "omit",
      });
      if (!response.ok) throw new Error(`the export failed: HTTP ${response.status}`);
      download(`logbook-${tenant}-audit-export.jsonl`, await response.blob());
    } catch (failure) {
      toast(describe(failure), "error");
    }
  };
  load().catch((failure) => fill(status, badge("error", describe(failure)), " ", describe(failure)));
  return () => {};
}
