// Reading and making W3C traceparent headers.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from '../src/index.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

test('a valid version-00 header gives its ids and flags', () => {
  assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-01`), { traceId: TRACE, parentSpanId: SPAN, flags: '01' });
  assert.deepEqual(parseTraceparent(` 00-${TRACE}-${SPAN}-00 `), { traceId: TRACE, parentSpanId: SPAN, flags: '00' });
});

test('anything else is refused', () => {
  const refused = [
    undefined,
    '',
    ['00', TRACE, SPAN, '01'].join('-').toUpperCase(),
    `01-${TRACE}-${SPAN}-01`,
    `ff-${TRACE}-${SPAN}-01`,
    `00-${'0'.repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `00-${TRACE.slice(1)}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}-01-extra`,
    `00-${TRACE}-${SPAN}`,
    `00-${TRACE.replace('4', 'g')}-${SPAN}-01`,
    [`00-${TRACE}-${SPAN}-01`],
  ];
  for (const header of refused) assert.equal(parseTraceparent(header), null, String(header));
});

test('new ids are random lower-case hex of the right length', () => {
  const traces = new Set(Array.from({ length: 50 }, newTraceId));
  const spans = new Set(Array.from({ length: 50 }, newSpanId));
  assert.equal(traces.size, 50);
  assert.equal(spans.size, 50);
  for (const id of traces) assert.match(id, /^[0-9a-f]{32}$/);
  for (const id of spans) assert.match(id, /^[0-9a-f]{16}$/);
});

test('a formatted header parses back to the same ids', () => {
  const header = formatTraceparent(TRACE, SPAN, '01');
  assert.equal(header, `00-${TRACE}-${SPAN}-01`);
  assert.deepEqual(parseTraceparent(header), { traceId: TRACE, parentSpanId: SPAN, flags: '01' });
});
