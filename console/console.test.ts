/**
 * The console in headless Chromium against the air-quality app on the embedded runtime: data and
 * alerts appear, an alert's journey shows its invocations, a dead letter is redriven; the page
 * is saved to e2e/artifacts/console.png. Needs /usr/bin/chromium (`apt-get install -y chromium`):
 * outside CI the suite skips without it, under CI=true it fails.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceAuth } from '../adapters/http/auth.js';
import { LocalRuntime } from '../adapters/local/index.js';
import { InvocationJournal } from '../adapters/local/journal.js';
import { createAirQualityApp, dev } from '../handlers/air-quality/app.js';
import { airQualityConfig } from '../handlers/air-quality/config.js';
import { mountConsole } from './server.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('../e2e/artifacts/', import.meta.url));
const KEY = 'console-test-key-0123456789';
const inCi = process.env.CI === 'true';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !inCi) console.warn(`console browser test skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`);

/** pm2.5 per location (µg/m³): Good, Moderate, USG, Unhealthy, Very Unhealthy under the 2024 breakpoints. */
const LEVELS: Record<string, number> = { harbour: 5, 'old-town': 22, university: 45, downtown: 75, airport: 150 };

/** Three sensors per location, a reading every 20 s for the last 10 minutes, varying a little. */
function cityReadings(now: number) {
  const readings = [];
  for (let second = 600; second >= 20; second -= 20) {
    for (const [location, pm25] of Object.entries(LEVELS)) {
      for (let device = 0; device < 3; device++) {
        const wobble = 1 + 0.06 * Math.sin(second / 37 + device * 2.1) + 0.02 * device;
        readings.push({ deviceId: `${location}-${device}`, location, time: new Date(now - second * 1000).toISOString(), pm25: Math.round(pm25 * wobble * 10) / 10 });
      }
    }
  }
  return readings;
}

describe.skipIf(!haveChromium && !inCi)('web console in headless Chromium', () => {
  let dir: string;
  let runtime: LocalRuntime;
  let closeConsole: () => void;
  let browser: Browser;
  let page: Page;
  let base: string;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`${CHROMIUM} is missing; CI installs it with apt-get install -y chromium`);
    dir = mkdtempSync(join(tmpdir(), 'petrel-console-'));
    const journal = new InvocationJournal();
    const app = createAirQualityApp(airQualityConfig({ idleTick: false }));
    runtime = await LocalRuntime.start(app, { dataDir: dir, logger: pino({ level: 'silent' }), onInvoked: journal.record });
    const live = dev.routes(runtime);
    const server = await runtime.listen(0, '127.0.0.1', {
      deviceAuth: new DeviceAuth([KEY]),
      extend: (router) => {
        for (const route of live) router.get(route.path, (req, res) => route.handle(req, res));
        closeConsole = mountConsole(router, runtime, journal);
      },
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    closeConsole?.();
    await runtime?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows locations, readings and live alerts, traces an alert, and redrives a dead letter', async () => {
    await page.goto(`${base}/`);
    await page.locator('#stream-pill[data-state="ok"]').waitFor();
    expect(await page.title()).toContain('Air quality');

    const sent = await fetch(`${base}/readings`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify(cityReadings(Date.now())) });
    expect(sent.status).toBe(202);
    // A reading no function can take: assess fails it permanently, so it becomes a dead letter.
    const poison = { specversion: '1.0', id: 'poison-reading-1', source: 'console-test', type: 'aq.reading.accepted', data: { deviceId: 'broken-1', location: 'harbour', pm25: 'n/a' } };
    const posted = await fetch(`${base}/events`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/cloudevents+json' }, body: JSON.stringify(poison) });
    expect(posted.status).toBe(202);

    // The city: every location, coloured by its category, with its AQI.
    const downtown = page.locator('.marker[data-location="downtown"]');
    await expect.poll(() => downtown.getAttribute('data-aqi'), { timeout: 10_000 }).toMatch(/^\d+$/);
    // Each location's readings are windowed in their own batches: the others may follow a moment later.
    await expect.poll(() => page.locator('.marker').count(), { timeout: 10_000 }).toBe(5);
    const fill = (location: string) => page.locator(`.marker[data-location="${location}"] .marker-dot`).getAttribute('fill');
    await expect.poll(() => fill('downtown'), { timeout: 10_000 }).toBe('#FF0000');
    await expect.poll(() => fill('harbour'), { timeout: 10_000 }).toBe('#00E400');
    await expect.poll(() => fill('airport'), { timeout: 10_000 }).toBe('#8F3F97');

    // Alerts arrive over the stream, with the id of the event that raised them.
    const streamed = page.locator('.alert[data-kind="category"]:not([data-event-id=""])', { hasText: 'downtown' });
    await streamed.first().waitFor({ timeout: 10_000 });
    expect(await streamed.first().textContent()).toContain('Unhealthy');
    await runtime.idle();
    const stored = (await (await fetch(`${base}/alerts`)).json()) as Array<{ id: string; location: string }>;
    expect(stored.length).toBeGreaterThanOrEqual(4);
    await expect.poll(() => page.locator('.alert').count()).toBe(stored.length);
    // A stored alert (no event id at hand) is traced by its id and location.
    const traced = (await (await fetch(`${base}/admin/journey/${encodeURIComponent(stored[0].id)}?location=${encodeURIComponent(stored[0].location)}`)).json()) as { steps: Array<{ event: unknown }> };
    expect(traced.steps[traced.steps.length - 1].event).toMatchObject({ type: 'aq.alert.raised', data: { key: stored[0].id, location: stored[0].location } });
    const unknown = await fetch(`${base}/admin/journey/no-such-event`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: expect.stringContaining('"no-such-event"') });
    expect((await fetch(`${base}/console/js/no-such-module.js`)).status).toBe(404);

    // The chart of the selected location: readings as dots, minutes as markers.
    await page.locator('.location-row[data-location="downtown"]').click();
    await expect.poll(() => page.locator('.chart-marker').count(), { timeout: 10_000 }).toBeGreaterThan(3);
    expect(await page.locator('.chart-dots').getAttribute('d')).toMatch(/^M/);
    expect(await page.locator('#chart-note').textContent()).toContain('from 3 sensors');

    // Pipeline health from /stats.
    await expect.poll(() => page.locator('.stat[data-stat="dead"] .stat-value').textContent(), { timeout: 10_000 }).toBe('1');

    // The journey: the reading, then ingest -> assess -> the alert, with timings.
    await streamed.first().click();
    const invocations = page.locator('.journey-invocation');
    await invocations.first().waitFor({ timeout: 10_000 });
    const functions = await invocations.evaluateAll((rows) => rows.map((row) => row.getAttribute('data-fn')));
    expect(functions).toEqual(expect.arrayContaining(['ingest', 'assess']));
    expect(await page.locator('.journey-event').first().getAttribute('data-type')).toBe('petrel.http.request');
    expect(await page.locator('.journey-event').last().getAttribute('data-type')).toBe('aq.alert.raised');
    expect(await page.locator('[data-card="reading"]').textContent()).toMatch(/downtown-\d/);

    // Redrive: the letter leaves the list, fails again, and comes back as a new one.
    const letter = page.locator('.dead-row');
    await letter.first().waitFor();
    const letterId = await letter.first().getAttribute('data-id');
    await letter.first().getByRole('button', { name: /Redrive/ }).click();
    await expect.poll(() => page.locator('#toast').textContent()).toContain('Redrove 1 event');
    const letterIds = () => page.locator('.dead-row').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-id')));
    await expect.poll(async () => { const ids = await letterIds(); return ids.length === 1 && ids[0] !== letterId; }, { timeout: 10_000 }).toBe(true);

    await page.locator('#toast.visible').waitFor({ state: 'detached', timeout: 5_000 }).catch(() => undefined);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'console.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 30_000);
});
