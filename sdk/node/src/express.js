// Express middleware: one event per request when its response finishes (or the
// client goes away), W3C trace context in and out, and an error handler that
// logs what handlers throw before passing it on.

import { performance } from 'node:perf_hooks';

import { errorFields } from './event.js';
import { formatTraceparent, newSpanId, newTraceId, parseTraceparent } from './traceparent.js';

/**
 * @param {import('./logger.js').Logger} logger
 * @param {import('../index.js').ExpressOptions} [options]
 */
export function logbookExpress(logger, options = {}) {
  const userIdOf = options.userId ?? ((req) => req.user?.id);
  return function logbookRequest(req, res, next) {
    const started = performance.now();
    const parent = parseTraceparent(req.headers.traceparent);
    const traceId = parent?.traceId ?? newTraceId();
    const spanId = newSpanId();
    const traceparent = formatTraceparent(traceId, spanId, parent?.flags ?? '01');
    const traceFields = { trace_id: traceId, span_id: spanId };
    if (parent !== null) traceFields.parent_span_id = parent.parentSpanId;
    const log = logger.child(traceFields);
    req.logbook = { traceId, spanId, traceparent, log };
    res.setHeader('traceparent', traceparent);

    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      res.off('finish', done);
      res.off('close', done);
      const aborted = !res.writableFinished;
      const status = res.statusCode;
      const route = routeOf(req);
      const attributes = {
        method: req.method,
        route,
        status,
        duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
        client_ip: req.ip,
      };
      const userId = safeUserId(userIdOf, req);
      if (userId !== undefined && userId !== null) attributes.user_id = userId;
      if (aborted) attributes.aborted = true;
      const suffix = aborted ? ' (client closed the connection)' : '';
      log.at(levelOf(status, aborted), `${req.method} ${route} ${status}${suffix}`, attributes);
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}

/**
 * An Express error handler (register it after the routes) that logs what a
 * handler threw or passed to next(), then hands it on unchanged.
 *
 * @param {import('./logger.js').Logger} logger
 */
export function logbookErrors(logger) {
  return function logbookError(err, req, _res, next) {
    const log = req.logbook?.log ?? logger;
    const error = errorFields(err);
    log.error(`${req.method} ${routeOf(req)} failed: ${error.name}: ${error.message}`, {
      method: req.method,
      route: routeOf(req),
      error,
    });
    next(err);
  };
}

/** The matched route pattern when Express knows it (`/users/:id`), else the path. */
function routeOf(req) {
  const pattern = req.route?.path;
  if (typeof pattern === 'string') return `${req.baseUrl ?? ''}${pattern}` || '/';
  if (pattern !== undefined) return `${req.baseUrl ?? ''}${String(pattern)}`;
  return (req.originalUrl ?? req.url ?? '/').split('?')[0];
}

function levelOf(status, aborted) {
  if (status >= 500) return 'error';
  if (status >= 400 || aborted) return 'warn';
  return 'info';
}

function safeUserId(userIdOf, req) {
  try {
    const id = userIdOf(req);
    return typeof id === 'string' || typeof id === 'number' ? id : undefined;
  } catch {
    return undefined;
  }
}
