// W3C Trace Context `traceparent` headers: reading a caller's, and making new ids.
// Spec: version "00", a 16-byte trace id and an 8-byte parent span id in lower-case
// hex, neither all zeros, then one byte of flags.

import { randomBytes } from 'node:crypto';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Parses a `traceparent` header. Only version 00 is accepted, with non-zero ids;
 * anything else (absent, malformed, an unknown version) gives `null`, and the
 * caller starts a new trace.
 *
 * @param {unknown} header
 * @returns {{ traceId: string, parentSpanId: string, flags: string } | null}
 */
export function parseTraceparent(header) {
  if (typeof header !== 'string') return null;
  const match = TRACEPARENT.exec(header.trim());
  if (match === null) return null;
  const [, version, traceId, parentSpanId, flags] = match;
  if (version !== '00' || traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return null;
  return { traceId, parentSpanId, flags };
}

/** A random 16-byte trace id in hex (never all zeros). */
export function newTraceId() {
  return nonZeroHex(16);
}

/** A random 8-byte span id in hex (never all zeros). */
export function newSpanId() {
  return nonZeroHex(8);
}

/**
 * Formats a version-00 `traceparent`.
 *
 * @param {string} traceId
 * @param {string} spanId
 * @param {string} flags two hex digits; `01` means sampled
 */
export function formatTraceparent(traceId, spanId, flags) {
  return `00-${traceId}-${spanId}-${flags}`;
}

function nonZeroHex(bytes) {
  for (;;) {
    const hex = randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(hex)) return hex;
  }
}
