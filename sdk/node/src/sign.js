// The HMAC signature of a request to Logbook (README "Signed requests"): the
// server recomputes it over the body exactly as it arrives, so a compressed
// request is signed over its compressed bytes.

import { createHmac } from 'node:crypto';

/**
 * hex(HMAC-SHA256(key, timestamp "\n" METHOD "\n" path?query "\n" body)).
 *
 * @param {string} key the signing key's secret (`lbk_…`)
 * @param {string} timestamp Unix seconds, as sent in X-Logbook-Timestamp
 * @param {string} method upper-case HTTP method
 * @param {string} pathAndQuery the request target as the server sees it, e.g. `/v1/logs`
 * @param {Uint8Array | string} body the bytes sent
 * @returns {string}
 */
export function signRequest(key, timestamp, method, pathAndQuery, body) {
  return createHmac('sha256', key)
    .update(`${timestamp}\n${method}\n${pathAndQuery}\n`)
    .update(body)
    .digest('hex');
}

/**
 * The three headers of a signed request.
 *
 * @param {{ id: string, key: string }} signingKey
 * @param {number} unixSeconds
 * @param {string} method
 * @param {string} pathAndQuery
 * @param {Uint8Array | string} body
 * @returns {Record<string, string>}
 */
export function signedHeaders(signingKey, unixSeconds, method, pathAndQuery, body) {
  const timestamp = String(unixSeconds);
  return {
    'x-logbook-key-id': signingKey.id,
    'x-logbook-timestamp': timestamp,
    'x-logbook-signature': signRequest(signingKey.key, timestamp, method, pathAndQuery, body),
  };
}
