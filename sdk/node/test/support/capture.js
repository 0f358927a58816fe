// A tiny HTTP server for the logger's tests: it records each request (headers,
// the gunzipped NDJSON lines, the raw body) and answers from a script.

import { once } from 'node:events';
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';

/**
 * @typedef {{ status: number, headers?: Record<string, string>, body?: unknown }} Answer
 * @param {(request: { index: number, lines: object[] }) => Answer} answer
 */
export async function startCapture(answer) {
  const requests = [];
  let notify = () => {};
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks);
    const text = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw).toString('utf8') : raw.toString('utf8');
    const lines = text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line));
    const request = { index: requests.length, at: Date.now(), method: req.method, url: req.url, headers: req.headers, raw, lines };
    requests.push(request);
    const reply = answer(request);
    res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
    res.end(JSON.stringify(reply.body ?? {}));
    notify();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** Resolves once `count` requests have arrived. */
    async waitFor(count) {
      while (requests.length < count) await new Promise((resolve) => (notify = resolve));
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A 202 answer accepting every line of the request. */
export function acceptAll({ lines }) {
  return { status: 202, body: { accepted: lines.length, rejected: 0, ids: lines.map((_, i) => `id${i}`) } };
}

/** A local address nothing listens on: a port the system handed out, then closed. */
export async function unusedUrl() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return `http://127.0.0.1:${port}`;
}
