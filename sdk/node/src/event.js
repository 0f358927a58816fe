// Turns one logging call into one NDJSON line in the shape of README "Events":
// the modelled fields at the top level, everything else beside them (the server
// keeps unknown fields as the event's attributes).

/** The levels Logbook knows, lowest first. */
export const LEVELS = Object.freeze(['trace', 'debug', 'info', 'warn', 'error', 'fatal']);

/**
 * Fields the SDK sets itself on every event; attributes of these names are
 * ignored, since the call's own level and message must win.
 */
const OWN_FIELDS = new Set(['level', 'message']);

/**
 * Builds the JSON line of one event. Never throws: an attribute that cannot be
 * serialised (a cycle, a throwing getter) is replaced by a note saying why, so
 * the message itself still arrives.
 *
 * @param {object} base `service`, `host` and the fields a child logger adds
 * @param {string} level one of {@link LEVELS}
 * @param {unknown} message
 * @param {unknown} attributes a plain object, or nothing
 * @param {Date} now
 * @returns {string}
 */
export function eventLine(base, level, message, attributes, now) {
  const event = {
    timestamp: now.toISOString(),
    level,
    message: typeof message === 'string' ? message : describe(message),
  };
  try {
    addFields(event, base);
    if (attributes !== null && typeof attributes === 'object' && !Array.isArray(attributes)) {
      addFields(event, attributes);
    }
    return JSON.stringify(event, replacer);
  } catch (error) {
    const fallback = {
      timestamp: event.timestamp,
      level,
      message: event.message,
      service: base.service,
      logbook_sdk_error: `attributes dropped: ${describe(error)}`,
    };
    if (typeof base.host === 'string') fallback.host = base.host;
    return JSON.stringify(fallback);
  }
}

function addFields(event, fields) {
  for (const [name, value] of Object.entries(fields)) {
    if (OWN_FIELDS.has(name) || value === undefined) continue;
    event[name] = name === 'timestamp' ? timestampOf(value, event.timestamp) : value;
  }
}

/** An attribute `timestamp` (a Date, epoch milliseconds or a string) overrides the call's time. */
function timestampOf(value, fallback) {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? fallback : value.toISOString();
  if (typeof value === 'number' || typeof value === 'string') return value;
  return fallback;
}

/** JSON cannot carry these as they are: errors lose every field, bigints throw. */
function replacer(_key, value) {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return errorFields(value);
  return value;
}

/**
 * The name, message and stack of an error (or whatever was thrown instead).
 *
 * @param {unknown} error
 * @returns {{ name: string, message: string, stack?: string }}
 */
export function errorFields(error) {
  if (error instanceof Error) {
    const fields = { name: error.name, message: error.message };
    if (typeof error.stack === 'string') fields.stack = error.stack;
    return fields;
  }
  return { name: typeof error, message: describe(error) };
}

function describe(value) {
  try {
    return value instanceof Error ? `${value.name}: ${value.message}` : String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}
