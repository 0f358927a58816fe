// Checking the audit trail in the browser: a signed checkpoint against the
// public key the auditor pinned, and an event's RFC 9162 inclusion proof
// against that checkpoint, with SHA-256 and Ed25519 from WebCrypto. The
// server is not trusted for any of it: it only supplies the bytes.

import { canonicalBytes, member } from "./canonical.js";

const encoder = new TextEncoder();

function fromBase64(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw new Error("bad base64");
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("bad hex");
  return Uint8Array.from(text.match(/../g) || [], (pair) => parseInt(pair, 16));
}

export function toHex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

function equal(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** RFC 9162 §2.1.1: SHA-256(0x00 || leaf). */
export function leafHash(bytes) {
  return sha256(concat(Uint8Array.of(0), bytes));
}

function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/**
 * A verifier key `<name>+<8 hex key hash>+<base64(0x01 || 32-byte key)>`,
 * checked: its hash must be SHA-256(name || "\n" || 0x01 || key)'s first 4 bytes.
 */
export async function parseKey(text) {
  // The base64 may itself hold "+": split at the first two only.
  const match = /^([^+\s]+)\+([^+]*)\+(\S+)$/.exec(text.trim());
  if (!match) throw new Error("a key is <name>+<hash>+<base64 key>");
  const [, name, hash, encoded] = match;
  if (!/^[0-9a-f]{8}$/.test(hash)) throw new Error("the key hash is not 8 hex digits");
  const blob = fromBase64(encoded);
  if (blob.length !== 33 || blob[0] !== 1) throw new Error("not an Ed25519 verifier key");
  const digest = await sha256(concat(encoder.encode(`${name}\n`), blob));
  if (toHex(digest.slice(0, 4)) !== hash) throw new Error("the key hash does not match the key");
  const key = await crypto.subtle.importKey("raw", blob.slice(1), { name: "Ed25519" }, false, ["verify"]);
  return { text: text.trim(), name, hash, key };
}

/**
 * Checks a signed checkpoint note with `key` (from parseKey) and returns
 * {tenant, size, root, time}; throws naming what is wrong.
 */
export async function verifyCheckpoint(note, key) {
  if (!note.endsWith("\n")) throw new Error("the note does not end with a newline");
  const split = note.indexOf("\n\n");
  if (split < 0) throw new Error("the note has no signatures");
  const body = note.slice(0, split + 1);
  const lines = body.slice(0, -1).split("\n");
  if (lines.length !== 4) throw new Error("the checkpoint does not have 4 lines");
  const [origin, sizeLine, rootLine, timeLine] = lines;
  if (!origin.startsWith("logbook/")) throw new Error("the origin is not logbook/<tenant>");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine)) throw new Error("bad tree size");
  const root = fromBase64(rootLine);
  if (root.length !== 32) throw new Error("the root is not 32 bytes");
  const time = /^time (-?(0|[1-9][0-9]*))$/.exec(timeLine);
  if (!time) throw new Error("bad time line");
  let signed = false;
  for (const line of note.slice(split + 2, -1).split("\n")) {
    const signature = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!signature) throw new Error("bad signature line");
    if (signature[1] !== key.name) continue;
    const blob = fromBase64(signature[2]);
    if (blob.length !== 68 || toHex(blob.slice(0, 4)) !== key.hash) continue;
    if (!(await crypto.subtle.verify({ name: "Ed25519" }, key.key, blob.slice(4), encoder.encode(body)))) {
      throw new Error("the checkpoint's signature does not verify with the pinned key");
    }
    signed = true;
  }
  if (!signed) throw new Error("the checkpoint is not signed by the pinned key");
  return { tenant: origin.slice("logbook/".length), size: Number(sizeLine), root, time: Number(time[1]) };
}

/** RFC 9162 §2.1.3.2: does `proof` lead from `leaf` at `index` to `root`? */
export async function verifyInclusion(leaf, index, size, proof, root) {
  if (index >= size) throw new Error("the event is outside the checkpoint's tree");
  let fn = BigInt(index);
  let sn = BigInt(size - 1);
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error("the proof is too long");
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("the proof is too short");
  if (!equal(r, root)) throw new Error("the proof does not lead to the checkpoint's root");
}

/**
 * RFC 9162 §2.1.4.2: does `proof` (hex) show the tree of `newSize` with
 * `newRoot` extends the tree of `oldSize` with `oldRoot`? Nothing was
 * altered, removed or rolled back in between.
 */
export async function verifyConsistency(oldSize, oldRoot, newSize, newRoot, proofHex) {
  if (oldSize > newSize) throw new Error("the trail is smaller than it was: rolled back");
  if (oldSize === newSize) {
    if (proofHex.length || !equal(oldRoot, newRoot)) throw new Error("the same size with another root: forked");
    return;
  }
  if (oldSize === 0) return;
  const proof = proofHex.map(fromHex);
  if (!proof.length) throw new Error("an empty consistency proof");
  if ((oldSize & (oldSize - 1)) === 0) proof.unshift(oldRoot);
  let fn = BigInt(oldSize - 1);
  let sn = BigInt(newSize - 1);
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = proof[0];
  let sr = proof[0];
  for (const c of proof.slice(1)) {
    if (sn === 0n) throw new Error("the consistency proof is too long");
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n || !equal(fr, oldRoot) || !equal(sr, newRoot)) {
    throw new Error("the new checkpoint does not extend the one seen before: altered or rolled back");
  }
}

/**
 * Verifies one audit event: `exact` is the event as parseExact read it from
 * the API's answer, `answer` the proof endpoint's JSON. Returns {status,
 * detail, checkpoint} with status "verified", "pruned" or "failed".
 */
export async function verifyEvent(exact, answer, key) {
  try {
    const checkpoint = await verifyCheckpoint(answer.checkpoint.note, key);
    if (checkpoint.size !== answer.size) throw new Error("the proof is for another tree size");
    const proof = answer.proof.map(fromHex);
    let leaf;
    if (answer.id !== undefined && member(exact, "id") !== answer.id) throw new Error("the proof is for another event");
    if (answer.pruned) {
      leaf = fromHex(answer.leaf_hash);
    } else {
      const seq = member(exact, "seq");
      if (seq !== undefined && seq !== String(answer.seq)) throw new Error("the event's seq is not the proof's");
      leaf = await leafHash(canonicalBytes(exact));
    }
    await verifyInclusion(leaf, answer.seq, checkpoint.size, proof, checkpoint.root);
    return {
      status: answer.pruned ? "pruned" : "verified",
      detail: answer.pruned
        ? `pruned by retention; its recorded hash is in checkpoint ${checkpoint.size}`
        : `included in the signed checkpoint of ${checkpoint.size} events`,
      checkpoint,
    };
  } catch (error) {
    return { status: "failed", detail: error.message };
  }
}

// Pinning: the first key seen for a tenant is remembered in this browser
// (a public key is no secret); a different key later is shown as a warning
// and never trusted silently.

function pinName(tenant) {
  return `logbook.pinned-key.${tenant}`;
}

/** The key pinned for `tenant` in this browser, or null. */
export function pinnedKey(tenant) {
  return localStorage.getItem(pinName(tenant));
}

/** Pins `keyText` (checked first) for `tenant`. */
export async function pinKey(tenant, keyText) {
  const key = await parseKey(keyText);
  localStorage.setItem(pinName(tenant), key.text);
  localStorage.setItem(`${pinName(tenant)}.since`, new Date().toISOString());
  return key;
}

/** When the key was pinned. */
export function pinnedSince(tenant) {
  return localStorage.getItem(`${pinName(tenant)}.since`);
}

/**
 * The key to verify with: the pinned one, or the server's pinned now if none
 * is. `mismatch` is the server's key when it differs from the pinned one.
 */
export async function trustedKey(tenant, serverKeyText) {
  const pinned = pinnedKey(tenant);
  if (!pinned) return { key: await pinKey(tenant, serverKeyText), mismatch: null, firstUse: true };
  const key = await parseKey(pinned);
  return { key, mismatch: serverKeyText.trim() === key.text ? null : serverKeyText.trim(), firstUse: false };
}

/** The newest checkpoint this browser verified for `tenant`: {size, root} or null. */
export function seenCheckpoint(tenant) {
  try {
    const seen = JSON.parse(localStorage.getItem(`logbook.seen-checkpoint.${tenant}`) || "null");
    return seen && { size: seen.size, root: fromHex(seen.root), time: seen.time };
  } catch {
    return null;
  }
}

/** Remembers `checkpoint` as the newest verified one, for the next consistency check. */
export function rememberCheckpoint(tenant, checkpoint) {
  localStorage.setItem(
    `logbook.seen-checkpoint.${tenant}`,
    JSON.stringify({ size: checkpoint.size, root: toHex(checkpoint.root), time: checkpoint.time }),
  );
}
