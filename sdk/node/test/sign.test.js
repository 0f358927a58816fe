// The request signature against README "Signed requests": the worked example,
// and the headers a signed request carries.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { signRequest } from '../src/index.js';
import { signedHeaders } from '../src/sign.js';

const EXAMPLE_KEY = 'lbk_example_signing_key_0123456789abcdef';

test('the README worked example signs to its published digest', () => {
  const signature = signRequest(EXAMPLE_KEY, '1763900000', 'POST', '/v1/logs', '{"message":"hello"}');
  assert.equal(signature, '7f1dbb2d403545a1b48f52cf3e6e62ba54211d71f515a73126fdabefc3fee504');
});

test('a body given as bytes signs like the same body as text', () => {
  const text = signRequest(EXAMPLE_KEY, '1763900000', 'POST', '/v1/logs', '{"message":"hello"}');
  const bytes = signRequest(EXAMPLE_KEY, '1763900000', 'POST', '/v1/logs', Buffer.from('{"message":"hello"}'));
  assert.equal(bytes, text);
});

test('every signed part changes the signature', () => {
  const base = ['1763900000', 'POST', '/v1/logs', '{"message":"hello"}'];
  const reference = signRequest(EXAMPLE_KEY, ...base);
  const variants = [
    ['1763900001', 'POST', '/v1/logs', '{"message":"hello"}'],
    ['1763900000', 'PUT', '/v1/logs', '{"message":"hello"}'],
    ['1763900000', 'POST', '/v1/logs?wait=searchable', '{"message":"hello"}'],
    ['1763900000', 'POST', '/v1/logs', '{"message":"hellp"}'],
  ];
  for (const variant of variants) assert.notEqual(signRequest(EXAMPLE_KEY, ...variant), reference, variant.join(' '));
  assert.notEqual(signRequest(`${EXAMPLE_KEY}x`, ...base), reference);
});

test('signed headers carry the key id, the timestamp and the signature', () => {
  const headers = signedHeaders({ id: 'key_1', key: EXAMPLE_KEY }, 1763900000, 'POST', '/v1/logs', '{"message":"hello"}');
  assert.deepEqual(headers, {
    'x-logbook-key-id': 'key_1',
    'x-logbook-timestamp': '1763900000',
    'x-logbook-signature': '7f1dbb2d403545a1b48f52cf3e6e62ba54211d71f515a73126fdabefc3fee504',
  });
});
