// The package's entry point: the logger, the Express middleware, and the helpers
// they are built from for callers that need them on their own.

export { createLogger } from './logger.js';
export { logbookExpress, logbookErrors } from './express.js';
export { LEVELS } from './event.js';
export { signRequest } from './sign.js';
export { parseTraceparent, formatTraceparent, newTraceId, newSpanId } from './traceparent.js';
