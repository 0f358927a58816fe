// A real Logbook server for the browser tests: a temporary data directory,
// the super-admin's password and a bootstrap key chosen here, a port the
// server picks itself, quick commits and checkpoints, and the Loghub samples
// loaded through the ingest API. Stopped and removed after.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

/** The binary: LOGBOOK_BIN, else the workspace's debug build. */
export const LOGBOOK_BIN = resolve(PACKAGE_DIR, process.env.LOGBOOK_BIN ?? '../../../target/debug/logbook');
/** Debian's Chromium (never a downloaded browser). */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** The Loghub samples beside the repository. */
export const LOGHUB = resolve(PACKAGE_DIR, process.env.LOGHUB_DIR ?? '../../../../shared/data/loghub');

export function missing() {
  if (!existsSync(LOGBOOK_BIN)) return `no logbook binary at ${LOGBOOK_BIN} (set LOGBOOK_BIN)`;
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM} (install Debian's chromium, or set CHROMIUM)`;
  if (!existsSync(LOGHUB)) return `no Loghub samples at ${LOGHUB} (set LOGHUB_DIR)`;
  return null;
}

/** A secret of 32+ printable characters with 10+ distinct ones, as the server asks. */
export function secret(prefix) {
  for (;;) {
    const value = `${prefix}${randomBytes(30).toString('base64url')}`;
    if (new Set(value).size >= 10) return value;
  }
}

const CONFIG = `[pipeline]
commit_interval_ms = 100
[audit]
checkpoint_every_events = 5
checkpoint_interval_ms = 200
[store]
writer_memory_bytes = 33554432
`;

/**
 * Starts the server over `dataDir` (a new one when absent).
 * @returns {Promise<{url, key, password, dataDir, stop, kill}>}
 */
export async function startLogbook({ dataDir, key, password } = {}) {
  const owned = !dataDir;
  dataDir = dataDir ?? (await mkdtemp(join(tmpdir(), 'logbook-ui-e2e-')));
  key = key ?? secret('lbk_');
  password = password ?? secret('pw-');
  const configPath = join(dataDir, '..', `${dataDir.split('/').pop()}.toml`);
  await writeFile(configPath, CONFIG);
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LOGBOOK_')));
  const child = spawn(
    LOGBOOK_BIN,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--config', configPath],
    {
      env: { ...env, LOGBOOK_BOOTSTRAP_KEY: key, LOGBOOK_ADMIN_PASSWORD: password, LOGBOOK_LOG: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const stop = async () => {
    await kill();
    await rm(configPath, { force: true });
    if (owned) await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const url = await new Promise((found, reject) => {
      let stdout = '';
      const timer = setTimeout(() => reject(new Error(`logbook did not start in 30 s: ${stderr}`)), 30_000);
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
        const match = /logbook listening on (http:\/\/\S+)/.exec(stdout);
        if (match) {
          clearTimeout(timer);
          found(match[1]);
        }
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`logbook exited (${code ?? signal}) before listening: ${stderr}`));
      });
    });
    child.stdout.resume();
    return { url, key, password, dataDir, stop, kill, owned };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Calls the API with the bootstrap key (or `token`); returns the parsed answer. */
export async function call(server, method, path, body, token = server.key) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** The level a Loghub line carries: Apache's own, OpenSSH's failures as warnings. */
function levelOf(service, line) {
  if (service === 'apache') {
    const match = /\] \[(error|notice|warn)\]/.exec(line);
    return match ? (match[1] === 'notice' ? 'info' : match[1]) : 'info';
  }
  return /Failed password|Invalid user|BREAK-IN|error/i.test(line) ? 'warn' : 'info';
}

/**
 * The Loghub samples as events: OpenSSH (service `sshd`, host `LabSZ`) and
 * Apache (service `apache`), time stamps spread over the last 50 minutes in
 * file order.
 */
export function loghubEvents(now = Date.now()) {
  const files = [
    ['sshd', 'OpenSSH/OpenSSH_2k.log', 'LabSZ'],
    ['apache', 'Apache/Apache_2k.log', 'web-1'],
  ];
  const events = [];
  for (const [service, file, host] of files) {
    const lines = readFileSync(join(LOGHUB, file), 'utf8').split('\n').filter(Boolean);
    lines.forEach((line, i) => {
      events.push({
        timestamp: new Date(now - 50 * 60_000 + Math.floor((i * 50 * 60_000) / lines.length)).toISOString(),
        service,
        host,
        level: levelOf(service, line),
        message: line,
        loghub: { file, line: i + 1 },
      });
    });
  }
  return events;
}

/** Sends `events` to `POST /v1/logs` in batches and waits until all are searchable. */
export async function load(server, events) {
  for (let i = 0; i < events.length; i += 500) {
    await call(server, 'POST', '/v1/logs', events.slice(i, i + 500));
  }
  const deadline = Date.now() + 20_000;
  for (;;) {
    const stats = await call(server, 'GET', '/v1/stats');
    if (stats.total >= events.length) return;
    if (Date.now() > deadline) throw new Error(`only ${stats.total} of ${events.length} events searchable`);
    await new Promise((wait) => setTimeout(wait, 100));
  }
}
