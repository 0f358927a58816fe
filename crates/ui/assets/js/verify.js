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

/** A 32-byte hash from 64 lowercase hex digits; anything else is refused. */
function hashFromHex(text) {
  if (typeof text !== "string" || !/^[0-9a-f]{64}$/.test(text)) throw new Error("a hash is not 64 hex digits");
  return Uint8Array.from(text.match(/../g), (pair) => parseInt(pair, 16));
}

/** A tree size or index: a non-negative safe integer, as a BigInt. */
function count(value, what) {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${what} is not a valid number`);
  return BigInt(value);
}

function bitLength(n) {
  return n === 0n ? 0 : n.toString(2).length;
}

function ones(n) {
  return [...n.toString(2)].filter((bit) => bit === "1").length;
}

/** The inner and border levels of leaf `index`'s path in a tree of `size` (as the Rust reference). */
function decompose(index, size) {
  const inner = bitLength(index ^ (size - 1n));
  return [inner, ones(index >> BigInt(inner))];
}

function trailingZeros(n) {
  let zeros = 0;
  while (n > 0n && !(n & 1n)) {
    n >>= 1n;
    zeros++;
  }
  return zeros;
}

function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
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
 * {tenant, size, root, time, note}; throws naming what is wrong.
 */
export async function verifyCheckpoint(note, key) {
  if (!note.endsWith("\n")) throw new Error("the note does not end with a newline");
  const split = note.indexOf("\n\n");
  if (split < 0) throw new Error("the note has no signatures");
  const body = note.slice(0, split + 1);
  const lines = body.slice(0, -1).split("\n");
  if (lines.length !== 4) throw new Error("the checkpoint does not have 4 lines");
  const [origin, sizeLine, rootLine, timeLine] = lines;
  if (!/^logbook\/[^\s+\p{Cc}]+$/u.test(origin)) throw new Error("the origin is not logbook/<tenant>");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine) || !Number.isSafeInteger(Number(sizeLine))) throw new Error("bad tree size");
  if (!/^[A-Za-z0-9+/]{43}=$/.test(rootLine)) throw new Error("the root is not the base64 of 32 bytes");
  const root = fromBase64(rootLine);
  if (toBase64(root) !== rootLine) throw new Error("the root's base64 is not canonical");
  const time = /^time (0|-?[1-9][0-9]*)$/.exec(timeLine);
  if (!time) throw new Error("bad time line");
  let signed = false;
  for (const line of note.slice(split + 2, -1).split("\n")) {
    const signature = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!signature) throw new Error("bad signature line");
    if (signature[1] !== key.name) continue;
    const blob = fromBase64(signature[2]);
    if (toHex(blob.slice(0, 4)) !== key.hash) continue;
    if (blob.length !== 68) throw new Error("the pinned key's signature is not 64 bytes");
    if (!(await crypto.subtle.verify({ name: "Ed25519" }, key.key, blob.slice(4), encoder.encode(body)))) {
      throw new Error("the checkpoint's signature does not verify with the pinned key");
    }
    signed = true;
  }
  if (!signed) throw new Error("the checkpoint is not signed by the pinned key");
  return { tenant: origin.slice("logbook/".length), size: Number(sizeLine), root, time: Number(time[1]), note };
}

/**
 * RFC 9162 §2.1.3.2: does `proof` (32-byte hashes) lead from `leaf` at
 * `index` to `root` of a tree of `size`? The proof's length must be the one
 * `index` and `size` imply, as the Rust reference checks.
 */
export async function verifyInclusion(leaf, index, size, proof, root) {
  const i = count(index, "the index");
  const n = count(size, "the tree size");
  if (i >= n) throw new Error("the event is outside the checkpoint's tree");
  const [inner, border] = decompose(i, n);
  if (proof.length !== inner + border) throw new Error("the proof has the wrong length");
  if (![leaf, root, ...proof].every((hash) => hash instanceof Uint8Array && hash.length === 32)) {
    throw new Error("a hash is not 32 bytes");
  }
  let fn = i;
  let sn = n - 1n;
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
  const m = count(oldSize, "the older size");
  const n = count(newSize, "the newer size");
  if (m > n) throw new Error("the trail is smaller than it was: rolled back");
  if (m === n) {
    if (proofHex.length || !equal(oldRoot, newRoot)) throw new Error("the same size with another root: forked");
    return;
  }
  if (m === 0n) return;
  const proof = proofHex.map(hashFromHex);
  const [inner, border] = decompose(m - 1n, n);
  const isPowerOfTwo = (m & (m - 1n)) === 0n;
  if (proof.length !== inner - trailingZeros(m) + border + (isPowerOfTwo ? 0 : 1)) {
    throw new Error("the consistency proof has the wrong length");
  }
  if (isPowerOfTwo) proof.unshift(oldRoot);
  let fn = m - 1n;
  let sn = n - 1n;
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
 * Verifies one audit event against `checkpoint` (already verified, from
 * verifyCheckpoint): `exact` is the event as parseExact read it from the
 * API's answer, `answer` the proof endpoint's JSON for that checkpoint's
 * size. The event's own bytes are always hashed: the server's `leaf_hash`
 * and `pruned` are not trusted. Returns {status: "verified"|"failed", detail}.
 */
export async function verifyEvent(exact, answer, checkpoint, tenant) {
  try {
    if (answer.checkpoint.note !== checkpoint.note) throw new Error("the proof is for another checkpoint");
    if (checkpoint.tenant !== tenant || member(exact, "tenant") !== tenant) {
      throw new Error("the event or checkpoint is of another tenant");
    }
    if (member(exact, "id") !== answer.id) throw new Error("the proof is for another event");
    const seq = member(exact, "seq");
    if (seq === undefined || seq !== String(answer.seq)) throw new Error("the event's seq is not the proof's");
    const leaf = await leafHash(canonicalBytes(exact));
    await verifyInclusion(leaf, answer.seq, checkpoint.size, answer.proof.map(hashFromHex), checkpoint.root);
    return { status: "verified", detail: `included in the signed checkpoint of ${checkpoint.size} events` };
  } catch (error) {
    return { status: "failed", detail: error.message };
  }
}

// Pinning: the server's signing key is one per server, so it is pinned per
// origin (a public key is no secret: local storage is fine). The first key
// seen is pinned but unconfirmed until the user confirms it or pastes the one
// their organisation distributes; a different key later is a warning, and
// replacing the pin is always the user's explicit act.

const PIN = "logbook.pinned-key";

/** The pinned key {text, since, confirmed}, or null. */
export function pinned() {
  try {
    return JSON.parse(localStorage.getItem(PIN) || "null");
  } catch {
    return null;
  }
}

/** Pins `keyText` (checked first); `confirmed` when the user vouched for it. */
export async function pinKey(keyText, confirmed) {
  const key = await parseKey(keyText);
  const was = pinned();
  const since = was && was.text === key.text ? was.since : new Date().toISOString();
  localStorage.setItem(PIN, JSON.stringify({ text: key.text, since, confirmed }));
  return key;
}

/**
 * The key to verify with: the pinned one, or the server's pinned now
 * (unconfirmed) if none is. `mismatch` is the server's key when it differs.
 */
export async function trustedKey(serverKeyText) {
  let pin = pinned();
  if (!pin) {
    await pinKey(serverKeyText, false);
    pin = pinned();
  }
  const key = await parseKey(pin.text);
  return {
    key,
    since: pin.since,
    confirmed: Boolean(pin.confirmed),
    mismatch: serverKeyText.trim() === key.text ? null : serverKeyText.trim(),
  };
}

const SEEN = "logbook.seen-checkpoint";

/**
 * The newest checkpoint this browser verified for `tenant`: {size, root} or
 * null. A record that does not read back throws: it must not silently turn
 * off the rollback check.
 */
export function seenCheckpoint(tenant) {
  const text = localStorage.getItem(`${SEEN}.${tenant}`);
  if (text === null) return null;
  try {
    const seen = JSON.parse(text);
    if (!Number.isSafeInteger(seen.size) || seen.size < 0) throw new Error("bad size");
    return { size: seen.size, root: hashFromHex(seen.root), time: seen.time };
  } catch {
    throw new Error("the checkpoint this browser remembered is unreadable; forget it on the Checkpoint page");
  }
}

/** Remembers `checkpoint` as the newest verified one, for the next consistency check. */
export function rememberCheckpoint(tenant, checkpoint) {
  localStorage.setItem(
    `${SEEN}.${tenant}`,
    JSON.stringify({ size: checkpoint.size, root: toHex(checkpoint.root), time: checkpoint.time }),
  );
}

/** Forgets the remembered checkpoint (a trail legitimately replaced). */
export function forgetCheckpoint(tenant) {
  localStorage.removeItem(`${SEEN}.${tenant}`);
}
