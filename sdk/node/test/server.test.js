// End to end against a real Logbook server: an Express app wired with the
// middleware, requests made with supertest, and the stored events read back
// through the query API and checked field by field. Also a signed key made
// through the API.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';

import express from 'express';
import request from 'supertest';

import { createLogger, logbookErrors, logbookExpress } from '../src/index.js';
import { SKIP_MESSAGE, createSigningKey, haveBinary, searchUntil, startLogbook } from './support/logbook.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

let server;
before(async () => {
  if (haveBinary()) server = await startLogbook();
});
after(async () => {
  await server?.stop();
});

/** Skips the test (saying why) when there is no binary to run. */
function needsServer(t) {
  if (server !== undefined) return false;
  console.log(SKIP_MESSAGE);
  t.skip(SKIP_MESSAGE);
  return true;
}

function uniqueService(name) {
  return `${name}-${randomBytes(4).toString('hex')}`;
}

/** An app with a route, a nested router, a failing route, and a fake sign-in. */
function app(logger, seen) {
  const application = express();
  application.use(logbookExpress(logger));
  application.use((req, _res, next) => {
    if (req.get('x-user') !== undefined) req.user = { id: req.get('x-user') };
    next();
  });
  application.get('/users/:id', (req, res) => {
    seen.ip = req.ip;
    seen.context = req.logbook;
    req.logbook.log.info('loading user', { requested: req.params.id });
    res.json({ id: req.params.id });
  });
  const orders = express.Router();
  orders.post('/orders/:orderId', (req, res) => res.status(201).json({ created: req.params.orderId }));
  application.use('/api', orders);
  application.get('/boom', () => {
    throw new TypeError('kaboom');
  });
  application.use(logbookErrors(logger));
  // What logbookErrors passed on reaches the next error handler.
  application.use((err, _req, res, _next) => {
    seen.passedOn = err;
    res.status(500).send('failed');
  });
  return application;
}

test('the Express middleware logs each request with its route, status, user and trace ids', async (t) => {
  if (needsServer(t)) return;
  const service = uniqueService('express');
  const logger = createLogger({ url: server.url, apiKey: server.key, service, host: 'web-1', flushIntervalMs: 60_000 });
  t.after(() => logger.close());
  const seen = {};
  const application = app(logger, seen);

  const traced = await request(application)
    .get('/users/42')
    .set('traceparent', `00-${TRACE}-${PARENT}-01`)
    .set('x-user', 'u-42')
    .expect(200);
  const missing = await request(application).get('/nowhere?token=secret').expect(404);
  const failed = await request(application).get('/boom').set('traceparent', '00-ffffffffffffffffffffffffffffffff-0000000000000000-01').expect(500);
  const created = await request(application).post('/api/orders/7').expect(201);
  await logger.flush();
  assert.deepEqual(logger.stats(), { sent: 6, dropped: 0, rejected: 0, failed: 0, buffered: 0 });

  // The caller's trace goes on, with a new span for this request's own work.
  const spanId = seen.context.spanId;
  assert.equal(seen.context.traceId, TRACE);
  assert.match(spanId, /^[0-9a-f]{16}$/);
  assert.notEqual(spanId, PARENT);
  assert.equal(traced.headers.traceparent, `00-${TRACE}-${spanId}-01`);
  assert.equal(seen.context.traceparent, traced.headers.traceparent);

  const tracedEvents = await searchUntil(server, `trace_id:${TRACE}`, 2);
  assert.equal(tracedEvents.length, 2);
  const [inside, access] = tracedEvents;
  assert.equal(inside.message, 'loading user');
  assert.equal(inside.level, 'info');
  assert.equal(inside.service, service);
  assert.equal(inside.host, 'web-1');
  assert.equal(inside.trace_id, TRACE);
  assert.equal(inside.span_id, spanId);
  assert.deepEqual(inside.attributes, { parent_span_id: PARENT, requested: '42' });

  assert.equal(access.message, 'GET /users/:id 200');
  assert.equal(access.level, 'info');
  assert.equal(access.service, service);
  assert.equal(access.trace_id, TRACE);
  assert.equal(access.span_id, spanId);
  assert.equal(access.user_id, 'u-42');
  assert.equal(access.attributes.method, 'GET');
  assert.equal(access.attributes.route, '/users/:id');
  assert.equal(access.attributes.status, 200);
  assert.equal(access.attributes.client_ip, seen.ip);
  assert.equal(access.attributes.parent_span_id, PARENT);
  assert.equal(typeof access.attributes.duration_ms, 'number');
  assert.ok(access.attributes.duration_ms >= 0 && access.attributes.duration_ms < 10_000);

  // No route matched: the path, without its query, and a new trace.
  const missingParent = parseHeader(missing.headers.traceparent);
  const [notFound] = await searchUntil(server, `trace_id:${missingParent.traceId}`, 1);
  assert.equal(notFound.level, 'warn');
  assert.equal(notFound.span_id, missingParent.spanId);
  assert.equal(notFound.message, 'GET /nowhere 404');
  assert.equal(notFound.user_id, undefined);
  assert.equal(notFound.attributes.route, '/nowhere');
  assert.equal(notFound.attributes.status, 404);
  assert.equal(notFound.attributes.parent_span_id, undefined);

  // A thrown error: one event from the error handler, one for the request. An
  // invalid traceparent (zero span id) starts a new trace.
  const failedParent = parseHeader(failed.headers.traceparent);
  assert.notEqual(failedParent.traceId, 'f'.repeat(32));
  const failures = await searchUntil(server, `trace_id:${failedParent.traceId}`, 2);
  assert.equal(failures.length, 2);
  const thrown = failures.find((event) => event.attributes.error !== undefined);
  const failedRequest = failures.find((event) => event.attributes.error === undefined);
  assert.equal(thrown.level, 'error');
  assert.equal(thrown.span_id, failedParent.spanId);
  assert.equal(thrown.message, 'GET /boom failed: TypeError: kaboom');
  assert.equal(thrown.attributes.route, '/boom');
  assert.equal(thrown.attributes.error.name, 'TypeError');
  assert.equal(thrown.attributes.error.message, 'kaboom');
  assert.match(thrown.attributes.error.stack, /^TypeError: kaboom\n\s+at /);
  assert.ok(seen.passedOn instanceof TypeError);
  assert.equal(seen.passedOn.message, 'kaboom');
  assert.equal(failedRequest.level, 'error');
  assert.equal(failedRequest.message, 'GET /boom 500');
  assert.equal(failedRequest.attributes.status, 500);

  // A route of a router mounted under /api.
  const createdParent = parseHeader(created.headers.traceparent);
  const [post] = await searchUntil(server, `trace_id:${createdParent.traceId}`, 1);
  assert.equal(post.level, 'info');
  assert.equal(post.message, 'POST /api/orders/:orderId 201');
  assert.equal(post.attributes.method, 'POST');
  assert.equal(post.attributes.route, '/api/orders/:orderId');
  assert.equal(post.attributes.status, 201);

  // Every event of the test was stored once, under this service.
  const all = await searchUntil(server, `service:${service}`, 6);
  assert.equal(all.length, 6);
});

test('a userId option decides the user of a request', async (t) => {
  if (needsServer(t)) return;
  const service = uniqueService('user-option');
  const logger = createLogger({ url: server.url, apiKey: server.key, service, flushIntervalMs: 60_000 });
  t.after(() => logger.close());
  const application = express();
  application.use(logbookExpress(logger, { userId: (req) => req.get('x-account') }));
  application.get('/', (_req, res) => res.send('ok'));
  await request(application).get('/').set('x-account', 'acct-9').expect(200);
  await logger.flush();
  const [event] = await searchUntil(server, `service:${service}`, 1);
  assert.equal(event.user_id, 'acct-9');
  assert.equal(event.attributes.route, '/');
});

test('a signing key made through the API sends signed, gzip-compressed batches', async (t) => {
  if (needsServer(t)) return;
  const signingKey = await createSigningKey(server);
  assert.equal(signingKey.signed, true);
  assert.deepEqual(signingKey.scopes, ['logs:write']);
  const service = uniqueService('signed');
  const logger = createLogger({ url: server.url, signingKey, service, host: 'signer', flushIntervalMs: 60_000 });
  t.after(() => logger.close());
  logger.warn('signed one', { orderId: 'ORD-1' });
  logger.info('signed two', { user_id: 5 });
  await logger.flush();
  assert.deepEqual(logger.stats(), { sent: 2, dropped: 0, rejected: 0, failed: 0, buffered: 0 });
  // A second batch signs afresh: the server refuses a signature it has seen.
  logger.error('signed three');
  await logger.flush();
  assert.equal(logger.stats().sent, 3);

  const events = await searchUntil(server, `service:${service}`, 3);
  assert.deepEqual(
    events.map((event) => [event.message, event.level, event.host, event.user_id]),
    [
      ['signed one', 'warn', 'signer', undefined],
      ['signed two', 'info', 'signer', '5'],
      ['signed three', 'error', 'signer', undefined],
    ],
  );
  assert.deepEqual(events[0].attributes, { orderId: 'ORD-1' });

  // The wrong secret is refused, counted, and not retried.
  const errors = [];
  const forged = createLogger({
    url: server.url,
    signingKey: { id: signingKey.id, key: `${signingKey.key}x` },
    service,
    flushIntervalMs: 60_000,
    onError: (error) => errors.push(error),
  });
  forged.info('forged');
  await forged.close();
  assert.deepEqual(forged.stats(), { sent: 0, dropped: 0, rejected: 1, failed: 0, buffered: 0 });
  assert.match(errors[0].message, /HTTP 401: invalid_signature/);
});

function parseHeader(header) {
  const [, traceId, spanId] = header.split('-');
  return { traceId, spanId };
}
