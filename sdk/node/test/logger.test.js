// The logger against a scripted local server: batching, retries, refusals, an
// unreachable server, signed requests, and timers that never hold the process.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { createLogger, signRequest } from '../src/index.js';
import { acceptAll, startCapture, unusedUrl } from './support/capture.js';

const QUIET = { flushIntervalMs: 60_000, host: 'test-host' };

test('a batch answered 503 with Retry-After 1 is sent again after a second, and arrives once', async (t) => {
  const server = await startCapture((request) =>
    request.index === 0 ? { status: 503, headers: { 'retry-after': '1' }, body: { code: 'queue_full' } } : acceptAll(request),
  );
  t.after(() => server.close());
  const logger = createLogger({ url: server.url, apiKey: 'lbk_test', service: 'checkout', ...QUIET });

  logger.info('first', { orderId: 'ORD-1' });
  logger.warn('second');
  logger.error('third', { user_id: 7, trace_id: 'abc' });
  await logger.flush();

  assert.equal(server.requests.length, 2);
  const [refused, accepted] = server.requests;
  assert.deepEqual(accepted.lines, refused.lines);
  assert.ok(accepted.at - refused.at >= 950, `retried after ${accepted.at - refused.at} ms`);
  assert.equal(accepted.method, 'POST');
  assert.equal(accepted.url, '/v1/logs');
  assert.equal(accepted.headers['content-type'], 'application/x-ndjson');
  assert.equal(accepted.headers['content-encoding'], 'gzip');
  assert.equal(accepted.headers.authorization, 'Bearer lbk_test');
  assert.deepEqual(
    accepted.lines.map(({ level, message, service, host }) => ({ level, message, service, host })),
    [
      { level: 'info', message: 'first', service: 'checkout', host: 'test-host' },
      { level: 'warn', message: 'second', service: 'checkout', host: 'test-host' },
      { level: 'error', message: 'third', service: 'checkout', host: 'test-host' },
    ],
  );
  assert.equal(accepted.lines[0].orderId, 'ORD-1');
  assert.equal(accepted.lines[2].user_id, 7);
  assert.equal(accepted.lines[2].trace_id, 'abc');
  for (const line of accepted.lines) assert.ok(!Number.isNaN(Date.parse(line.timestamp)));
  assert.deepEqual(logger.stats(), { sent: 3, dropped: 0, rejected: 0, failed: 0, buffered: 0 });
  await logger.close();
});

test('a long Retry-After is capped by maxRetryDelayMs', async (t) => {
  const server = await startCapture((request) =>
    request.index === 0 ? { status: 429, headers: { 'retry-after': '120' } } : acceptAll(request),
  );
  t.after(() => server.close());
  const logger = createLogger({ url: server.url, apiKey: 'k', service: 's', maxRetryDelayMs: 100, ...QUIET });
  logger.info('hello');
  await logger.flush();
  assert.equal(server.requests.length, 2);
  assert.ok(server.requests[1].at - server.requests[0].at < 5000);
  assert.equal(logger.stats().sent, 1);
  await logger.close();
});

test('a 4xx drops the batch without a retry and counts it as rejected', async (t) => {
  const server = await startCapture(() => ({ status: 401, body: { status: 401, code: 'invalid_credentials', message: 'no' } }));
  t.after(() => server.close());
  const errors = [];
  const logger = createLogger({ url: server.url, apiKey: 'k', service: 's', onError: (e) => errors.push(e), ...QUIET });
  logger.info('a');
  logger.info('b');
  await logger.flush();
  assert.equal(server.requests.length, 1);
  assert.deepEqual(logger.stats(), { sent: 0, dropped: 0, rejected: 2, failed: 0, buffered: 0 });
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /HTTP 401: invalid_credentials/);
  await logger.close();
});

test('events the server refuses one by one count as rejected, the rest as sent', async (t) => {
  const server = await startCapture(() => ({
    status: 202,
    body: { accepted: 2, rejected: 1, ids: ['a', 'b'], errors: [{ index: 1, line: 2, code: 'event_too_large', message: 'big' }] },
  }));
  t.after(() => server.close());
  const logger = createLogger({ url: server.url, apiKey: 'k', service: 's', ...QUIET });
  for (const message of ['a', 'b', 'c']) logger.info(message);
  await logger.flush();
  assert.deepEqual(logger.stats(), { sent: 2, dropped: 0, rejected: 1, failed: 0, buffered: 0 });
  await logger.close();
});

test('a full batch is sent without waiting for the timer, in batches of batchSize', async (t) => {
  const server = await startCapture(acceptAll);
  t.after(() => server.close());
  const logger = createLogger({ url: server.url, apiKey: 'k', service: 's', batchSize: 2, ...QUIET });
  for (let i = 0; i < 5; i += 1) logger.info(`m${i}`);
  await server.waitFor(2);
  await logger.flush();
  assert.deepEqual(
    server.requests.map((request) => request.lines.map((line) => line.message)),
    [['m0', 'm1'], ['m2', 'm3'], ['m4']],
  );
  await logger.close();
});

test('the timer sends what is buffered', async (t) => {
  const server = await startCapture(acceptAll);
  t.after(() => server.close());
  const logger = createLogger({ url: server.url, apiKey: 'k', service: 's', flushIntervalMs: 20 });
  logger.info('by the timer');
  await server.waitFor(1);
  assert.equal(server.requests[0].lines[0].message, 'by the timer');
  await logger.close();
});

test('an unreachable server: calls neither throw nor wait, overflow is dropped, the rest fails after retries', async () => {
  const errors = [];
  const logger = createLogger({
    url: await unusedUrl(),
    apiKey: 'k',
    service: 's',
    maxBuffered: 5,
    maxAttempts: 3,
    retryBaseMs: 5,
    onError: (error) => errors.push(error),
    ...QUIET,
  });
  const started = performance.now();
  for (let i = 0; i < 8; i += 1) logger.error(`event ${i}`);
  const elapsed = performance.now() - started;
  assert.ok(elapsed < 100, `8 calls took ${elapsed} ms`);
  assert.deepEqual(logger.stats(), { sent: 0, dropped: 3, rejected: 0, failed: 0, buffered: 5 });
  await logger.close();
  assert.deepEqual(logger.stats(), { sent: 0, dropped: 3, rejected: 0, failed: 5, buffered: 0 });
  logger.info('after close');
  assert.equal(logger.stats().dropped, 4);
  assert.match(errors[0].message, /buffer is full/);
  assert.ok(errors.some((error) => /fetch failed|ECONNREFUSED/.test(error.message)), errors.map(String).join('; '));
});

test('signed requests sign the gzip body, and a retry signs afresh with a later timestamp', async (t) => {
  const server = await startCapture((request) =>
    request.index === 0 ? { status: 503, headers: { 'retry-after': '0' } } : acceptAll(request),
  );
  t.after(() => server.close());
  const signingKey = { id: 'key_test', key: 'lbk_signing_secret_0123456789' };
  const logger = createLogger({ url: `${server.url}/`, signingKey, service: 's', ...QUIET });
  logger.info('signed');
  await logger.flush();

  assert.equal(server.requests.length, 2);
  const timestamps = server.requests.map((request) => Number(request.headers['x-logbook-timestamp']));
  assert.ok(timestamps[1] > timestamps[0], `timestamps ${timestamps}`);
  for (const request of server.requests) {
    assert.equal(request.headers.authorization, undefined);
    assert.equal(request.headers['x-logbook-key-id'], 'key_test');
    assert.ok(Math.abs(Number(request.headers['x-logbook-timestamp']) - Date.now() / 1000) < 5);
    const expected = signRequest(signingKey.key, request.headers['x-logbook-timestamp'], 'POST', '/v1/logs', request.raw);
    assert.equal(request.headers['x-logbook-signature'], expected);
  }
  assert.equal(server.requests[1].lines[0].message, 'signed');
  assert.equal(logger.stats().sent, 1);
  await logger.close();
});

test('child loggers add their fields and share the parent buffer', async (t) => {
  const server = await startCapture(acceptAll);
  t.after(() => server.close());
  const logger = createLogger({ url: server.url, apiKey: 'k', service: 's', ...QUIET });
  const child = logger.child({ trace_id: 't1', region: 'eu' });
  child.child({ span_id: 's1' }).debug('deep', { region: 'us' });
  logger.info('plain');
  await child.flush();
  const [deep, plain] = server.requests[0].lines;
  assert.deepEqual([deep.trace_id, deep.span_id, deep.region, deep.level], ['t1', 's1', 'us', 'debug']);
  assert.deepEqual([plain.trace_id, plain.region], [undefined, undefined]);
  assert.equal(logger.stats().sent, 2);
  await logger.close();
});

test('invalid options are refused when the logger is created', () => {
  const ok = { url: 'http://127.0.0.1:1', apiKey: 'k', service: 's' };
  assert.doesNotThrow(() => createLogger(ok).close());
  const bad = [
    { ...ok, url: 'not a url' },
    { ...ok, apiKey: undefined },
    { ...ok, signingKey: { id: 'key', key: 'k' } },
    { url: ok.url, service: 's', signingKey: { id: 'key' } },
    { ...ok, service: '' },
    { ...ok, batchSize: 0 },
    { ...ok, maxBuffered: Number.NaN },
  ];
  for (const options of bad) assert.throws(() => createLogger(options), TypeError, JSON.stringify(options));
});

test('the logger never keeps the process alive, even with events it cannot send', async () => {
  const url = await unusedUrl();
  const script = `
    import { createLogger } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    const logger = createLogger({ url: ${JSON.stringify(url)}, apiKey: 'k', service: 's', retryBaseMs: 60000 });
    logger.info('never sent');
    console.log('logged');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk) => (output += chunk));
  const timeout = setTimeout(() => child.kill(), 10_000);
  const [code] = await once(child, 'exit');
  clearTimeout(timeout);
  assert.equal(output.trim(), 'logged');
  assert.equal(code, 0);
});
