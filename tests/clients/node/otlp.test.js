// The OpenTelemetry JS logs SDK and its OTLP/HTTP exporter (which sends OTLP's
// JSON mapping) against a real Logbook server: records with a resource, a scope,
// severities, attributes, a trace context, structured bodies and exceptions,
// read back through the query API and checked field by field.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';

import { TraceFlags, context, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';

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
 * Emits records through a fresh provider whose exporter is built from
 * `exporterOptions`, flushes and shuts it down, and returns the exchanges the
 * exporter had with the server.
 */
async function exportRecords(resource, exporterOptions, emit) {
  const first = tap.exchanges.length;
  const provider = new LoggerProvider({
    resource: resourceFromAttributes(resource),
    processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter(exporterOptions) })],
  });
  emit(provider);
  await provider.forceFlush();
  await provider.shutdown();
  return tap.exchanges.slice(first);
}

/** The event without the two fields the server makes up (checked here for shape only). */
function stored(event) {
  const { id, received_at: receivedAt, ...rest } = event;
  assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.ok(Number.isFinite(Date.parse(receivedAt)), `received_at ${receivedAt}`);
  return rest;
}

/** The one stored event whose message is `message`. */
function byMessage(events, message) {
  const found = events.filter((event) => event.message === message);
  assert.equal(found.length, 1, `one event with message ${JSON.stringify(message)} in ${JSON.stringify(events)}`);
  return found[0];
}

/** Asserts every exchange was an accepted OTLP/JSON export; returns their parsed answers. */
function acceptedJson(exchanges) {
  assert.ok(exchanges.length >= 1, 'the exporter sent nothing');
  return exchanges.map((exchange) => {
    assert.equal(exchange.method, 'POST');
    assert.equal(exchange.url, '/otlp/v1/logs');
    assert.equal(exchange.headers['content-type'], 'application/json');
    assert.equal(exchange.status, 200, exchange.answer.toString());
    return JSON.parse(exchange.answer.toString());
  });
}

test('records configured from OTEL_EXPORTER_OTLP_* keep resource, scope, severity, attributes and trace context', async (t) => {
  if (needsServer(t, server)) return;
  const service = uniqueService('otel-checkout');
  // The configuration Logbook documents: the base endpoint (the exporter adds
  // /v1/logs) and the key as a header.
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `${tap.url}/otlp`;
  process.env.OTEL_EXPORTER_OTLP_HEADERS = `Authorization=Bearer%20${server.key}`;
  t.after(() => {
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    delete process.env.OTEL_EXPORTER_OTLP_HEADERS;
  });
  const failure = new TypeError('card number rejected');
  const exchanges = await exportRecords(
    {
      'service.name': service,
      'host.name': 'web-7',
      'deployment.environment': 'test',
      'service.version': '1.4.2',
    },
    {},
    (provider) => {
      const logger = provider.getLogger('checkout-scope', '2.1.0');
      const spanContext = { traceId: TRACE, spanId: SPAN, traceFlags: TraceFlags.SAMPLED };
      logger.emit({
        timestamp: [1780000000, 123456789],
        severityNumber: SeverityNumber.WARN,
        severityText: 'WARN',
        body: 'payment retried',
        eventName: 'checkout.retry',
        context: trace.setSpanContext(context.active(), spanContext),
        attributes: {
          'http.route': '/cart',
          'user.id': 'u-42',
          level: 'custom',
          retries: 3,
          ratio: 0.5,
          cached: true,
          tags: ['a', 'b'],
          cart: { items: 2, currency: 'EUR' },
        },
      });
      logger.emit({
        timestamp: [1780000001, 0],
        severityNumber: SeverityNumber.ERROR,
        body: { order: 'A-1', amount: 12.5, lines: ['x', 'y'] },
        exception: failure,
      });
      logger.emit({ timestamp: [1780000002, 500000000], eventName: 'checkout.done' });
    },
  );
  assert.deepEqual(acceptedJson(exchanges), exchanges.map(() => ({})));
  assert.match(exchanges[0].headers.authorization, /^Bearer lbk_/);

  const events = await searchUntil(server, `service:${service}`, 3);
  assert.equal(events.length, 3, JSON.stringify(events));
  const resource = { 'deployment.environment': 'test', 'service.version': '1.4.2' };
  const scope = { name: 'checkout-scope', version: '2.1.0' };

  assert.deepEqual(stored(byMessage(events, 'payment retried')), {
    tenant: 'default',
    timestamp: '2026-05-28T20:26:40.123456789Z',
    service,
    level: 'warn',
    message: 'payment retried',
    trace_id: TRACE,
    span_id: SPAN,
    host: 'web-7',
    user_id: 'u-42',
    source_ip: '127.0.0.1',
    attributes: {
      severity_text: 'WARN',
      severity_number: 13,
      event_name: 'checkout.retry',
      trace_flags: 1,
      resource,
      scope,
      'http.route': '/cart',
      'attribute.level': 'custom',
      retries: 3,
      ratio: 0.5,
      cached: true,
      tags: ['a', 'b'],
      cart: { items: 2, currency: 'EUR' },
    },
  });

  // A structured body: its JSON text is the message, the value itself an attribute.
  const body = { order: 'A-1', amount: 12.5, lines: ['x', 'y'] };
  const structured = events.find((event) => event.attributes.body !== undefined);
  assert.ok(structured, JSON.stringify(events));
  assert.deepEqual(JSON.parse(structured.message), body);
  assert.deepEqual(stored(structured), {
    tenant: 'default',
    timestamp: '2026-05-28T20:26:41Z',
    service,
    level: 'error',
    message: structured.message,
    host: 'web-7',
    source_ip: '127.0.0.1',
    attributes: {
      severity_number: 17,
      body,
      resource,
      scope,
      'exception.type': 'TypeError',
      'exception.message': 'card number rejected',
      'exception.stacktrace': failure.stack,
    },
  });

  // No body: the event name stands in as the message; no severity is info.
  assert.deepEqual(stored(byMessage(events, 'checkout.done')), {
    tenant: 'default',
    timestamp: '2026-05-28T20:26:42.5Z',
    service,
    level: 'info',
    message: 'checkout.done',
    host: 'web-7',
    source_ip: '127.0.0.1',
    attributes: { event_name: 'checkout.done', resource, scope },
  });
});

test('severity numbers map by range, severity text only without a number; gzip bodies are read', async (t) => {
  if (needsServer(t, server)) return;
  const service = uniqueService('otel-levels');
  const cases = [
    { number: SeverityNumber.TRACE2, text: 'TRACE2', level: 'trace' },
    { number: SeverityNumber.DEBUG, text: undefined, level: 'debug' },
    { number: SeverityNumber.INFO3, text: 'INFO3', level: 'info' },
    { number: SeverityNumber.WARN4, text: 'error', level: 'warn' },
    { number: SeverityNumber.ERROR, text: 'ERROR', level: 'error' },
    { number: SeverityNumber.FATAL2, text: 'FATAL2', level: 'fatal' },
    { number: undefined, text: 'Critical', level: 'fatal' },
    { number: undefined, text: 'chatty', level: 'info' },
    { number: undefined, text: undefined, level: 'info' },
  ];
  const exchanges = await exportRecords(
    { 'service.name': service },
    { url: `${tap.url}/otlp/v1/logs`, headers: { Authorization: `Bearer ${server.key}` }, compression: 'gzip' },
    (provider) => {
      const logger = provider.getLogger('levels');
      cases.forEach(({ number, text }, index) => {
        logger.emit({
          timestamp: [1780000100 + index, 0],
          severityNumber: number,
          severityText: text,
          body: `severity case ${index}`,
        });
      });
    },
  );
  assert.deepEqual(acceptedJson(exchanges), exchanges.map(() => ({})));
  for (const exchange of exchanges) {
    assert.equal(exchange.headers['content-encoding'], 'gzip');
    assert.ok(JSON.parse(gunzipSync(exchange.body).toString()).resourceLogs.length >= 1);
  }

  const events = await searchUntil(server, `service:${service}`, cases.length);
  assert.equal(events.length, cases.length, JSON.stringify(events));
  cases.forEach(({ number, text, level }, index) => {
    const attributes = { scope: { name: 'levels' } };
    if (text !== undefined) attributes.severity_text = text;
    if (number !== undefined) attributes.severity_number = number;
    assert.deepEqual(
      stored(byMessage(events, `severity case ${index}`)),
      {
        tenant: 'default',
        timestamp: new Date((1780000100 + index) * 1000).toISOString().replace('.000Z', 'Z'),
        service,
        level,
        message: `severity case ${index}`,
        source_ip: '127.0.0.1',
        attributes,
      },
      `case ${index}: ${JSON.stringify({ number, text })}`,
    );
  });
});

test('a record with neither body nor event name is a partial success; the others are kept', async (t) => {
  if (needsServer(t, server)) return;
  const service = uniqueService('otel-partial');
  const exchanges = await exportRecords(
    { 'service.name': service },
    { url: `${tap.url}/otlp/v1/logs`, headers: { Authorization: `Bearer ${server.key}` } },
    (provider) => {
      const logger = provider.getLogger('partial');
      logger.emit({ timestamp: [1780000200, 0], body: 'kept before' });
      logger.emit({ timestamp: [1780000201, 0], severityNumber: SeverityNumber.INFO, attributes: { only: 'attributes' } });
      logger.emit({ timestamp: [1780000202, 0], body: 'kept after' });
    },
  );
  const answers = acceptedJson(exchanges);
  assert.equal(answers.length, 1, 'one export');
  const partial = answers[0].partialSuccess;
  assert.equal(Number(partial.rejectedLogRecords), 1, JSON.stringify(answers[0]));
  assert.match(partial.errorMessage, /^record 1: missing_message: /);

  const events = await searchUntil(server, `service:${service}`, 2);
  assert.deepEqual(
    events.map((event) => [event.message, event.timestamp]),
    [
      ['kept before', '2026-05-28T20:30:00Z'],
      ['kept after', '2026-05-28T20:30:02Z'],
    ],
  );
});
