// Starts a real Logbook server for the end-to-end tests: a temporary data
// directory, a bootstrap key and admin password chosen here, a port the server
// picks itself (it prints the address it listens on), stopped and removed after.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK_DIR = fileURLToPath(new URL('../..', import.meta.url));

/** The binary: LOGBOOK_BIN, else the workspace's debug build, relative to sdk/node. */
export const LOGBOOK_BIN = resolve(SDK_DIR, process.env.LOGBOOK_BIN ?? '../../target/debug/logbook');

export const SKIP_MESSAGE = 'SKIPPED: no logbook binary (set LOGBOOK_BIN)';

export function haveBinary() {
  return existsSync(LOGBOOK_BIN);
}

/** A secret of 32+ printable characters with 10+ distinct ones, as the server asks. */
function secret(prefix) {
  for (;;) {
    const value = `${prefix}${randomBytes(30).toString('base64url')}`;
    if (new Set(value).size >= 10 && !value.toLowerCase().includes('admin')) return value;
  }
}

/**
 * @returns {Promise<{ url: string, key: string, adminPassword: string, stop: () => Promise<void> }>}
 */
export async function startLogbook() {
  const dataDir = await mkdtemp(join(tmpdir(), 'logbook-node-sdk-'));
  const key = secret('lbk_');
  const adminPassword = secret('Pw-');
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LOGBOOK_')));
  const child = spawn(
    LOGBOOK_BIN,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--commit-interval-ms', '100'],
    {
      env: { ...env, LOGBOOK_BOOTSTRAP_KEY: key, LOGBOOK_ADMIN_PASSWORD: adminPassword, LOGBOOK_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
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
    return { url: address, key, adminPassword, stop };
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

/** A signing key with the logs:write scope, made through the API as the admin. */
export async function createSigningKey(server) {
  const login = await fetch(`${server.url}/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: server.adminPassword }),
  });
  const session = await login.json();
  if (login.status !== 200) throw new Error(`login answered ${login.status}: ${JSON.stringify(session)}`);
  const created = await fetch(`${server.url}/v1/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${session.access_token}` },
    body: JSON.stringify({ name: 'node-sdk-test', scopes: ['logs:write'], signed: true }),
  });
  const key = await created.json();
  if (created.status !== 201) throw new Error(`POST /v1/keys answered ${created.status}: ${JSON.stringify(key)}`);
  return { id: key.id, key: key.key, signed: key.signed, scopes: key.scopes };
}
