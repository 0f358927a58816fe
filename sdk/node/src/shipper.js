// The bounded buffer between logging calls and the network: calls only push a
// line (or drop it when the buffer is full); one background loop sends batches,
// one request at a time, and keeps the counts `stats()` reports.

/**
 * @typedef {object} Stats
 * @property {number} sent events the server accepted
 * @property {number} dropped events thrown away before sending: the buffer was full, or the logger closed
 * @property {number} rejected events the server refused (invalid, or the request answered with a 4xx)
 * @property {number} failed events given up on after every retry (network errors, 5xx, 429)
 * @property {number} buffered events waiting to be sent, or being sent now
 */

export class Shipper {
  #lines = [];
  #inFlight = 0;
  #batchSize;
  #maxBuffered;
  #transport;
  #onError;
  #timer;
  /** @type {Promise<void> | null} */
  #draining = null;
  #closed = false;
  #dropping = false;
  #kickScheduled = false;
  /** Explicit flush() calls waiting: while any does, retry waits hold the process open. */
  #waiters = 0;
  /** @type {Set<NodeJS.Timeout>} */
  #sleeps = new Set();
  #counts = { sent: 0, dropped: 0, rejected: 0, failed: 0 };

  /**
   * @param {object} options
   * @param {number} options.batchSize
   * @param {number} options.maxBuffered
   * @param {number} options.flushIntervalMs
   * @param {import('./transport.js').Transport} options.transport
   * @param {(error: Error) => void} [options.onError]
   */
  constructor(options) {
    this.#batchSize = options.batchSize;
    this.#maxBuffered = options.maxBuffered;
    this.#transport = options.transport;
    this.#onError = options.onError;
    this.#timer = setInterval(() => this.#kick(), options.flushIntervalMs);
    this.#timer.unref();
  }

  /**
   * A timer for the transport's waits: unref'd, unless someone awaits flush().
   *
   * @param {number} ms
   * @returns {Promise<void>}
   */
  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sleeps.delete(timer);
        resolve();
      }, Math.max(0, ms));
      if (this.#waiters === 0) timer.unref();
      this.#sleeps.add(timer);
    });
  }

  /**
   * Adds one line; never blocks and never throws.
   *
   * @param {string} line
   */
  push(line) {
    if (this.#closed || this.#lines.length + this.#inFlight >= this.#maxBuffered) {
      this.#counts.dropped += 1;
      if (!this.#dropping) {
        this.#dropping = true;
        this.#report(
          new Error(this.#closed ? 'the logger is closed; events are dropped' : 'the buffer is full; events are dropped'),
        );
      }
      return;
    }
    this.#dropping = false;
    this.#lines.push(line);
    if (this.#lines.length >= this.#batchSize && !this.#kickScheduled) {
      // Sent on the next turn of the event loop, never inside the caller's call.
      this.#kickScheduled = true;
      setImmediate(() => {
        this.#kickScheduled = false;
        this.#kick();
      });
    }
  }

  /** Sends everything buffered so far, and resolves once the last batch is settled. */
  async flush() {
    this.#waiters += 1;
    for (const timer of this.#sleeps) timer.ref();
    try {
      while (this.#lines.length > 0 || this.#draining !== null) {
        this.#kick();
        await this.#draining;
      }
    } finally {
      this.#waiters -= 1;
      if (this.#waiters === 0) for (const timer of this.#sleeps) timer.unref();
    }
  }

  /** Stops taking events, sends what is buffered, and stops the timer. */
  async close() {
    this.#closed = true;
    clearInterval(this.#timer);
    await this.flush();
  }

  /** @returns {Stats} */
  stats() {
    return { ...this.#counts, buffered: this.#lines.length + this.#inFlight };
  }

  #kick() {
    if (this.#draining !== null || this.#lines.length === 0) return;
    this.#draining = this.#drain().finally(() => {
      this.#draining = null;
    });
  }

  async #drain() {
    while (this.#lines.length > 0) {
      const batch = this.#lines.splice(0, this.#batchSize);
      this.#inFlight = batch.length;
      const outcome = await this.#transport.send(batch);
      this.#inFlight = 0;
      this.#counts.sent += outcome.accepted;
      this.#counts.rejected += outcome.rejected;
      this.#counts.failed += outcome.failed;
      if (outcome.error !== undefined) this.#report(outcome.error);
    }
  }

  #report(error) {
    if (this.#onError === undefined) return;
    try {
      this.#onError(error);
    } catch {
      // A failing error callback must not break logging.
    }
  }
}
