// The audit pages: the trail with actor, action, target and outcome, each
// event's inclusion proof verified here in the browser against the newest
// signed checkpoint and the pinned public key; and the checkpoint page. Both
// first check that the checkpoint extends the one this browser verified
// before (nothing altered, removed or rolled back), then remember it.

import { ApiError, api, current, token, withQuery } from "./api.js";
import { parseExact, plain } from "./canonical.js";
import { describe, download, fill, formatCount, formatTime, h, toast } from "./dom.js";
import { addTerm, eventRow } from "./events.js";
import {
  parseKey,
  pinKey,
  forgetCheckpoint,
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

/** How long after a checkpoint's time an earlier-received event may still be outside it. */
const CHECKPOINT_GRACE_MS = 60_000;
/** Rows newer than the checkpoint are checked again this often, this many times. */
const RECHECK_MS = 5000;
const RECHECKS = 6;

/**
 * The tenant's trail as this browser can vouch for it: the pinned key, and
 * the newest checkpoint, verified with that key and checked to extend the
 * one verified before (then remembered). `checkpoint` is null when none is
 * signed yet; `failure` says why the trail cannot be trusted. One check runs
 * at a time across this browser's tabs (a Web Lock), so two answers can never
 * both be compared with the same remembered checkpoint and both remembered.
 */
function checkTrail() {
  const run = () => checkTrailNow();
  return navigator.locks ? navigator.locks.request("logbook-trail-check", run) : run();
}

async function checkTrailNow() {
  const tenant = current().me.tenant;
  const trusted = await trustedKey(await serverKey());
  const state = { tenant, trusted, checkpoint: null, failure: null, extends: null };
  let seen;
  try {
    seen = seenCheckpoint(tenant);
  } catch (failure) {
    state.failure = failure.message;
    return state;
  }
  let answer;
  try {
    answer = await api("GET", "/v1/audit/checkpoint");
  } catch (failure) {
    if (failure.code !== "no_checkpoint") throw failure;
    // No checkpoint, where this browser verified one before: the trail was rolled back.
    if (seen && seen.size > 0) {
      state.failure = `the server shows no checkpoint, but this browser verified one of ${seen.size} events: rolled back`;
    }
    return state;
  }
  state.note = answer.note;
  try {
    const checkpoint = await verifyCheckpoint(answer.note, trusted.key);
    if (checkpoint.tenant !== tenant) throw new Error(`the checkpoint is of tenant ${checkpoint.tenant}, not ${tenant}`);
    if (seen && seen.size > 0) {
      // A smaller trail than before needs no proof to be refused as rolled back.
      const proof = seen.size < checkpoint.size
        ? await api("GET", "/v1/audit/consistency", { query: { from: seen.size, to: checkpoint.size } })
        : { proof: [], from: seen.size, to: checkpoint.size };
      if (proof.from !== seen.size || proof.to !== checkpoint.size) throw new Error("the consistency proof is for other sizes");
      await verifyConsistency(seen.size, seen.root, checkpoint.size, checkpoint.root, proof.proof);
      state.extends = seen.size;
    }
    rememberCheckpoint(tenant, checkpoint);
    state.checkpoint = checkpoint;
  } catch (failure) {
    // A server that could not answer is not a trail that failed: say which.
    state.failure = failure instanceof ApiError ? null : failure.message;
    if (!state.failure) throw failure;
  }
  return state;
}

function badge(state, detail, unconfirmed) {
  const labels = {
    pending: "checking…",
    verified: unconfirmed ? "✓ verified · key unconfirmed" : "✓ verified",
    failed: "✗ failed",
    waiting: "not yet checkpointed",
    overdue: "! should be checkpointed",
    error: "could not check",
  };
  const style = state === "verified" && unconfirmed ? "badge-verified badge-unconfirmed" : `badge-${state}`;
  return h("span", { class: `badge ${style}`, title: detail || labels[state] }, labels[state]);
}

/** Banners for a key that differs from the pinned one, or was never confirmed. */
function keyBanners(trusted) {
  return [
    trusted.mismatch
      ? h(
          "div",
          { class: "banner error", role: "alert", id: "key-mismatch" },
          "The server's public key is not the one pinned in this browser. Everything is checked against the pinned key; ",
          "if your organisation replaced the key, pin the new one on the Checkpoint page.",
        )
      : null,
    trusted.confirmed
      ? null
      : h(
          "div",
          { class: "banner", id: "key-unconfirmed" },
          "The public key was pinned in this browser the first time it was seen. Compare it with the key your ",
          "organisation distributes and confirm it on the ",
          h("a", { href: "#/checkpoint" }, "Checkpoint page"),
          ".",
        ),
  ];
}

function cell(cls, text) {
  return h("span", { class: cls }, text || "");
}

export function auditPage(root, params) {
  let q = params.get("q") || "";
  let cursor = null;
  let generation = 0;
  let trail = null;
  let trailCheck = null;
  /** Checks of rows the newest checkpoint does not cover yet, run again after a newer one. */
  let waiting = [];
  let rechecks = 0;
  let recheckTimer = null;
  const input = h("input", { id: "audit-q", type: "search", value: q, placeholder: "action:role.* outcome:failure", autocomplete: "off" });
  const error = h("div", { class: "query-error", id: "audit-error", "aria-live": "polite" });
  const banners = h("div", { id: "trail-banners" });
  const failures = h("div", { class: "banner error", id: "verify-failures", role: "alert", hidden: true });
  let failed = 0;
  let unverified = 0;
  let firstReason = "";
  const report = (kind, detail) => {
    if (kind === "failed") failed++;
    else unverified++;
    firstReason = firstReason || detail;
    const parts = [];
    if (failed) {
      parts.push(
        `${failed} event${failed === 1 ? "" : "s"} on this page failed verification (${firstReason}): the trail was ` +
          "altered after it was recorded, or the server is not showing what was recorded.",
      );
    }
    if (unverified) {
      parts.push(`${unverified} event${unverified === 1 ? "" : "s"} could not be verified: see the badges.`);
    }
    failures.hidden = false;
    failures.textContent = parts.join(" ");
  };
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
    { class: "audit-header" },
    ["Time", "Level", "Actor", "Action", "Target", "Outcome", "Integrity", "Message"].map((name) => h("span", {}, name)),
  );
  fill(
    root,
    h(
      "section",
      { class: "page audit-page", "aria-label": "Audit trail" },
      h("h1", {}, "Audit trail"),
      banners,
      failures,
      form,
      header,
      h("div", { class: "results audit-results" }, rows, more),
    ),
  );

  const queue = [];
  let running = 0;
  const pump = () => {
    while (running < PARALLEL_PROOFS && queue.length) {
      const job = queue.shift();
      running++;
      job().finally(() => {
        running--;
        pump();
        if (!running && !queue.length && waiting.length && !recheckTimer) scheduleRecheck();
      });
    }
  };
  /** A newer checkpoint (checked like the first), then the waiting rows again. */
  const scheduleRecheck = () => {
    const mine = generation;
    recheckTimer = setTimeout(async () => {
      recheckTimer = null;
      if (mine !== generation) return;
      rechecks++;
      try {
        trail = await checkTrail();
        showTrail();
      } catch {
        // The server did not answer: the rows are tried again with the checkpoint they had.
      }
      const again = waiting;
      waiting = [];
      queue.push(...again.map((job) => job()));
      pump();
    }, RECHECK_MS);
  };

  /** Checks one event (as parseExact read it) against the trail's checkpoint. */
  const check = (exact, event, holder, mine) => async () => {
    if (mine !== generation) return;
    const { checkpoint, failure, trusted } = trail;
    const set = (state, detail) => {
      holder.replaceChildren(badge(state, detail, !trusted.confirmed));
      if (state === "failed") report("failed", detail);
      else if (state !== "verified" && state !== "waiting") report("unverified", detail);
    };
    if (failure) return set("failed", `the checkpoint cannot be trusted: ${failure}`);
    // Every stored audit event has a sequence number: one without is not what was recorded.
    if (!Number.isSafeInteger(event.seq) || event.seq < 0) return set("failed", "the event has no valid seq");
    if (!checkpoint || event.seq >= checkpoint.size) {
      // Received well before the newest checkpoint was signed, yet not in it: the checkpoint is held back.
      const received = Date.parse(event.received_at);
      if (checkpoint && received < checkpoint.time * 1000 - CHECKPOINT_GRACE_MS) {
        return set("overdue", "received before the newest checkpoint was signed, yet not in it");
      }
      if (rechecks >= RECHECKS) {
        return set("overdue", `in no checkpoint signed in the ${(RECHECKS * RECHECK_MS) / 1000} s this page waited`);
      }
      holder.replaceChildren(badge("waiting", "newer than the newest signed checkpoint; checked again shortly"));
      waiting.push(() => check(exact, event, holder, mine));
      return;
    }
    try {
      const answer = await api("GET", `/v1/audit/${encodeURIComponent(event.id)}/proof`, { query: { size: checkpoint.size } });
      const result = await verifyEvent(exact, answer, checkpoint, trail.tenant);
      if (mine !== generation) return;
      set(result.status, result.detail);
    } catch (error) {
      if (mine === generation) set("error", describe(error));
    }
  };

  const filter = (term) => {
    input.value = addTerm(input.value, term);
    search(true);
  };

  const showTrail = () => {
    fill(
      banners,
      keyBanners(trail.trusted),
      trail.failure
        ? h("div", { class: "banner error", role: "alert", id: "trail-failure" }, `The trail cannot be trusted: ${trail.failure}`)
        : null,
    );
  };

  const show = (text, mine) => {
    if (mine !== generation) return;
    const exact = parseExact(text);
    const answer = plain(exact);
    const events = exact.get("events");
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
      queue.push(check(events[i], event, holder, mine));
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
    const mine = ++generation;
    q = input.value;
    const hash = withQuery("#/audit", { q });
    if (hash !== location.hash) history[push ? "pushState" : "replaceState"](null, "", hash);
    cursor = null;
    queue.length = 0;
    failed = 0;
    unverified = 0;
    waiting = [];
    rechecks = 0;
    clearTimeout(recheckTimer);
    recheckTimer = null;
    firstReason = "";
    failures.hidden = true;
    rows.replaceChildren();
    error.replaceChildren();
    more.hidden = true;
    try {
      if (!trail) {
        trailCheck = trailCheck || checkTrail();
        trail = await trailCheck;
        showTrail();
      }
      show(await page(), mine);
    } catch (failure) {
      if (mine === generation) fill(error, h("span", { class: "error-message" }, describe(failure)));
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(true);
  });
  more.addEventListener("click", async () => {
    const mine = generation;
    more.disabled = true;
    try {
      show(await page(), mine);
    } catch (failure) {
      toast(describe(failure), "error");
    } finally {
      more.disabled = false;
    }
  });
  search(false);
  return () => {
    generation++;
    queue.length = 0;
    clearTimeout(recheckTimer);
  };
}

export function checkpointPage(root) {
  const tenant = current().me.tenant;
  const status = h("div", { id: "checkpoint-status", "aria-live": "polite" });
  const details = h("dl", { class: "facts", id: "checkpoint-facts" });
  const note = h("pre", { class: "note", id: "checkpoint-note" });
  const keyBox = h("div", { class: "key-box", id: "key-box" });
  const paste = h("textarea", { id: "pin-key", rows: 2, placeholder: "logbook+…+…" });
  fill(
    root,
    h(
      "section",
      { class: "page checkpoint-page", "aria-label": "Checkpoint" },
      h("h1", {}, `Signed checkpoint of tenant ${tenant}`),
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
      h("h2", {}, "Start over"),
      h(
        "p",
        { class: "hint" },
        "This browser remembers the newest checkpoint it verified, to catch a rollback. Forget it only if this ",
        "server's trail was legitimately replaced (a new server at the same address, a restore).",
      ),
      h("button", { type: "button", id: "forget-checkpoint", class: "danger", onclick: () => forget() }, "Forget the remembered checkpoint"),
      h("h2", {}, "Pin another key"),
      h(
        "p",
        { class: "hint" },
        "Paste the key your organisation distributes (from logbook verify --print-public-key) to check against it instead.",
      ),
      h("label", { for: "pin-key" }, "Public key to pin"),
      paste,
      h("button", { type: "button", id: "pin", onclick: () => pinText(paste.value) }, "Pin this key"),
    ),
  );

  const load = async () => {
    details.replaceChildren();
    note.textContent = "";
    status.replaceChildren();
    const trail = await checkTrail();
    const { trusted } = trail;
    fill(
      keyBox,
      h("code", { id: "pinned-key" }, trusted.key.text),
      h(
        "p",
        { class: "hint" },
        `Pinned in this browser since ${formatTime(trusted.since)}${trusted.confirmed ? ", confirmed." : ", on first use: not confirmed yet."}`,
      ),
      trusted.confirmed
        ? null
        : h(
            "button",
            { type: "button", id: "confirm-key", onclick: () => confirmKey(trusted.key.text) },
            "I compared it with the distributed key: confirm",
          ),
      trusted.mismatch
        ? h(
            "div",
            { class: "banner error", role: "alert" },
            h("p", {}, "The server now shows another key:"),
            h("code", {}, trusted.mismatch),
            h("button", { type: "button", onclick: () => replaceKey(trusted.mismatch) }, "Replace the pinned key with it"),
          )
        : null,
    );
    if (trail.note) note.textContent = trail.note;
    if (trail.failure) {
      fill(status, badge("failed", trail.failure), ` ${trail.failure}`);
      return;
    }
    if (!trail.checkpoint) {
      fill(status, badge("waiting"), " This tenant's trail has no signed checkpoint yet.");
      return;
    }
    const { checkpoint } = trail;
    fill(
      details,
      h("dt", {}, "Events covered"),
      h("dd", { id: "checkpoint-size" }, formatCount(checkpoint.size)),
      h("dt", {}, "Root hash"),
      h("dd", {}, h("code", {}, toHex(checkpoint.root))),
      h("dt", {}, "Signed at"),
      h("dd", {}, formatTime(checkpoint.time * 1000)),
    );
    const consistency = trail.extends
      ? `It extends the checkpoint of ${formatCount(trail.extends)} events this browser verified before: nothing was altered or removed.`
      : "This browser had not verified a checkpoint of this trail before.";
    fill(status, badge("verified", "signature verified", !trusted.confirmed), " Signature verified with the pinned key. ", consistency);
  };

  const pinText = async (text, confirmed = true) => {
    try {
      await parseKey(text);
      await pinKey(text, confirmed);
      toast("Key pinned.");
      await load();
    } catch (failure) {
      toast(`Not a valid key: ${describe(failure)}`, "error");
    }
  };
  const confirmKey = (text) => pinText(text, true);
  const forget = () => {
    if (!confirm("Forget the checkpoint this browser verified? A rollback before now would go unnoticed.")) return;
    forgetCheckpoint(tenant);
    load().catch((failure) => fill(status, badge("error", describe(failure)), " ", describe(failure)));
  };
  const replaceKey = (text) => {
    // Replacing the key is what an attacker who took the server would want: never one click.
    if (confirm("Replace the pinned key? Do this only if your organisation announced a new key and it is this one.")) {
      pinText(text, true);
    }
  };
  // The pinned key, never the server's current one: with the export, it is what `logbook verify` trusts.
  const downloadKey = async () => {
    const { key, mismatch } = await trustedKey(await serverKey());
    if (mismatch) toast("The server shows another key; this is the pinned one.", "error");
    download("logbook.pub", `${key.text}\n`, "text/plain");
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
