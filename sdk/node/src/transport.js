// Sends one batch of NDJSON lines to `POST {url}/v1/logs`, gzip-compressed and
// authenticated, retrying what a retry can fix: 429 and 503 after their
// Retry-After, network errors and other 5xx with exponential backoff.

import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';

import { signedHeaders } from './sign.js';

const gzip = promisify(gzipCallback);

const USER_AGENT = 'logbook-node/0.1.0';

/**
 * What became of one batch.
 *
 * @typedef {object} Outcome
 * @property {number} accepted events the server stored
 * @property {number} rejected events the server refused (one by one, or the whole batch with a 4xx)
 * @property {number} failed events given up on after the last attempt
 * @property {Error} [error] why some were not accepted
 */

export class Transport {
  #endpoint;
  #pathAndQuery;
  #apiKey;
  #signingKey;
  #fetch;
  #timeoutMs;
  #maxAttempts;
  #retryBaseMs;
  #maxRetryDelayMs;
  #sleep;

  /**
   * @param {object} options
   * @param {string} options.url the server's base URL
   * @param {string} [options.apiKey]
   * @param {{ id: string, key: string }} [options.signingKey]
   * @param {typeof fetch} options.fetch
   * @param {number} options.timeoutMs per attempt
   * @param {number} options.maxAttempts attempts per batch, the first included
   * @param {number} options.retryBaseMs the first backoff; it doubles per attempt
   * @param {number} options.maxRetryDelayMs the longest wait between attempts, Retry-After included
   * @param {(ms: number) => Promise<void>} options.sleep
   */
  constructor(options) {
    const endpoint = new URL(`${options.url.replace(/\/+$/, '')}/v1/logs`);
    this.#endpoint = endpoint.href;
    this.#pathAndQuery = endpoint.pathname + endpoint.search;
    this.#apiKey = options.apiKey;
    this.#signingKey = options.signingKey;
    this.#fetch = options.fetch;
    this.#timeoutMs = options.timeoutMs;
    this.#maxAttempts = options.maxAttempts;
    this.#retryBaseMs = options.retryBaseMs;
    this.#maxRetryDelayMs = options.maxRetryDelayMs;
    this.#sleep = options.sleep;
  }

  /**
   * Sends the lines as one request, retrying as needed. Never throws.
   *
   * @param {string[]} lines
   * @returns {Promise<Outcome>}
   */
  async send(lines) {
    const count = lines.length;
    let body;
    try {
      body = await gzip(`${lines.join('\n')}\n`);
    } catch (error) {
      return { accepted: 0, rejected: 0, failed: count, error: asError(error) };
    }
    let lastSecond = 0;
    let lastError;
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt += 1) {
      // The server remembers every signature it accepted: a retry must not
      // repeat one, so it signs with a later second than the attempt before.
      let second = Math.floor(Date.now() / 1000);
      if (this.#signingKey !== undefined && second <= lastSecond) {
        await this.#sleep((lastSecond + 1) * 1000 - Date.now());
        second = lastSecond + 1;
      }
      lastSecond = second;

      let response;
      try {
        response = await this.#fetch(this.#endpoint, {
          method: 'POST',
          headers: this.#headers(second, body),
          body,
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
      } catch (error) {
        lastError = asError(error);
        if (attempt < this.#maxAttempts) await this.#sleep(this.#backoff(attempt));
        continue;
      }

      const answer = await readJson(response);
      if (response.ok) {
        const rejected = Number.isInteger(answer?.rejected) ? answer.rejected : 0;
        const accepted = Number.isInteger(answer?.accepted) ? answer.accepted : count - rejected;
        const error =
          rejected > 0 ? new Error(`${rejected} of ${count} events refused: ${firstReason(answer)}`) : undefined;
        return { accepted, rejected, failed: 0, error };
      }
      lastError = new Error(`HTTP ${response.status}: ${reason(answer)}`);
      if (response.status === 429 || response.status === 503) {
        const wait = retryAfterMs(response.headers.get('retry-after')) ?? this.#backoff(attempt);
        if (attempt < this.#maxAttempts) await this.#sleep(Math.min(wait, this.#maxRetryDelayMs));
        continue;
      }
      if (response.status >= 500 || response.status === 408) {
        if (attempt < this.#maxAttempts) await this.#sleep(this.#backoff(attempt));
        continue;
      }
      // Any other 4xx: sending the same batch again cannot help.
      return { accepted: 0, rejected: count, failed: 0, error: lastError };
    }
    return { accepted: 0, rejected: 0, failed: count, error: lastError };
  }

  #headers(second, body) {
    const headers = {
      'content-type': 'application/x-ndjson',
      'content-encoding': 'gzip',
      'user-agent': USER_AGENT,
    };
    if (this.#signingKey !== undefined) {
      return { ...headers, ...signedHeaders(this.#signingKey, second, 'POST', this.#pathAndQuery, body) };
    }
    return { ...headers, authorization: `Bearer ${this.#apiKey}` };
  }

  /** Exponential with jitter: between half and all of base * 2^(attempt-1), capped. */
  #backoff(attempt) {
    const full = Math.min(this.#retryBaseMs * 2 ** (attempt - 1), this.#maxRetryDelayMs);
    return full / 2 + Math.random() * (full / 2);
  }
}

/**
 * Retry-After as milliseconds: delta-seconds or an HTTP date; `undefined` when
 * absent or unreadable.
 *
 * @param {string | null} header
 * @returns {number | undefined}
 */
export function retryAfterMs(header) {
  if (header === null || header.trim() === '') return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The answer's JSON body, or `undefined`; the body is always consumed so the connection is reused. */
async function readJson(response) {
  try {
    return JSON.parse(await response.text());
  } catch {
    return undefined;
  }
}

function reason(answer) {
  if (answer !== null && typeof answer === 'object' && typeof answer.code === 'string') {
    return `${answer.code}: ${answer.message ?? ''}`;
  }
  return 'no error body';
}

function firstReason(answer) {
  const first = Array.isArray(answer?.errors) ? answer.errors[0] : undefined;
  return first === undefined ? 'no reason given' : `${first.code}: ${first.message}`;
}

function asError(error) {
  return error instanceof Error ? error : new Error(String(error));
}
