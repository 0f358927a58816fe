// Starts a real Logbook server for the client tests: a temporary data
// directory, a bootstrap key chosen here, a port the server picks itself (it
// prints the address it listens on), stopped and removed after. Adapted from
// the Node SDK's test helper (a separate package, so it is copied, not shared).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

/** The binary: LOGBOOK_BIN, else the workspace's debug build, relative to this package. */
export const LOGBOOK_BIN = resolve(PACKAGE_DIR, process.env.LOGBOOK_BIN ?? '../../../target/debug/logbook');

export const SKIP_MESSAGE = 'SKIPPED: no logbook binary (set LOGBOOK_BIN)';

export function haveBinary() {
  return existsSync(LOGBOOK_BIN);
}

/** A secret of 32+ printable characters with 10+ distinct ones, as the server asks. */
function secret(prefix) {
  for (;;) {
    const value = `${prefix}${randomBytes(30).toString('base64url')}`;
    if (new Set(value).size >= 10) return value;
  }
}

/** @returns {Promise<{ url: string, key: string, stop: () => Promise<void> }>} */
export async function startLogbook() {
  const dataDir = await mkdtemp(join(tmpdir(), 'logbook-node-clients-'));
  const key = secret('lbk_');
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LOGBOOK_')));
  const child = spawn(
    LOGBOOK_BIN,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--commit-interval-ms', '100'],
    { env: { ...env, LOGBOOK_BOOTSTRAP_KEY: key, LOGBOOK_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((resolveExit) => child.once('exit', (code, signal) => resolveExit({ code, signal })));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dataDir, { recursive: true, force: true });
  };

  try {
    const address = await new Promise((resolveAddress, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`logbook did not start in 30 s: ${stderr}`)), 30_000);
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
        const match = /logbook listening on (http:\/\/\S+)/.exec(stdout);
        if (match !== null) {
          clearTimeout(timer);
          resolveAddress(match[1]);
        }
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`logbook exited (${code ?? signal}) before listening: ${stderr}`));
      });
    });
    // Keep reading stdout so the server never blocks on a full pipe.
    child.stdout.resume();
    const health = await fetch(`${address}/healthz`);
    if (health.status !== 200) throw new Error(`GET /healthz answered ${health.status}`);
    return { url: address, key, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Searches `GET /v1/logs?q=` until at least `count` events match (events are
 * searchable within the commit interval), and returns them oldest first.
 */
export async function searchUntil(server, q, count, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const query = new URLSearchParams({ q, order: 'asc', limit: '1000' });
    const response = await fetch(`${server.url}/v1/logs?${query}`, {
      headers: { authorization: `Bearer ${server.key}` },
    });
    const body = await response.json();
    if (response.status !== 200) throw new Error(`search answered ${response.status}: ${JSON.stringify(body)}`);
    if (body.events.length >= count || Date.now() > deadline) return body.events;
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
}

/** Skips the test (saying why) when no server could be started for lack of a binary. */
export function needsServer(t, server) {
  if (server !== undefined) return false;
  console.log(SKIP_MESSAGE);
  t.skip(SKIP_MESSAGE);
  return true;
}
