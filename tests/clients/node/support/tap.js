// A recording pass-through proxy between a client and Logbook: it forwards each
// request unchanged and keeps what went over the wire (method, path, headers,
// raw body) and what came back (status, body), so a test can prove which
// encoding a real client chose, and that the server accepted it.

import { once } from 'node:events';
import { createServer, request as httpRequest } from 'node:http';

/** @param {string} target the server's base URL, `http://host:port` */
export async function startTap(target) {
  const upstream = new URL(target);
  const exchanges = [];
  const waiters = [];
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = Buffer.concat(chunks);
    const exchange = { method: req.method, url: req.url, headers: req.headers, body };
    const forwarded = httpRequest({
      hostname: upstream.hostname,
      port: upstream.port,
      path: req.url,
      method: req.method,
      headers: { ...req.headers, host: upstream.host },
    });
    forwarded.on('response', async (answer) => {
      const parts = [];
      for await (const part of answer) parts.push(part);
      exchange.status = answer.statusCode;
      exchange.answer = Buffer.concat(parts);
      exchanges.push(exchange);
      res.writeHead(answer.statusCode, answer.headers);
      res.end(exchange.answer);
      for (const waiter of waiters.splice(0)) waiter();
    });
    forwarded.on('error', (error) => {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`tap: ${error.message}`);
    });
    forwarded.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    /** Completed request/answer pairs, in the order their answers arrived. */
    exchanges,
    /** Resolves once `count` exchanges have completed. */
    async waitFor(count) {
      while (exchanges.length < count) await new Promise((resolveWait) => waiters.push(resolveWait));
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
