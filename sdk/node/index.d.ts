// Types of @logbook/node, written by hand so that no build step is needed.

import type { IncomingMessage, ServerResponse } from 'node:http';

/** The levels Logbook knows, lowest first. */
export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';
export declare const LEVELS: readonly Level[];

/**
 * Extra fields of an event. `trace_id`, `span_id`, `user_id`, `host`, `service`
 * and `timestamp` (a Date, epoch milliseconds or an RFC 3339 string) become the
 * event's own fields; everything else is kept as attributes. `level` and
 * `message` come from the call and are ignored here. Error values are sent as
 * `{ name, message, stack }`, bigints as strings.
 */
export type Attributes = Record<string, unknown>;

/** A signing key: its id (`key_…`) and secret (`lbk_…`), from `POST /v1/keys` with `"signed": true`. */
export interface SigningKey {
  id: string;
  key: string;
}

interface CommonOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080`; events go to `{url}/v1/logs`. */
  url: string;
  /** The `service` of every event. */
  service: string;
  /** The `host` of every event; defaults to `os.hostname()`, `null` sends none. */
  host?: string | null;
  /** Events per request (default 1000). A full batch is sent at once. */
  batchSize?: number;
  /** How often what is buffered is sent (default 1000 ms). */
  flushIntervalMs?: number;
  /** Events held at most, the batch in flight included (default 10000); more are dropped and counted. */
  maxBuffered?: number;
  /** Time one attempt may take (default 10000 ms). */
  timeoutMs?: number;
  /** Attempts per batch, the first included (default 5). */
  maxAttempts?: number;
  /** The first backoff after a network error or 5xx; it doubles per attempt, with jitter (default 500 ms). */
  retryBaseMs?: number;
  /** The longest wait between attempts, a server's Retry-After included (default 30000 ms). */
  maxRetryDelayMs?: number;
  /** Told why events were dropped, refused or given up on. Must not throw (if it does, it is ignored). */
  onError?: (error: Error) => void;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

/** Options of {@link createLogger}: exactly one of `apiKey` and `signingKey`. */
export type LoggerOptions =
  | (CommonOptions & { /** Sent as `Authorization: Bearer …`. */ apiKey: string; signingKey?: undefined })
  | (CommonOptions & { /** Every request is HMAC-signed; the key never travels. */ signingKey: SigningKey; apiKey?: undefined });

/** Counts since the logger was created. */
export interface Stats {
  /** Events the server accepted. */
  sent: number;
  /** Events thrown away before sending: the buffer was full, or the logger was closed. */
  dropped: number;
  /** Events the server refused: invalid ones, or a request answered with a 4xx other than 408 and 429. */
  rejected: number;
  /** Events given up on after the last attempt (network errors, 5xx, 429). */
  failed: number;
  /** Events waiting to be sent, or being sent now. */
  buffered: number;
}

export interface Logger {
  /** Logs at `info`, like `console.log`. */
  log(message: string, attributes?: Attributes): void;
  trace(message: string, attributes?: Attributes): void;
  debug(message: string, attributes?: Attributes): void;
  info(message: string, attributes?: Attributes): void;
  warn(message: string, attributes?: Attributes): void;
  error(message: string, attributes?: Attributes): void;
  fatal(message: string, attributes?: Attributes): void;
  /** Logs at a level chosen at run time; an unknown level logs at `info`. */
  at(level: Level | string, message: string, attributes?: Attributes): void;
  /** A logger adding `fields` to every event; it shares this logger's buffer, timer and counts. */
  child(fields: Attributes): Logger;
  /** Sends everything buffered; resolves once each batch was accepted, refused or given up on. */
  flush(): Promise<void>;
  /** Stops taking events (later ones are dropped), flushes, and stops the timer. */
  close(): Promise<void>;
  stats(): Stats;
}

/** Throws a TypeError for invalid options; logging itself never throws and never waits. */
export declare function createLogger(options: LoggerOptions): Logger;

/** What {@link logbookExpress} puts on each request as `req.logbook`. */
export interface RequestContext {
  /** The caller's trace id when it sent a valid `traceparent`, else a new one. */
  traceId: string;
  /** A new span id for this request's own work. */
  spanId: string;
  /** `00-{traceId}-{spanId}-{flags}`: send it on to the services this request calls. */
  traceparent: string;
  /** A logger adding `trace_id`, `span_id` (and `parent_span_id`) to every event. */
  log: Logger;
}

export interface ExpressOptions {
  /** The user of a request, read when the response finishes (default: `req.user?.id`). */
  userId?: (req: any) => string | number | null | undefined;
}

type Handler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
type ErrorHandler = (err: unknown, req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/**
 * Logs one event per request when its response finishes: `method`, `route` (the
 * matched pattern when Express knows it, else the path), `status`,
 * `duration_ms`, `user_id`, `client_ip`, and the trace ids. 5xx logs at
 * `error`, 4xx at `warn`, the rest at `info`. Sets the `traceparent` response header.
 */
export declare function logbookExpress(logger: Logger, options?: ExpressOptions): Handler;

/** Logs an error a handler threw (level `error`, `error: {name, message, stack}`), then calls `next(err)`. */
export declare function logbookErrors(logger: Logger): ErrorHandler;

/** hex(HMAC-SHA256(key, timestamp "\n" METHOD "\n" path?query "\n" body)), as the server checks it. */
export declare function signRequest(
  key: string,
  timestamp: string,
  method: string,
  pathAndQuery: string,
  body: Uint8Array | string,
): string;

/** A valid version-00 `traceparent` with non-zero ids, or `null`. */
export declare function parseTraceparent(header: unknown): { traceId: string; parentSpanId: string; flags: string } | null;
export declare function formatTraceparent(traceId: string, spanId: string, flags: string): string;
export declare function newTraceId(): string;
export declare function newSpanId(): string;

declare global {
  namespace Express {
    interface Request {
      /** Set by {@link logbookExpress}. */
      logbook?: RequestContext;
    }
  }
}
