// winston-loki, a Winston transport for Loki's push API, against a real Logbook
// server: by default it sends protobuf compressed with snappy's block format
// (checked on the wire here, since it silently falls back to JSON when snappy
// does not load); with `json: true` it also sends structured metadata. Stored
// events are read back through the query API and checked field by field.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { after, before, test } from 'node:test';

import snappy from 'snappy';
import winston from 'winston';
import LokiTransport from 'winston-loki';

import { haveBinary, needsServer, searchUntil, startLogbook } from './support/logbook.js';
import { startTap } from './support/tap.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

let server;
let tap;
before(async () => {
  if (!haveBinary()) return;
  server = await startLogbook();
  tap = await startTap(server.url);
});
after(async () => {
  await tap?.close();
  await server?.stop();
});

function uniqueService(name) {
  return `${name}-${randomBytes(4).toString('hex')}`;
}

/**
 * Logs through a winston logger with one LokiTransport built from `options`,
 * waits until the transport has taken every record, closes it (which sends
 * the batch and waits for the answer) and returns the exchanges it had with
 * the server and the connection errors it reported.
 */
async function send(options, log) {
  const first = tap.exchanges.length;
  const errors = [];
  const transport = new LokiTransport({
    host: tap.url,
    basicAuth: `logbook:${server.key}`,
    gracefulShutdown: false,
    replaceTimestamp: false,
    // One batch, sent by close(): no timer fires during a test.
    interval: 600,
    onConnectionError: (error) => errors.push(error),
    ...options,
  });
  const logger = winston.createLogger({ level: 'silly', transports: [transport] });
  const count = log(logger);
  for (let taken = 0; taken < count; taken += 1) await once(transport, 'logged');
  await transport.close();
  return { exchanges: tap.exchanges.slice(first), errors };
}

function stored(event) {
  const { id, received_at: receivedAt, ...rest } = event;
  assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.ok(Number.isFinite(Date.parse(receivedAt)), `received_at ${receivedAt}`);
  return rest;
}

function byTimestamp(events, timestamp) {
  const found = events.filter((event) => event.timestamp === timestamp);
  assert.equal(found.length, 1, `one event at ${timestamp} in ${JSON.stringify(events)}`);
  return found[0];
}

test('the default transport sends snappy protobuf with Basic auth; labels become service, host, level and labels', async (t) => {
  if (needsServer(t, server)) return;
  const service = uniqueService('loki-proto');
  const { exchanges, errors } = await send(
    { labels: { app: service, host: 'web-1', env: 'test', region: 'eu, west' } },
    (logger) => {
      logger.warn('payment declined', { orderId: 'A-1', timestamp: '2026-03-01T12:00:00.123Z' });
      logger.http('GET /cart', { attempt: 2, timestamp: '2026-03-01T12:00:01Z' });
      logger.verbose('cache miss', { timestamp: '2026-03-01T12:00:02.5Z' });
      logger.error('gateway down', { labels: { zone: 'b' }, timestamp: '2026-03-01T12:00:03Z' });
      return 4;
    },
  );
  assert.deepEqual(errors, []);
  assert.ok(exchanges.length >= 1, 'the transport sent nothing');
  for (const exchange of exchanges) {
    assert.equal(exchange.method, 'POST');
    assert.equal(exchange.url, '/loki/api/v1/push');
    assert.equal(exchange.headers['content-type'], 'application/x-protobuf');
    const [user, password] = Buffer.from(exchange.headers.authorization.replace(/^Basic /, ''), 'base64')
      .toString()
      .split(':');
    assert.deepEqual([user, password], ['logbook', server.key]);
    // Snappy's block format (not its framed stream format) around a protobuf
    // whose stream labels are in Prometheus text form.
    const raw = snappy.uncompressSync(exchange.body, { asBuffer: true });
    assert.ok(raw.includes(`app="${service}"`), raw.toString('latin1'));
    assert.equal(exchange.status, 204, exchange.answer.toString());
    assert.equal(exchange.answer.length, 0);
  }

  const events = await searchUntil(server, `service:${service}`, 4);
  assert.equal(events.length, 4, JSON.stringify(events));
  const common = { tenant: 'default', service, host: 'web-1', source_ip: '127.0.0.1' };
  const labels = { env: 'test', region: 'eu, west' };
  assert.deepEqual(stored(byTimestamp(events, '2026-03-01T12:00:00.123Z')), {
    ...common,
    timestamp: '2026-03-01T12:00:00.123Z',
    level: 'warn',
    // winston-loki writes the message and the remaining metadata as the line.
    message: 'payment declined {"orderId":"A-1","level":"warn"}',
    attributes: { labels },
  });
  // winston's `http` level is no level Logbook knows: the label is kept and
  // the level is the default.
  assert.deepEqual(stored(byTimestamp(events, '2026-03-01T12:00:01Z')), {
    ...common,
    timestamp: '2026-03-01T12:00:01Z',
    level: 'info',
    message: 'GET /cart {"attempt":2,"level":"http"}',
    attributes: { labels: { ...labels, level: 'http' } },
  });
  assert.deepEqual(stored(byTimestamp(events, '2026-03-01T12:00:02.5Z')), {
    ...common,
    timestamp: '2026-03-01T12:00:02.5Z',
    level: 'trace',
    message: 'cache miss {"level":"verbose"}',
    attributes: { labels },
  });
  // Per-record labels join the transport's.
  assert.deepEqual(stored(byTimestamp(events, '2026-03-01T12:00:03Z')), {
    ...common,
    timestamp: '2026-03-01T12:00:03Z',
    level: 'error',
    message: 'gateway down {"level":"error"}',
    attributes: { labels: { ...labels, zone: 'b' } },
  });
});

test('json mode sends structured metadata: trace and span ids become fields, the rest is kept', async (t) => {
  if (needsServer(t, server)) return;
  const service = uniqueService('loki-json');
  const { exchanges, errors } = await send(
    { json: true, labels: { service_name: service, hostname: 'worker-3' } },
    (logger) => {
      logger.info('order shipped', {
        trace_id: TRACE,
        span_id: SPAN,
        orderId: 'A-2',
        attempt: 2,
        timestamp: '2026-03-02T08:00:00.001Z',
      });
      logger.debug('plain', { timestamp: '2026-03-02T08:00:01Z' });
      return 2;
    },
  );
  assert.deepEqual(errors, []);
  assert.ok(exchanges.length >= 1, 'the transport sent nothing');
  for (const exchange of exchanges) {
    assert.equal(exchange.headers['content-type'], 'application/json');
    assert.equal(exchange.status, 204, exchange.answer.toString());
  }

  const events = await searchUntil(server, `service:${service}`, 2);
  assert.equal(events.length, 2, JSON.stringify(events));
  const common = { tenant: 'default', service, host: 'worker-3', source_ip: '127.0.0.1' };
  assert.deepEqual(stored(byTimestamp(events, '2026-03-02T08:00:00.001Z')), {
    ...common,
    timestamp: '2026-03-02T08:00:00.001Z',
    level: 'info',
    message: `order shipped {"trace_id":"${TRACE}","span_id":"${SPAN}","orderId":"A-2","attempt":2,"level":"info"}`,
    trace_id: TRACE,
    span_id: SPAN,
    // Loki's structured metadata values are strings; winston-loki makes them so.
    attributes: { structured_metadata: { orderId: 'A-2', attempt: '2', level: 'info' } },
  });
  assert.deepEqual(stored(byTimestamp(events, '2026-03-02T08:00:01Z')), {
    ...common,
    timestamp: '2026-03-02T08:00:01Z',
    level: 'debug',
    message: 'plain {"level":"debug"}',
    attributes: { structured_metadata: { level: 'debug' } },
  });
  // The trace id is searchable as a field.
  const traced = await searchUntil(server, `trace_id:${TRACE} AND service:${service}`, 1);
  assert.deepEqual(
    traced.map((event) => event.message.split(' ')[0]),
    ['order'],
  );
});

test('a wrong key is refused with 401 and nothing is stored', async (t) => {
  if (needsServer(t, server)) return;
  const service = uniqueService('loki-denied');
  const { exchanges, errors } = await send(
    { basicAuth: `logbook:lbk_${'x'.repeat(40)}`, labels: { app: service } },
    (logger) => {
      logger.info('must not be stored');
      return 1;
    },
  );
  assert.deepEqual(
    exchanges.map((exchange) => exchange.status),
    [401],
  );
  assert.deepEqual(
    errors.map((error) => error.statusCode),
    [401],
  );
  // The same stream with the right key afterwards: once it is searchable, the
  // refused entry would be too, had it been stored.
  const accepted = await send({ labels: { app: service } }, (logger) => {
    logger.info('stored after the refusal');
    return 1;
  });
  assert.deepEqual(accepted.errors, []);
  const events = await searchUntil(server, `service:${service}`, 1);
  assert.deepEqual(
    events.map((event) => event.message),
    ['stored after the refusal {"level":"info"}'],
  );
});

// A stream with two service labels (here `app` and `job`) and two host
// labels: the one not read as the field stays under `labels` (this suite
// found it once dropped).
test('a service label not read as the service is kept under labels', async (t) => {
  if (needsServer(t, server)) return;
  const service = uniqueService('loki-job');
  const { errors } = await send({ labels: { app: service, job: 'nightly', hostname: 'h1', host: 'h2' } }, (logger) => {
    logger.info('two service labels', { timestamp: '2026-03-03T00:00:00Z' });
    return 1;
  });
  assert.deepEqual(errors, []);
  const [event] = await searchUntil(server, `service:${service}`, 1);
  assert.equal(event.service, service);
  assert.equal(event.host, 'h2');
  assert.deepEqual(event.attributes?.labels, { job: 'nightly', hostname: 'h1' });
});
