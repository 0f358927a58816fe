// Times the web UI against a running server in Debian's Chromium: how soon
// the page is interactive, and search round trips (submit → requests →
// rows, counts and histogram drawn), each as the browser measures it.
//
//   LOGBOOK_URL=http://127.0.0.1:18602 LOGBOOK_ADMIN_PASSWORD=… npm run bench
//
// Options (environment): BENCH_RANGE (default 24h), BENCH_REPEAT (default 20).

import { chromium } from 'playwright-core';

import { CHROMIUM } from './support/server.js';

const url = process.env.LOGBOOK_URL ?? 'http://127.0.0.1:8080';
const password = process.env.LOGBOOK_ADMIN_PASSWORD;
const range = process.env.BENCH_RANGE ?? '24h';
const repeat = Number(process.env.BENCH_REPEAT ?? 20);
if (!password) throw new Error('set LOGBOOK_ADMIN_PASSWORD (the super-admin user "admin" signs in)');

/** The query classes of `logbook bench query --classes`, as a user types them. */
const QUERIES = [
  ['everything', ''],
  ['word', 'error'],
  ['phrase', '"connection closed"'],
  ['field', 'service:openssh'],
  ['level range', 'level:>=warn'],
  ['prefix', 'service:open* fail*'],
  ['boolean', '(level:error OR level:warn) NOT service:apache'],
  ['no match', 'zzzznotthere'],
];

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const loads = [];
  for (let i = 0; i < 5; i++) {
    await page.goto(`${url}/?load=${i}`, { waitUntil: 'commit' });
    await page.waitForSelector('#username');
    loads.push(await page.evaluate(() => performance.now()));
  }
  loads.sort((a, b) => a - b);
  console.log(`page load to the sign-in form, ms: median ${percentile(loads, 50).toFixed(0)}, max ${loads.at(-1).toFixed(0)}`);

  await page.goto(`${url}/#/search?range=${range}`);
  await page.fill('#username', 'admin');
  await page.fill('#password', password);
  const signIn = await page.evaluate(() => performance.now());
  await page.click('form[aria-labelledby="sign-in-title"] button[type=submit]');
  await page.waitForFunction(() => document.getElementById('main').dataset.rendered);
  const firstSearch = await page.evaluate(() => performance.now());
  console.log(`sign-in (Argon2 included) to the first search drawn, ms: ${(firstSearch - signIn).toFixed(0)}`);
  console.log(`total events: ${await page.textContent('#total')}`);

  console.log(`\nsearch round trips, range ${range}, ${repeat} each (submit → all drawn), ms:`);
  console.log('class         median    p95    max   matches');
  for (const [name, q] of QUERIES) {
    const times = [];
    for (let i = 0; i < repeat + 2; i++) {
      const ms = await page.evaluate(async (query) => {
        const main = document.getElementById('main');
        const before = main.dataset.rendered;
        const input = document.getElementById('q');
        input.value = query;
        const started = performance.now();
        input.form.requestSubmit();
        await new Promise((done) => {
          const observer = new MutationObserver(() => {
            if (main.dataset.rendered !== before) {
              observer.disconnect();
              done();
            }
          });
          observer.observe(main, { attributes: true, attributeFilter: ['data-rendered'] });
        });
        // The frame that shows it.
        await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
        return performance.now() - started;
      }, q);
      if (i >= 2) times.push(ms);
    }
    times.sort((a, b) => a - b);
    const matches = await page.textContent('#total');
    console.log(
      `${name.padEnd(12)} ${percentile(times, 50).toFixed(1).padStart(7)} ${percentile(times, 95).toFixed(1).padStart(6)} ${times.at(-1).toFixed(1).padStart(6)}   ${matches}`,
    );
  }
} finally {
  await browser.close();
}
