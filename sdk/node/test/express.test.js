// The Express middleware against a scripted server, for what needs no real
// Logbook: trace flags, invalid headers, clients that leave, failing callbacks.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { test } from 'node:test';

import express from 'express';
import request from 'supertest';

import { createLogger, logbookExpress } from '../src/index.js';
import { acceptAll, startCapture } from './support/capture.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

async function setup(t, options) {
  const capture = await startCapture(acceptAll);
  const logger = createLogger({ url: capture.url, apiKey: 'k', service: 'web', flushIntervalMs: 60_000 });
  t.after(async () => {
    await logger.close();
    await capture.close();
  });
  const app = express();
  app.use(logbookExpress(logger, options));
  return { capture, logger, app };
}

test('the caller trace flags are kept; an unknown version starts a new trace', async (t) => {
  const { capture, logger, app } = await setup(t);
  app.get('/', (_req, res) => res.send('ok'));
  const kept = await request(app).get('/').set('traceparent', `00-${TRACE}-${PARENT}-00`).expect(200);
  const fresh = await request(app).get('/').set('traceparent', `ff-${TRACE}-${PARENT}-01`).expect(200);
  await logger.flush();

  assert.match(kept.headers.traceparent, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`));
  assert.match(fresh.headers.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  assert.ok(!fresh.headers.traceparent.includes(TRACE));
  const [first, second] = capture.requests[0].lines;
  assert.equal(`00-${first.trace_id}-${first.span_id}-00`, kept.headers.traceparent);
  assert.equal(first.parent_span_id, PARENT);
  assert.equal(`00-${second.trace_id}-${second.span_id}-01`, fresh.headers.traceparent);
  assert.equal(second.parent_span_id, undefined);
});

test('a client that leaves before the answer is logged once, as aborted', async (t) => {
  const { capture, logger, app } = await setup(t);
  let entered;
  let closed;
  const handlerEntered = new Promise((resolve) => (entered = resolve));
  // Registered after the middleware's own listener, so it runs after the event is logged.
  const responseClosed = new Promise((resolve) => (closed = resolve));
  app.get('/slow', (_req, res) => {
    res.on('close', closed);
    entered();
  });
  const listener = app.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  t.after(() => listener.close());
  const client = httpRequest({ host: '127.0.0.1', port: listener.address().port, path: '/slow' });
  client.on('error', () => {});
  client.end();
  await handlerEntered;
  client.destroy();
  await responseClosed;
  await logger.flush();

  const lines = capture.requests.flatMap((r) => r.lines);
  assert.equal(lines.length, 1);
  assert.equal(lines[0].level, 'warn');
  assert.equal(lines[0].aborted, true);
  assert.equal(lines[0].route, '/slow');
  assert.match(lines[0].message, /^GET \/slow 200 \(client closed the connection\)$/);
});

test('a userId callback that throws leaves the user out, and the request is still logged', async (t) => {
  const { capture, logger, app } = await setup(t, {
    userId: () => {
      throw new Error('no session store');
    },
  });
  app.get('/', (_req, res) => res.status(204).end());
  await request(app).get('/').expect(204);
  await logger.flush();
  const [line] = capture.requests[0].lines;
  assert.equal(line.status, 204);
  assert.equal(line.level, 'info');
  assert.equal('user_id' in line, false);
});
