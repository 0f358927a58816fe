// The browser's audit checks run in Node against the Rust reference's own
// known answers: canonical bytes (crates/audit/src/canonical/tests.rs) and
// the RFC 6962/9162 proof vectors (crates/audit/src/merkle/vectors.rs).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { canonicalBytes, parseExact } from '../assets/js/canonical.js';
import { leafHash, parseKey, toHex, verifyCheckpoint, verifyConsistency, verifyEvent, verifyInclusion } from '../assets/js/verify.js';

const canonical = (text) => new TextDecoder().decode(canonicalBytes(parseExact(text)));
const fromHex = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));

test('numbers print as the Rust reference documents', () => {
  const input =
    '[0, -0, 7, -7, 18446744073709551615, -9223372036854775808, 0.0, 1.0, -0.0, 0.5, 1E+2, ' +
    '123.456, 1e15, 1.234e15, 9.999e15, 1e16, 1.5e16, 1e21, 1.7976931348623157e308, ' +
    '0.1, 1e-4, 0.000123, 1e-5, 1.5e-5, 1e-6, 1.25e-6, 1.5e-7, 2.5e-10, 5e-324, -1e-100, ' +
    '18446744073709551616, -9223372036854775809]';
  assert.equal(
    canonical(input),
    '[0,-0.0,7,-7,18446744073709551615,-9223372036854775808,0.0,1.0,-0.0,0.5,100.0,' +
      '123.456,1000000000000000.0,1234000000000000.0,9999000000000000.0,1e+16,1.5e+16,1e+21,' +
      '1.7976931348623157e+308,0.1,0.0001,0.000123,0.00001,0.000015,1e-6,1.25e-6,1.5e-7,' +
      '2.5e-10,5e-324,-1e-100,1.8446744073709552e+19,-9.223372036854776e+18]',
  );
  // Exactly halfway between two 17-digit strings: the even one.
  assert.equal(canonical('2127524128142182.25'), '2127524128142182.2');
});

test('keys sort by UTF-8 bytes, strings escape as serde_json does', () => {
  assert.equal(
    canonical('{"\\ud83d\\ude00": 1, "\\uff61": 2, "\\u00e9": 3, "z": 4, "Z": 5, "": 6, "a": 7, "ab": 8}'),
    '{"":6,"Z":5,"a":7,"ab":8,"z":4,"\u00e9":3,"\uff61":2,"\ud83d\ude00":1}',
  );
  assert.equal(
    canonical('"\\u0000\\u0007\\b\\t\\n\\u000b\\f\\r\\u001f \\"\\\\\\/\u007f\u00e9\u2028"'),
    '"\\u0000\\u0007\\b\\t\\n\\u000b\\f\\r\\u001f \\"\\\\/\u007f\u00e9\u2028"',
  );
  assert.equal(
    canonical('{"seq": 7, "actor": {"name": "Zoë", "id": 42}, "action": "login\\n\\"ok\\"", "tags": [{"b": false, "a": null}, 1.5, -3]}'),
    '{"action":"login\\n\\"ok\\"","actor":{"id":42,"name":"Zoë"},"seq":7,"tags":[{"a":null,"b":false},1.5,-3]}',
  );
  assert.equal(canonical('{"a":1,"a":2}'), '{"a":2}');
  assert.throws(() => parseExact('{"a":1} x'), /trailing/);
  assert.throws(() => parseExact('[01]'), /expected/);
  // What serde_json refuses: a lone surrogate (it would hash like U+FFFD), a raw control character.
  assert.throws(() => parseExact('"\\ud800"'), /surrogate/);
  assert.throws(() => parseExact('"a\u0001"'), /control/);
});

// testonly.LeafInputs and RootHashes of the transparency-dev vectors.
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const INCLUSION = [
  [0, 1, []],
  [0, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [5, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [1, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];
const CONSISTENCY = [
  [1, 1, []],
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
  [6, 7, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
];

/** A copy of `bytes` with one bit flipped. */
function flipped(bytes) {
  const copy = Uint8Array.from(bytes);
  copy[copy.length - 1] ^= 1;
  return copy;
}

test('inclusion proofs of the RFC 9162 vectors verify, and every corruption fails', async () => {
  assert.equal(toHex(await leafHash(new Uint8Array())), ROOTS[1]);
  for (const [index, size, path] of INCLUSION) {
    const leaf = await leafHash(fromHex(LEAVES[index]));
    const proof = path.map(fromHex);
    const root = fromHex(ROOTS[size]);
    await verifyInclusion(leaf, index, size, proof, root);
    await assert.rejects(verifyInclusion(flipped(leaf), index, size, proof, root));
    await assert.rejects(verifyInclusion(leaf, index, size, proof, flipped(root)));
    await assert.rejects(verifyInclusion(leaf, index + 1, size, proof, root));
    // (The size itself is authenticated by the signed checkpoint, not by the proof.)
    await assert.rejects(verifyInclusion(leaf, index, size, [...proof, proof[0] ?? root], root));
    for (let i = 0; i < proof.length; i++) {
      const bad = proof.map((hash, j) => (i === j ? flipped(hash) : hash));
      await assert.rejects(verifyInclusion(leaf, index, size, bad, root));
    }
    if (proof.length) await assert.rejects(verifyInclusion(leaf, index, size, proof.slice(1), root));
  }
});

test('consistency proofs of the vectors verify, and rollbacks and forks fail', async () => {
  for (const [oldSize, newSize, path] of CONSISTENCY) {
    const oldRoot = fromHex(ROOTS[oldSize]);
    const newRoot = fromHex(ROOTS[newSize]);
    await verifyConsistency(oldSize, oldRoot, newSize, newRoot, path);
    await assert.rejects(verifyConsistency(oldSize, flipped(oldRoot), newSize, newRoot, path));
    await assert.rejects(verifyConsistency(oldSize, oldRoot, newSize, flipped(newRoot), path));
    for (let i = 0; i < path.length; i++) {
      const bad = path.map((hash, j) => (i === j ? toHex(flipped(fromHex(hash))) : hash));
      await assert.rejects(verifyConsistency(oldSize, oldRoot, newSize, newRoot, bad));
    }
  }
  // A trail smaller than the one seen before was rolled back.
  await assert.rejects(verifyConsistency(8, fromHex(ROOTS[8]), 6, fromHex(ROOTS[6]), []), /rolled back/);
});

/** A signing key and its verifier key text `<name>+<hash>+<base64(0x01 || key)>`. */
async function signer(name) {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const blob = Uint8Array.of(1, ...raw);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', Uint8Array.of(...new TextEncoder().encode(`${name}\n`), ...blob)));
  const hash = digest.slice(0, 4);
  const text = `${name}+${toHex(hash)}+${Buffer.from(blob).toString('base64')}`;
  const sign = async (body) => {
    const signature = new Uint8Array(await crypto.subtle.sign({ name: 'Ed25519' }, pair.privateKey, new TextEncoder().encode(body)));
    return `\u2014 ${name} ${Buffer.from(Uint8Array.of(...hash, ...signature)).toString('base64')}\n`;
  };
  return { text, sign };
}

test('a signed checkpoint verifies only with the pinned key and unaltered', async () => {
  const ours = await signer('logbook');
  const theirs = await signer('logbook');
  const root = Buffer.from(fromHex(ROOTS[8])).toString('base64');
  const body = `logbook/default\n8\n${root}\ntime 1796662720\n`;
  const note = `${body}\n${await ours.sign(body)}`;
  const key = await parseKey(ours.text);
  const checkpoint = await verifyCheckpoint(note, key);
  assert.equal(checkpoint.tenant, 'default');
  assert.equal(checkpoint.size, 8);
  assert.equal(toHex(checkpoint.root), ROOTS[8]);
  // Another signer's line beside ours is ignored; theirs alone is refused.
  assert.equal((await verifyCheckpoint(`${body}\n${await theirs.sign(body)}${await ours.sign(body)}`, key)).size, 8);
  await assert.rejects(verifyCheckpoint(`${body}\n${await theirs.sign(body)}`, key), /not signed by the pinned key/);
  // A changed size, root or time breaks the signature.
  for (const altered of [body.replace('\n8\n', '\n9\n'), body.replace('time 1796662720', 'time 1796662721')]) {
    await assert.rejects(verifyCheckpoint(`${altered}\n${await ours.sign(body)}`, key), /does not verify/);
  }
  // Malformed notes and keys.
  await assert.rejects(verifyCheckpoint(`${body}extra\n\n${await ours.sign(body)}`, key), /4 lines/);
  await assert.rejects(verifyCheckpoint(note.slice(0, -1), key), /newline/);
  await assert.rejects(parseKey(ours.text.replace(/\+[0-9a-f]{8}\+/, '+00000000+')), /hash/);
});

test('an event verifies only by its own bytes, in its tenant, against the given checkpoint', async () => {
  const texts = [
    '{"id":"a","tenant":"acme","seq":0,"message":"first","attributes":{"n":9007199254740993}}',
    '{"id":"b","tenant":"acme","seq":1,"message":"second"}',
  ];
  const leaves = await Promise.all(texts.map((text) => leafHash(canonicalBytes(parseExact(text)))));
  const root = new Uint8Array(await crypto.subtle.digest('SHA-256', Uint8Array.of(1, ...leaves[0], ...leaves[1])));
  const checkpoint = { tenant: 'acme', size: 2, root, note: 'the note' };
  const answer = (i, extra = {}) => ({
    id: ['a', 'b'][i], seq: i, size: 2, pruned: false, leaf_hash: toHex(leaves[i]),
    proof: [toHex(leaves[1 - i])], checkpoint: { note: 'the note' }, ...extra,
  });
  const verify = (text, proof, tenant = 'acme') => verifyEvent(parseExact(text), proof, checkpoint, tenant);
  assert.equal((await verify(texts[0], answer(0))).status, 'verified');
  assert.equal((await verify(texts[1], answer(1))).status, 'verified');
  // A fabricated body is hashed, whatever the server says of it (pruned, its leaf hash).
  const forged = texts[1].replace('second', 'admin granted');
  assert.equal((await verify(forged, answer(1))).status, 'failed');
  assert.equal((await verify(forged, answer(1, { pruned: true }))).status, 'failed');
  // The big integer is hashed from its digits, not a rounded double.
  assert.equal((await verify(texts[0].replace('993', '992'), answer(0))).status, 'failed');
  // Another event's proof, another seq, another checkpoint, another tenant.
  assert.equal((await verify(texts[1], answer(0))).status, 'failed');
  assert.equal((await verify(texts[1], answer(1, { seq: 0 }))).status, 'failed');
  assert.equal((await verify(texts[1], answer(1, { checkpoint: { note: 'another' } }))).status, 'failed');
  assert.equal((await verify(texts[1], answer(1), 'other')).status, 'failed');
  // Hashes of the wrong size or form never enter the walk.
  for (const bad of ['', 'ab', toHex(leaves[0]) + toHex(leaves[0]), toHex(leaves[0]).toUpperCase()]) {
    assert.equal((await verify(texts[1], answer(1, { proof: [bad] }))).status, 'failed', bad);
  }
});

test('proof elements and sizes are checked before the walk', async () => {
  const leaf = await leafHash(fromHex(LEAVES[0]));
  const root = fromHex(ROOTS[1]);
  await assert.rejects(verifyInclusion(leaf, -1, 1, [], root), /index/);
  await assert.rejects(verifyInclusion(leaf, 0.5, 1, [], root), /index/);
  // A 64-byte element followed by an empty one cannot skip a level.
  const [oldSize, newSize, path] = CONSISTENCY[2];
  const doubled = [path[0] + path[1], '', path[2]];
  await assert.rejects(verifyConsistency(oldSize, fromHex(ROOTS[oldSize]), newSize, fromHex(ROOTS[newSize]), doubled), /64 hex/);
  await assert.rejects(verifyConsistency(oldSize, fromHex(ROOTS[oldSize]), newSize, fromHex(ROOTS[newSize]), path.slice(0, 2)), /length/);
});

// RFC 9162 §2.1.3.1 and §2.1.4.1, written from their recursive definitions,
// to produce every proof of small trees for the verifier to take or refuse.
const hashOf = async (...parts) => new Uint8Array(await crypto.subtle.digest('SHA-256', Uint8Array.of(...parts.flatMap((p) => [...p]))));
const split = (n) => 2 ** Math.ceil(Math.log2(n) - 1);
async function treeHash(leaves) {
  if (leaves.length === 1) return leaves[0];
  const k = split(leaves.length);
  return hashOf([1], await treeHash(leaves.slice(0, k)), await treeHash(leaves.slice(k)));
}
async function path(m, leaves) {
  if (leaves.length === 1) return [];
  const k = split(leaves.length);
  return m < k
    ? [...(await path(m, leaves.slice(0, k))), await treeHash(leaves.slice(k))]
    : [...(await path(m - k, leaves.slice(k))), await treeHash(leaves.slice(0, k))];
}
async function subproof(m, leaves, complete) {
  if (m === leaves.length) return complete ? [] : [await treeHash(leaves)];
  const k = split(leaves.length);
  return m <= k
    ? [...(await subproof(m, leaves.slice(0, k), complete)), await treeHash(leaves.slice(k))]
    : [...(await subproof(m - k, leaves.slice(k), false)), await treeHash(leaves.slice(0, k))];
}

test('every proof of trees of 1 to 24 leaves verifies, and truncated, extended or altered ones fail', async () => {
  const leaves = await Promise.all(Array.from({ length: 24 }, (_, i) => leafHash(new TextEncoder().encode(`leaf ${i}`))));
  const roots = [null];
  for (let n = 1; n <= leaves.length; n++) roots.push(await treeHash(leaves.slice(0, n)));
  const variants = (proof) => [
    [...proof, roots[1]],
    ...(proof.length ? [proof.slice(1), proof.slice(0, -1)] : []),
    ...proof.map((_, i) => proof.map((hash, j) => (i === j ? flipped(hash) : hash))),
  ];
  for (let n = 1; n <= leaves.length; n++) {
    for (let m = 0; m < n; m++) {
      const proof = await path(m, leaves.slice(0, n));
      await verifyInclusion(leaves[m], m, n, proof, roots[n]);
      for (const bad of variants(proof)) await assert.rejects(verifyInclusion(leaves[m], m, n, bad, roots[n]));
      if (n > 1) await assert.rejects(verifyInclusion(leaves[m], (m + 1) % n, n, proof, roots[n]));
    }
    for (let m = 1; m < n; m++) {
      const proof = await subproof(m, leaves.slice(0, n), true);
      await verifyConsistency(m, roots[m], n, roots[n], proof.map(toHex));
      for (const bad of variants(proof)) {
        await assert.rejects(verifyConsistency(m, roots[m], n, roots[n], bad.map(toHex)), `m=${m} n=${n}`);
      }
      await assert.rejects(verifyConsistency(n, roots[n], m, roots[m], proof.map(toHex)), /rolled back/);
    }
  }
});
