// The public logger: validates options, turns calls into event lines, and hands
// them to the shipper. Child loggers share their parent's buffer and add fields.

import { hostname } from 'node:os';

import { LEVELS, eventLine } from './event.js';
import { Shipper } from './shipper.js';
import { Transport } from './transport.js';

const DEFAULTS = Object.freeze({
  batchSize: 1000,
  flushIntervalMs: 1000,
  maxBuffered: 10000,
  timeoutMs: 10000,
  maxAttempts: 5,
  retryBaseMs: 500,
  maxRetryDelayMs: 30000,
});

/**
 * Creates a logger that batches events and sends them to Logbook in the background.
 * Throws a TypeError for invalid options; logging calls themselves never throw.
 *
 * @param {import('../index.js').LoggerOptions} options
 * @returns {Logger}
 */
export function createLogger(options) {
  if (options === null || typeof options !== 'object') throw new TypeError('createLogger needs an options object');
  const { url, apiKey, signingKey, service } = options;
  if (typeof url !== 'string' || !URL.canParse(url)) throw new TypeError('options.url must be an absolute URL');
  if ((apiKey === undefined) === (signingKey === undefined)) {
    throw new TypeError('give exactly one of options.apiKey and options.signingKey');
  }
  if (apiKey !== undefined && (typeof apiKey !== 'string' || apiKey === '')) {
    throw new TypeError('options.apiKey must be a non-empty string');
  }
  if (signingKey !== undefined && !(typeof signingKey?.id === 'string' && typeof signingKey?.key === 'string')) {
    throw new TypeError('options.signingKey must be { id, key } with two strings');
  }
  if (typeof service !== 'string' || service === '') throw new TypeError('options.service must be a non-empty string');
  const settings = { ...DEFAULTS };
  for (const name of Object.keys(DEFAULTS)) {
    const value = options[name];
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value < (name === 'retryBaseMs' ? 0 : 1)) {
      throw new TypeError(`options.${name} must be a positive number`);
    }
    settings[name] = value;
  }
  const host = options.host === undefined ? hostname() : options.host;

  let shipper;
  const transport = new Transport({
    url,
    apiKey,
    signingKey: signingKey && { id: signingKey.id, key: signingKey.key },
    fetch: options.fetch ?? globalThis.fetch,
    timeoutMs: settings.timeoutMs,
    maxAttempts: settings.maxAttempts,
    retryBaseMs: settings.retryBaseMs,
    maxRetryDelayMs: settings.maxRetryDelayMs,
    sleep: (ms) => shipper.sleep(ms),
  });
  shipper = new Shipper({
    batchSize: settings.batchSize,
    maxBuffered: settings.maxBuffered,
    flushIntervalMs: settings.flushIntervalMs,
    transport,
    onError: options.onError,
  });
  const base = { service };
  if (host !== null) base.host = host;
  return new Logger(shipper, base);
}

/** Sends events; see index.d.ts for the documented surface. */
export class Logger {
  #shipper;
  #fields;

  /**
   * @param {Shipper} shipper
   * @param {Record<string, unknown>} fields added to every event
   */
  constructor(shipper, fields) {
    this.#shipper = shipper;
    this.#fields = Object.freeze({ ...fields });
  }

  /** Logs at `info`, like console.log. */
  log(message, attributes) {
    this.#emit('info', message, attributes);
  }

  trace(message, attributes) {
    this.#emit('trace', message, attributes);
  }

  debug(message, attributes) {
    this.#emit('debug', message, attributes);
  }

  info(message, attributes) {
    this.#emit('info', message, attributes);
  }

  warn(message, attributes) {
    this.#emit('warn', message, attributes);
  }

  error(message, attributes) {
    this.#emit('error', message, attributes);
  }

  fatal(message, attributes) {
    this.#emit('fatal', message, attributes);
  }

  /**
   * Logs at a level chosen at run time; an unknown level logs at `info`.
   *
   * @param {string} level
   */
  at(level, message, attributes) {
    this.#emit(LEVELS.includes(level) ? level : 'info', message, attributes);
  }

  /** A logger that adds `fields` to every event, sharing this logger's buffer. */
  child(fields) {
    const extra = fields !== null && typeof fields === 'object' ? fields : {};
    return new Logger(this.#shipper, { ...this.#fields, ...extra });
  }

  flush() {
    return this.#shipper.flush();
  }

  close() {
    return this.#shipper.close();
  }

  stats() {
    return this.#shipper.stats();
  }

  #emit(level, message, attributes) {
    this.#shipper.push(eventLine(this.#fields, level, message, attributes, new Date()));
  }
}
