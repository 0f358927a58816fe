// The JSON line one logging call becomes.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { eventLine } from '../src/event.js';

const NOW = new Date('2026-03-01T12:00:00.123Z');
const BASE = { service: 'checkout', host: 'web-1' };

test('the modelled fields sit at the top level beside the attributes', () => {
  const line = eventLine({ ...BASE, trace_id: 't1' }, 'warn', 'card declined', { user_id: 42, orderId: 'ORD-1', span_id: 's1' }, NOW);
  assert.deepEqual(JSON.parse(line), {
    timestamp: '2026-03-01T12:00:00.123Z',
    level: 'warn',
    message: 'card declined',
    service: 'checkout',
    host: 'web-1',
    trace_id: 't1',
    span_id: 's1',
    user_id: 42,
    orderId: 'ORD-1',
  });
});

test('the call decides level and message; attributes may set service and timestamp', () => {
  const event = JSON.parse(
    eventLine(BASE, 'error', 'boom', { level: 'debug', message: 'other', service: 'billing', timestamp: new Date(0) }, NOW),
  );
  assert.equal(event.level, 'error');
  assert.equal(event.message, 'boom');
  assert.equal(event.service, 'billing');
  assert.equal(event.timestamp, '1970-01-01T00:00:00.000Z');
});

test('errors, bigints and non-string messages survive serialisation', () => {
  const error = new TypeError('bad input');
  const event = JSON.parse(eventLine(BASE, 'info', 12, { error, big: 2n ** 70n, missing: undefined }, NOW));
  assert.equal(event.message, '12');
  assert.deepEqual(event.error, { name: 'TypeError', message: 'bad input', stack: error.stack });
  assert.equal(event.big, '1180591620717411303424');
  assert.equal('missing' in event, false);
});

test('attributes that cannot be serialised are replaced by a note, the message still goes', () => {
  const cycle = {};
  cycle.self = cycle;
  const event = JSON.parse(eventLine(BASE, 'info', 'hello', { cycle }, NOW));
  assert.equal(event.message, 'hello');
  assert.equal(event.service, 'checkout');
  assert.equal(event.host, 'web-1');
  assert.match(event.logbook_sdk_error, /^attributes dropped: TypeError: .*circular/i);
  assert.equal('cycle' in event, false);
});
